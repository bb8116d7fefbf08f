#!/usr/bin/env bash
# Makes the room-token key pair for docker-compose (Ed25519):
#   deploy/secrets/jwt-private.pem  PKCS#8 PEM, chat-web's JWT_PRIVATE_KEY_FILE
#   deploy/secrets/jwt-public.pem   SPKI PEM, for gateways that use
#                                   JWT_PUBLIC_KEY_FILE instead of JWKS_URL
# An existing key is kept (rotation is appending a key: see
# services/chat-web/README.md); pass --force to replace it.
# deploy/secrets/ is git-ignored and readable only by you; the files in it are
# world-readable so that the containers' user (uid 10001) can read the
# bind-mounted secret.
set -euo pipefail
dir="${SECRETS_DIR:-$(cd "$(dirname "$0")" && pwd)/secrets}"
force=0
[ "${1:-}" = "--force" ] && force=1

mkdir -p "$dir"
chmod 0700 "$dir"
private="$dir/jwt-private.pem"
public="$dir/jwt-public.pem"

if [ -s "$private" ] && [ "$force" -eq 0 ]; then
  echo "keeping $private (pass --force to replace it)"
else
  tmp="$(mktemp "$dir/.jwt-private.XXXXXX")"
  openssl genpkey -algorithm ed25519 -out "$tmp"
  mv "$tmp" "$private"
  echo "wrote $private"
fi
openssl pkey -in "$private" -pubout -out "$public"
chmod 0644 "$private" "$public"
echo "wrote $public"
