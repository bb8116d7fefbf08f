#!/usr/bin/env bash
# Makes the secrets of the 6-node Redis Cluster of deploy/compose/redis-cluster.yml,
# on top of those of gen-keys.sh (which it runs first; it keeps what exists):
#   deploy/secrets/redis-admin-password        user `admin` (every command): creating
#                                              and resharding the cluster with redis-cli
#   deploy/secrets/redis-replication-password  user `replication` (PSYNC, REPLCONF, PING):
#                                              how a replica logs in to its primary
#   deploy/secrets/redis-cluster-users.acl     the ACL file of every node: gen-keys.sh's
#                                              users (`default` off, `chat`, `probe`) + those two
#   deploy/secrets/redis-replication.conf      masteruser/masterauth, a config file for redis-server
#   deploy/secrets/redis-cluster.env           REDIS_URL=redis-cluster://chat:...@redis:6379?node=...
#   deploy/secrets/redis-cluster-url           the same URL alone, for a Kubernetes Secret
# Passwords are kept unless --force (then restart the cluster and both services).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${SECRETS_DIR:-$here/secrets}"
force=0
[ "${1:-}" = "--force" ] && force=1

"$here/gen-keys.sh" >/dev/null # keeps the existing key and password

# Prints the password in file $1, making a random one (64 hex digits) if there is none.
password() {
  if [ ! -s "$1" ] || [ "$force" -eq 1 ]; then
    tmp="$(mktemp "$1.XXXXXX")"
    openssl rand -hex 32 | tr -d '\n' >"$tmp"
    mv "$tmp" "$1"
  fi
  cat "$1"
}
sha256() { printf '%s' "$1" | openssl dgst -sha256 -r | cut -d' ' -f1; }

chat="$(cat "$dir/redis-password")"
admin="$(password "$dir/redis-admin-password")"
replication="$(password "$dir/redis-replication-password")"
{
  cat "$dir/redis-users.acl"
  echo "user admin on #$(sha256 "$admin") ~* &* +@all"
  echo "user replication on #$(sha256 "$replication") -@all +psync +replconf +ping"
} >"$dir/redis-cluster-users.acl"
printf 'masteruser replication\nmasterauth %s\n' "$replication" >"$dir/redis-replication.conf"

# Node 1 is the service `redis` (web and gateway already wait for it); nodes 2-6 are redis-node-N.
url="redis-cluster://chat:$chat@redis:6379?node=redis-node-2:6379&node=redis-node-3:6379&node=redis-node-4:6379&node=redis-node-5:6379&node=redis-node-6:6379"
echo "REDIS_URL=$url" >"$dir/redis-cluster.env"
printf '%s' "$url" >"$dir/redis-cluster-url"
# Read by the containers' users (redis: 999, web and gateway: 10001).
chmod 0644 "$dir/redis-admin-password" "$dir/redis-replication-password" "$dir/redis-cluster-users.acl" \
  "$dir/redis-replication.conf" "$dir/redis-cluster.env" "$dir/redis-cluster-url"
echo "wrote $dir/redis-cluster-users.acl, $dir/redis-replication.conf, $dir/redis-cluster.env, $dir/redis-cluster-url"
