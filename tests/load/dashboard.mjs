// What the dashboard's polling of GET /api/rooms costs (scripts/bench-dashboard runs this).
//
//   CHAT_BIN_DIR=target/release node tests/load/dashboard.mjs [ROOM_COUNT ...]   default: 3 20
//
// For each room count: a fresh stack (private Redis, oidc-provider, chat-web: tests/web/stack.mjs),
// one user logged in, every room seeded with members, a message count and the user's read marker;
// then GET /api/rooms with that session cookie
//   - saturated: CONCURRENCY connections (64) for DURATION_S (15) with wrk (LOAD_TOOL=node: a
//     keep-alive Node loop instead), after a WARMUP_S (2) warm-up;
//   - paced: PACED_RATE polls/s (333, the rate of 1,000 dashboards; 0 skips it) for DURATION_S,
//     open loop from Node, as many dashboards would.
// Measured around each phase: chat-web's CPU (/proc/<pid>/stat utime+stime), Redis's CPU
// (INFO cpu) and commands (INFO commandstats, INFO itself left out), less what both do idle
// (measured for IDLE_S (5) s first, with nobody polling). Prints a markdown table.
// Every response must be a 200; the cookie goes to wrk in a 0600 file, never on a command line.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startStack, CookieJar, login, sessionCookie } from '../web/stack.mjs';
import { killedOnExit } from '../support/children.mjs';

const DURATION_S = Number(process.env.DURATION_S ?? 15);
const WARMUP_S = Number(process.env.WARMUP_S ?? 2);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 64);
const PACED_RATE = Number(process.env.PACED_RATE ?? 333);
const IDLE_S = Number(process.env.IDLE_S ?? 5);
const POLL_EVERY_S = 3; // static/dashboard.js: EVERY_MS
const ACCOUNT = 'alice'; // the provider's subject is the account name
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
const log = (msg) => process.stderr.write(`dashboard: ${msg}\n`);
// On a signal, exit normally so that children.mjs kills the servers (it hooks 'exit').
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130));

function haveWrk() {
  if (process.env.LOAD_TOOL === 'node') return false;
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (e) {
    return e.status === 1; // `wrk --version` prints its usage and exits 1; ENOENT has no status
  }
}

// ---- counters --------------------------------------------------------------------------------

/** CPU seconds (user + system) of process `pid` so far. */
function processCpu(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK; // fields 14 and 15 of proc(5)
}

/** INFO `section` of the Redis on `port` as { key: value }. */
function redisInfo(port, section) {
  const text = execFileSync('redis-cli', ['-p', String(port), 'info', section], { encoding: 'utf8' });
  return Object.fromEntries(text.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => l.split(/:(.*)/s).slice(0, 2)));
}

/** One snapshot: chat-web CPU, Redis CPU, Redis calls by command (INFO left out: we send it). */
function snapshot(stack) {
  const cpu = redisInfo(stack.redis.port, 'cpu');
  const calls = {};
  for (const [key, value] of Object.entries(redisInfo(stack.redis.port, 'commandstats'))) {
    const cmd = key.replace(/^cmdstat_/, '');
    if (cmd !== 'info') calls[cmd] = Number(/calls=(\d+)/.exec(value)[1]);
  }
  return {
    at: Date.now(),
    web: processCpu(stack.web.proc.pid),
    redis: Number(cpu.used_cpu_sys) + Number(cpu.used_cpu_user),
    calls,
  };
}

/** What happened between two snapshots: the CPU and calls that are not `idle`'s, per request. */
function costs(before, after, requests, idle = null) {
  const seconds = (after.at - before.at) / 1000;
  const calls = {};
  for (const [cmd, n] of Object.entries(after.calls)) {
    const d = n - (before.calls[cmd] ?? 0) - (idle?.calls[cmd] ?? 0) * seconds;
    if (d > 0.5) calls[cmd] = d / requests;
  }
  const webCpuS = after.web - before.web - (idle?.web ?? 0) * seconds;
  const redisCpuS = after.redis - before.redis - (idle?.redis ?? 0) * seconds;
  return {
    webCpuS,
    redisCpuS,
    webUsPerPoll: (webCpuS * 1e6) / requests,
    redisUsPerPoll: (redisCpuS * 1e6) / requests,
    callsPerPoll: Object.values(calls).reduce((a, b) => a + b, 0),
    calls,
  };
}

/** What chat-web and Redis do with nobody polling, per second: { web, redis (cores), calls }. */
async function idleRate(stack, seconds) {
  const before = snapshot(stack);
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = snapshot(stack);
  const s = (after.at - before.at) / 1000;
  const calls = {};
  for (const [cmd, n] of Object.entries(after.calls)) calls[cmd] = (n - (before.calls[cmd] ?? 0)) / s;
  return { web: (after.web - before.web) / s, redis: (after.redis - before.redis) / s, calls };
}

