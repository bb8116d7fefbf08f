#!/usr/bin/env bash
# Makes the room-token key pair for docker-compose (Ed25519):
#   deploy/secrets/jwt-private.pem  PKCS#8 PEM, chat-web's JWT_PRIVATE_KEY_FILE
#   deploy/secrets/jwt-public.pem   SPKI PEM, the gateways' JWT_PUBLIC_KEY_FILE
# and the Redis credentials of the ACL user `chat` (see deploy/redis/):
#   deploy/secrets/redis-password   the password (random, 64 hex digits)
#   deploy/secrets/redis-users.acl  Redis's ACL file: `default` off, `chat`
#                                   by the password's SHA-256, `probe` PING only
#   deploy/secrets/redis.env        REDIS_URL=redis://chat:...@redis:6379, the
#                                   env file of web and gateway in compose
#   deploy/secrets/redis-url        the same URL alone (no newline), for
#                                   `kubectl create secret --from-file`
# An existing key pair or password is kept (rotation: deploy/README.md,
# "Room-token keys"); pass --force to replace them.
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

# The public halves of every key in the private key file, in the same order.
write_public() {
  local work count i
  work="$(mktemp -d "$dir/.jwt-public.XXXXXX")"
  # Splits the private key file at each PEM header line (the pattern below is
  # that header, not a key: this script holds no key material).
  count="$(awk -v d="$work" '/^-----BEGIN PRIVATE KEY-+$/ { n++ } n { print > (d "/" n ".pem") } END { print n + 0 }' "$private")"
  : >"$work/public.pem"
  for i in $(seq 1 "$count"); do
    openssl pkey -in "$work/$i.pem" -pubout >>"$work/public.pem"
  done
  mv "$work/public.pem" "$public"
  rm -rf "$work"
}

if [ -s "$private" ] && [ "$force" -eq 0 ]; then
  echo "keeping $private (pass --force to replace it)"
else
  tmp="$(mktemp "$dir/.jwt-private.XXXXXX")"
  openssl genpkey -algorithm ed25519 -out "$tmp"
  mv "$tmp" "$private"
  echo "wrote $private"
  rm -f "$public"
fi
# Kept when present: during a key rotation it holds a public key that web
# does not sign with yet (deploy/README.md, "Room-token keys").
if [ -s "$public" ]; then
  echo "keeping $public"
else
  write_public
  echo "wrote $public"
fi
chmod 0644 "$private" "$public"

password_file="$dir/redis-password"
if [ -s "$password_file" ] && [ "$force" -eq 0 ]; then
  echo "keeping $password_file (pass --force to replace it)"
else
  tmp="$(mktemp "$dir/.redis-password.XXXXXX")"
  # Hex: safe in a URL and in an ACL file without escaping.
  openssl rand -hex 32 | tr -d '\n' >"$tmp"
  mv "$tmp" "$password_file"
  echo "wrote $password_file"
fi
password="$(cat "$password_file")"
hash="$(printf '%s' "$password" | openssl dgst -sha256 -r | cut -d' ' -f1)"
rules="$(sed -n 's/^user chat on #[0-9a-f]* //p' "$(dirname "$0")/redis/users.acl.example")"
[ -n "$rules" ] || { echo "deploy/redis/users.acl.example has no 'user chat' line" >&2; exit 1; }
{
  echo "user default off"
  echo "user chat on #$hash $rules"
  echo "user probe on nopass -@all +ping"
} >"$dir/redis-users.acl"
url="redis://chat:$password@redis:6379"
echo "REDIS_URL=$url" >"$dir/redis.env"
printf '%s' "$url" >"$dir/redis-url"
# Read by the containers' users (redis: 999, web and gateway: 10001).
chmod 0644 "$password_file" "$dir/redis-users.acl" "$dir/redis.env" "$dir/redis-url"
echo "wrote $dir/redis-users.acl, $dir/redis.env, $dir/redis-url"
