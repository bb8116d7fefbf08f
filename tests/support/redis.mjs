// Redis for tests: commands through redis-cli, and a private redis-server for one test file on a
// free loopback port (never the machine's shared 6379).
import { execFile, spawn } from 'node:child_process';
import { killedOnExit } from './children.mjs';
import { freePort, until } from './net.mjs';

/** An error reply of Redis; `message` is its text, e.g. `MOVED 3999 127.0.0.1:7001`. */
export class RedisError extends Error {
  name = 'RedisError';
}

// Replies redis-cli prints as plain text even with --json (its own list of such commands).
const TEXT_REPLIES = /^(INFO|LOLWUT|CLUSTER (NODES|INFO)|CLIENT (LIST|INFO))\b/i;

/**
 * Sends `cmd` (an array of arguments, or a string split at spaces) with redis-cli to the Redis on
 * 127.0.0.1:`port`. Resolves with the reply as RESP3 through `--json`: a string, a number, null,
 * an array or an object; for INFO, CLUSTER INFO/NODES and CLIENT LIST/INFO, their text. An error
 * reply rejects with a `RedisError`; a Redis that does not answer within `timeoutMs`, with an
 * Error. `cluster: true` follows `-MOVED` and `-ASK` redirections (redis-cli -c).
 */
export function redis(port, cmd, { cluster = false, timeoutMs = 5000 } = {}) {
  const args = Array.isArray(cmd) ? cmd.map(String) : cmd.trim().split(/\s+/);
  const flags = ['-p', String(port), '--json', ...(cluster ? ['-c'] : [])];
  return new Promise((resolve, reject) => {
    execFile('redis-cli', [...flags, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`redis-cli ${args.join(' ')} on ${port}: ${(stderr || stdout || err.message).trim()}`));
      if (stdout.startsWith('error:')) {
        const text = stdout.slice('error:'.length).trim();
        let message = text;
        try {
          message = JSON.parse(text);
        } catch {
          // Not JSON-quoted (a byte redis-cli escapes its own way): the text as printed.
        }
        return reject(new RedisError(message));
      }
      if (TEXT_REPLIES.test(args.join(' '))) return resolve(stdout);
      try {
        resolve(JSON.parse(stdout));
      } catch {
        reject(new Error(`redis-cli ${args.join(' ')} on ${port} printed ${JSON.stringify(stdout)}`));
      }
    });
  });
}

/**
 * Subscribes to `channel` on the Redis on 127.0.0.1:`port` with a redis-cli that stays running;
 * `received()` is everything it printed so far (each reply's parts on lines of their own),
 * `close()` ends it.
 */
export async function subscribe(port, channel) {
  const proc = killedOnExit(spawn('redis-cli', ['-p', String(port), 'SUBSCRIBE', channel], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let data = '';
  proc.stdout.on('data', (d) => { data += d; });
  proc.stderr.on('data', (d) => { data += d; });
  await until(`SUBSCRIBE ${channel}`, () => {
    if (proc.exitCode !== null) throw Object.assign(new Error(`redis-cli SUBSCRIBE on ${port} exited: ${data.trim()}`), { final: true });
    return data.includes('subscribe');
  });
  return { received: () => data, close: () => proc.kill('SIGKILL') };
}

/** `INFO`-style `field:value` lines as an object. */
export function infoFields(text) {
  return Object.fromEntries(text.split(/\r?\n/).filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
}

/**
 * Redis time spent in scripts since the last `CONFIG RESETSTAT`, in microseconds, and how many
 * scripts ran (`EVALSHA` and `EVAL` together).
 */
export async function scriptTime(port) {
  const info = await redis(port, 'INFO commandstats');
  let usec = 0;
  let calls = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)/gm)) {
    calls += Number(m[1]);
    usec += Number(m[2]);
  }
  return { usec, calls };
}

/**
 * Starts redis-server with no persistence. Returns { url, port, stop(), kill(), start(), command() };
 * `start()` after `kill()` brings up an empty Redis on the same port, as a restart that lost its
 * data; `command(cmd)` is `redis(port, cmd)`.
 * `extraArgs` (optional) are appended to the command line, e.g. `['--maxmemory', '16mb']`;
 * the plain loopback port stays open without a password, for the test's own commands.
 */
export async function startRedis(extraArgs = []) {
  const server = { proc: null };
  server.start = async () => {
    const { port } = server;
    const proc = killedOnExit(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', ...extraArgs.map(String)], { stdio: ['ignore', 'pipe', 'pipe'] }));
    let output = '';
    proc.stdout.on('data', (d) => { output += d; });
    proc.stderr.on('data', (d) => { output += d; });
    server.proc = proc;
    server.exited = new Promise((r) => proc.once('exit', r));
    await until(`redis-server on ${port}`, async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw Object.assign(new Error(`exited: ${output.trim().split('\n').pop()}`), { final: true });
      return (await redis(port, 'PING')) === 'PONG';
    });
  };
  server.kill = async () => {
    if (!server.proc || server.proc.exitCode !== null || server.proc.signalCode !== null) return;
    server.proc.kill('SIGKILL');
    await server.exited;
  };
  server.stop = server.kill;
  server.command = (cmd) => redis(server.port, cmd);
  // A free port can be taken by someone else before redis-server binds it: then try another.
  for (let attempt = 1; ; attempt++) {
    server.port = await freePort();
    server.url = `redis://127.0.0.1:${server.port}`;
    try {
      await server.start();
      return server;
    } catch (e) {
      await server.kill();
      if (!e.final || attempt >= 5) throw e;
    }
  }
}