// ---- load --------------------------------------------------------------------------------------

/** p-th percentile (0..100) of sorted `values`. */
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** One GET of `url` with `cookie` on keep-alive `agent`; resolves with its latency in µs. */
function get(agent, url, cookie) {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers: { cookie, accept: 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200
        ? resolve(Number(process.hrtime.bigint() - start) / 1000)
        : reject(new Error(`GET /api/rooms answered ${res.statusCode}`))));
    });
    req.on('error', reject);
  });
}

const summary = (latencies, seconds) => {
  latencies.sort((a, b) => a - b);
  return { requests: latencies.length, seconds, p50Us: percentile(latencies, 50), p99Us: percentile(latencies, 99) };
};

/** Saturates `url` with `concurrency` keep-alive connections for `seconds`, from Node. */
async function nodeLoop(url, cookie, seconds, concurrency) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies = [];
  const start = Date.now();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < end) latencies.push(await get(agent, url, cookie));
  }));
  agent.destroy();
  return summary(latencies, (Date.now() - start) / 1000);
}

/** Saturates `url` with wrk (one thread, `concurrency` connections) for `seconds`. */
async function wrkRun(url, cookie, seconds, concurrency) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-dashboard-'));
  const script = path.join(dir, 'poll.lua');
  // The cookie stays in this file; done() reports what we need as one JSON line.
  fs.writeFileSync(script, `wrk.headers["Cookie"] = ${JSON.stringify(cookie)}
wrk.headers["Accept"] = "application/json"
done = function(s, latency)
  local e = s.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    s.requests, s.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`, { mode: 0o600 });
  try {
    const proc = killedOnExit(spawn('wrk', ['-t1', `-c${concurrency}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url], { stdio: ['ignore', 'pipe', 'inherit'] }));
    let out = '';
    proc.stdout.on('data', (d) => { out += d; });
    const code = await new Promise((r) => proc.once('exit', r));
    const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
    if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}): ${out}`);
    const r = JSON.parse(line);
    if (r.status_errors > 0 || r.socket_errors > 0) {
      throw new Error(`wrk: ${r.status_errors} non-200 answers, ${r.socket_errors} socket errors of ${r.requests}`);
    }
    return { requests: r.requests, seconds: r.duration_us / 1e6, p50Us: r.p50_us, p99Us: r.p99_us };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `rate` polls/s for `seconds`, open loop (a poll does not wait for the previous one). */
async function paced(url, cookie, seconds, rate) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const latencies = [];
  const pending = [];
  const start = Date.now();
  let sent = 0;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const elapsed = (Date.now() - start) / 1000;
      const due = Math.min(elapsed, seconds) * rate;
      for (; sent < due; sent++) pending.push(get(agent, url, cookie).then((us) => latencies.push(us)));
      if (elapsed >= seconds) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  await Promise.all(pending);
  agent.destroy();
  return summary(latencies, (Date.now() - start) / 1000);
}

// ---- one room count ----------------------------------------------------------------------------

async function measure(roomCount, saturate) {
  const rooms = roomCount === 3 ? ['General', 'Sports', 'Music'] : Array.from({ length: roomCount }, (_, i) => `Room${i + 1}`);
  // RUST_LOG as deployed (docker-compose.yml, deploy/k8s): every request gets an info span.
  const stack = await startStack({ env: { ROOMS: rooms.join(','), RUST_LOG: 'info' } });
  try {
    // Something to count: 5 members, 100 messages and 90 of them read, in every room.
    for (const room of rooms) {
      await stack.redis.command(`HSET chat:room:{${room}}:users u1 1 u2 2 u3 3 u4 4 u5 5`);
      await stack.redis.command(`SET chat:room:{${room}}:count 100`);
      await stack.redis.command(`HSET chat:room:{${room}}:reads ${ACCOUNT} 90`);
    }
    const jar = new CookieJar();
    const { res } = await login(jar, stack.base, ACCOUNT);
    if (res.status !== 303) throw new Error(`login answered ${res.status}`);
    const cookie = `chat_session=${sessionCookie(jar, stack.base)}`;
    const url = `${stack.base}/api/rooms`;
    const body = await (await jar.fetch(url)).json();
    if (body.rooms.length !== roomCount || body.rooms.some((r) => r.members !== 5 || r.unread !== 10)) {
      throw new Error(`unexpected /api/rooms: ${JSON.stringify(body).slice(0, 200)}`);
    }

    log(`${roomCount} rooms: warm-up ${WARMUP_S} s`);
    await saturate(url, cookie, WARMUP_S, CONCURRENCY);
    log(`${roomCount} rooms: idle for ${IDLE_S} s`);
    const idle = await idleRate(stack, IDLE_S);
    log(`${roomCount} rooms: ${CONCURRENCY} connections for ${DURATION_S} s`);
    let before = snapshot(stack);
    const load = await saturate(url, cookie, DURATION_S, CONCURRENCY);
    const sat = { ...load, ...costs(before, snapshot(stack), load.requests, idle) };

    let slow = null;
    if (PACED_RATE > 0) {
      log(`${roomCount} rooms: ${PACED_RATE} polls/s for ${DURATION_S} s`);
      before = snapshot(stack);
      const p = await paced(url, cookie, DURATION_S, PACED_RATE);
      slow = { ...p, ...costs(before, snapshot(stack), p.requests, idle) };
    }
    return { rooms: roomCount, idle, saturated: sat, paced: slow };
  } finally {
    await stack.stop();
  }
}

// ---- report ------------------------------------------------------------------------------------

const f = (x, digits = 0) => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ms = (us) => `${f(us / 1000, 2)} ms`;
/** Cores that `dashboards` open dashboards take at `usPerPoll`, each polling every 3 s. */
const cores = (dashboards, usPerPoll) => (dashboards / POLL_EVERY_S) * usPerPoll / 1e6;

function table(results, tool) {
  const cols = results.map((r) => `${r.rooms} rooms`);
  const rows = [];
  const row = (name, fn) => rows.push(`| ${name} | ${results.map(fn).join(' | ')} |`);
  row(`saturated (${tool}, ${CONCURRENCY} connections, ${DURATION_S} s): polls/s`, (r) => f(r.saturated.requests / r.saturated.seconds));
  row('latency p50 / p99', (r) => `${ms(r.saturated.p50Us)} / ${ms(r.saturated.p99Us)}`);
  row(`idle, nobody polling (${IDLE_S} s): chat-web / Redis cores`, (r) => `${f(r.idle.web, 4)} / ${f(r.idle.redis, 4)}`);
  row('chat-web CPU (cores)', (r) => `${f(r.saturated.webCpuS, 2)} s (${f(r.saturated.webCpuS / r.saturated.seconds, 2)})`);
  row('Redis CPU (cores)', (r) => `${f(r.saturated.redisCpuS, 2)} s (${f(r.saturated.redisCpuS / r.saturated.seconds, 2)})`);
  row('Redis commands per poll', (r) => `${f(r.saturated.callsPerPoll, 1)} (${Object.entries(r.saturated.calls).map(([c, n]) => `${c} ${f(n, 1)}`).join(', ')})`);
  row('**CPU per poll: chat-web / Redis**', (r) => `**${f(r.saturated.webUsPerPoll)} / ${f(r.saturated.redisUsPerPoll)} µs**`);
  for (const n of [1000, 10000]) {
    row(`${f(n)} dashboards (${f(n / POLL_EVERY_S)} polls/s) at that cost: chat-web + Redis cores`, (r) => {
      const w = cores(n, r.saturated.webUsPerPoll);
      const d = cores(n, r.saturated.redisUsPerPoll);
      return `${f(w, 3)} + ${f(d, 3)} = ${f(w + d, 3)}`;
    });
  }
  if (results.every((r) => r.paced)) {
    row(`paced: ${f(PACED_RATE)} polls/s for ${DURATION_S} s (≈ ${f(Math.round((PACED_RATE * POLL_EVERY_S) / 100) * 100)} dashboards): latency p50 / p99`, (r) => `${ms(r.paced.p50Us)} / ${ms(r.paced.p99Us)}`);
    row('paced: CPU per poll, chat-web / Redis', (r) => `${f(r.paced.webUsPerPoll)} / ${f(r.paced.redisUsPerPoll)} µs`);
    row('paced: chat-web + Redis cores', (r) => {
      const w = r.paced.webCpuS / r.paced.seconds;
      const d = r.paced.redisCpuS / r.paced.seconds;
      return `${f(w, 3)} + ${f(d, 3)} = ${f(w + d, 3)}`;
    });
  }
  return [`| GET /api/rooms | ${cols.join(' | ')} |`, `| --- | ${cols.map(() => '---:').join(' | ')} |`, ...rows].join('\n');
}

const counts = process.argv.slice(2).map(Number);
const useWrk = haveWrk();
const saturate = useWrk ? wrkRun : nodeLoop;
const results = [];
for (const n of counts.length ? counts : [3, 20]) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`room count ${n}: expected a positive integer`);
  results.push(await measure(n, saturate));
}
process.stdout.write(`${table(results, useWrk ? 'wrk' : 'Node loop')}\n`);
if (process.env.DASHBOARD_JSON) fs.writeFileSync(process.env.DASHBOARD_JSON, JSON.stringify(results, null, 2));
