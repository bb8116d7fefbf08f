#!/bin/sh
# Creates the Redis Cluster once: 3 primaries, one replica each, from the nodes given as
# host:port arguments (the first 3 become primaries). Does nothing if the first node already
# belongs to a working cluster, so it is safe to run on every `docker compose up`.
# Logs in as the ACL user `admin`, whose password is in $REDIS_ADMIN_PASSWORD_FILE.
set -eu
REDISCLI_AUTH="$(cat "${REDIS_ADMIN_PASSWORD_FILE:-/run/secrets/redis_admin_password}")"
export REDISCLI_AUTH

first_host="${1%:*}"
first_port="${1##*:}"
state() { redis-cli --user admin -h "$first_host" -p "$first_port" cluster info | grep '^cluster_state:' | tr -d '\r'; }

if [ "$(state)" = "cluster_state:ok" ]; then
  echo "the cluster exists already"
  exit 0
fi

# CLUSTER MEET takes addresses, not names: resolve each host.
nodes=""
for node in "$@"; do
  ip="$(getent hosts "${node%:*}" | awk 'NR == 1 { print $1 }')"
  [ -n "$ip" ] || { echo "cannot resolve ${node%:*}" >&2; exit 1; }
  nodes="$nodes $ip:${node##*:}"
done
# shellcheck disable=SC2086 # one word per node
redis-cli --user admin --cluster create $nodes --cluster-replicas 1 --cluster-yes

# redis-cli returns once the nodes joined; the state turns ok a moment later.
tries=0
until [ "$(state)" = "cluster_state:ok" ]; do
  tries=$((tries + 1))
  [ "$tries" -le 60 ] || { echo "the cluster is not ok after 60 s" >&2; exit 1; }
  sleep 1
done
echo "the cluster is ok"
