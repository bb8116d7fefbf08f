# shellcheck shell=bash
# Shell functions shared by scripts/bench and scripts/profile-fanout (sourced,
# not run). Callers keep the process ids they start in the array `pids`.

# Writes an Ed25519 key pair to $1/private.pem (PKCS#8) and $1/public.pem (SPKI).
gen_keys() {
  node -e "
const c = require('crypto'), fs = require('fs');
const { privateKey, publicKey } = c.generateKeyPairSync('ed25519');
fs.writeFileSync('$1/private.pem', privateKey.export({ format: 'pem', type: 'pkcs8' }));
fs.writeFileSync('$1/public.pem', publicKey.export({ format: 'pem', type: 'spki' }));"
}

# Prints a free loopback TCP port.
free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# Waits up to $3 tenths of a second (default 150) for URL $1 to answer; $2 names it in the error.
wait_http() {
  for _ in $(seq 1 "${3:-150}"); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): $2 did not answer $1" >&2
  return 1
}

# Starts a private redis-server on free port $1, logging to $2, and waits for it;
# sets REDIS_PID.
start_redis() {
  redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >"$2" 2>&1 &
  REDIS_PID=$!
  pids+=("$REDIS_PID")
  for _ in $(seq 1 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$(basename "$0"): redis-server on port $1 did not start" >&2
  return 1
}

# Waits up to 10 s for the redis-server on port $1 to answer PING.
wait_redis() {
  for _ in $(seq 1 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "$(basename "$0"): redis-server on port $1 did not start" >&2
  return 1
}

# Starts a replica of the redis-server on port $2 on free port $1, in directory $3, logging
# to $4, and waits until it is in sync; sets REPLICA_PID.
start_redis_replica() {
  mkdir -p "$3"
  redis-server --port "$1" --bind 127.0.0.1 --dir "$3" --save '' --appendonly no --loglevel warning \
    --replicaof 127.0.0.1 "$2" >"$4" 2>&1 &
  REPLICA_PID=$!
  pids+=("$REPLICA_PID")
  wait_redis "$1" || return 1
  for _ in $(seq 1 100); do
    redis-cli -p "$1" info replication 2>/dev/null | grep -q '^master_link_status:up' && return 0
    sleep 0.1
  done
  echo "$(basename "$0"): the replica on port $1 did not sync with port $2" >&2
  return 1
}

# Starts a Redis Cluster of 3 primaries and 3 replicas on free loopback ports (the way
# tests/support/topology.mjs does: `redis-cli --cluster create --cluster-replicas 1`, no
# persistence, failures detected in about a second), one directory per node under $1, logs
# $2-<n>.log, and waits until every node says cluster_state:ok and every replica is in sync.
# Sets CLUSTER_URL (the redis-cluster:// form of REDIS_URL), CLUSTER_PORTS and CLUSTER_PIDS.
start_redis_cluster() {
  local dir=$1 log=$2 i port bus addrs=() ok
  CLUSTER_PORTS=() CLUSTER_PIDS=()
  for i in 0 1 2 3 4 5; do
    port=$(free_port) bus=$(free_port)
    mkdir -p "$dir/node-$i"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir/node-$i" --save '' --appendonly no \
      --loglevel warning --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-port "$bus" --cluster-node-timeout 1000 >"$log-$i.log" 2>&1 &
    pids+=($!) CLUSTER_PIDS+=($!) CLUSTER_PORTS+=("$port") addrs+=("127.0.0.1:$port")
  done
  for port in "${CLUSTER_PORTS[@]}"; do wait_redis "$port" || return 1; done
  if ! timeout 60 redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
    >"$log-create.log" 2>&1; then
    echo "$(basename "$0"): redis-cli --cluster create failed (see $log-create.log)" >&2
    return 1
  fi
  for _ in $(seq 1 300); do
    ok=1
    for port in "${CLUSTER_PORTS[@]}"; do
      redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || { ok=0; break; }
      if redis-cli -p "$port" info replication 2>/dev/null | grep -q '^role:slave'; then
        redis-cli -p "$port" info replication | grep -q '^master_link_status:up' || { ok=0; break; }
      fi
    done
    if [ "$ok" = 1 ]; then
      CLUSTER_URL="redis-cluster://${addrs[0]}?$(printf 'node=%s&' "${addrs[@]:1}")"
      CLUSTER_URL=${CLUSTER_URL%&}
      return 0
    fi
    sleep 0.1
  done
  echo "$(basename "$0"): the cluster on ports ${CLUSTER_PORTS[*]} did not converge" >&2
  return 1
}

# Seeds $2 direct rooms (contract v2.0), named $3<i> for i from 0, into the redis-server on port
# $1, as chat-store's room_create.lua stores them: the room's settings (`chat:room:{R}:meta`, kind
# direct) and its two members (`chat:room:{R}:members`: $3<i>-m0 and $3<i>-m1, `member`), with
# redis-cli --pipe.
seed_direct_rooms() {
  node -e '
const n = Number(process.argv[1]), prefix = process.argv[2], now = String(Date.now());
let out = [];
const cmd = (...a) => out.push(`*${a.length}\r\n` + a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join(""));
for (let i = 0; i < n; i++) {
  const r = prefix + i, a = `${r}-m0`, b = `${r}-m1`;
  cmd("HSET", `chat:room:{${r}}:meta`, "name", "", "topic", "", "kind", "direct", "posting", "everyone",
    "retention_days", "", "groups", "[]", "created", now, "creator", a);
  cmd("HSET", `chat:room:{${r}}:members`, a, "member", b, "member");
}
process.stdout.write(out.join(""));
' "$2" "$3" | redis-cli -p "$1" --pipe >/dev/null
}
