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
