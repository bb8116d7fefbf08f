// A private redis-server for one test file, on a free loopback port: never the machine's shared 6379.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { killedOnExit } from './children.mjs';
import { freePort, until } from './net.mjs';
import net from 'node:net';

/** Sends one inline command and resolves with the raw reply text. */
export function redisCommand(port, command) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    sock.setTimeout(2000, () => sock.destroy(new Error('redis command timed out')));
    sock.on('error', reject);
    sock.on('data', (d) => {
      data += d.toString();
      if (data.endsWith('\r\n')) {
        sock.end();
        resolve(data);
      }
    });
    sock.write(`${command}\r\n`);
  });
}

/** Runs `redis-cli` against the Redis on `port` and resolves with its output. */
export async function redisCli(port, ...args) {
  const { stdout } = await promisify(execFile)('redis-cli', ['-p', String(port), ...args.map(String)]);
  return stdout;
}

/**
 * Redis time spent in scripts since the last `CONFIG RESETSTAT`, in microseconds, and how many
 * scripts ran (`EVALSHA` and `EVAL` together).
 */
export async function scriptTime(port) {
  const info = await redisCli(port, 'INFO', 'commandstats');
  let usec = 0;
  let calls = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+),usec=(\d+)/gm)) {
    calls += Number(m[1]);
    usec += Number(m[2]);
  }
  return { usec, calls };
}

/**
 * Starts redis-server with no persistence. Returns { url, port, stop(), kill(), start() };
 * `start()` after `kill()` brings up an empty Redis on the same port, as a restart that lost its data.
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
      return (await redisCommand(port, 'PING')).startsWith('+PONG');
    });
  };
  server.kill = async () => {
    if (!server.proc || server.proc.exitCode !== null || server.proc.signalCode !== null) return;
    server.proc.kill('SIGKILL');
    await server.exited;
  };
  server.stop = server.kill;
  server.command = (cmd) => redisCommand(server.port, cmd);
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
