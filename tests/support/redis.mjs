// A private redis-server for one test file, on a free loopback port: never the machine's shared 6379.
import { spawn } from 'node:child_process';
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

/**
 * Starts redis-server with no persistence. Returns { url, port, stop(), kill(), start() };
 * `start()` after `kill()` brings up an empty Redis on the same port, as a restart that lost its data.
 * `extraArgs` (optional) are appended to the command line, e.g. `['--maxmemory', '16mb']`;
 * the plain loopback port stays open without a password, for the test's own commands.
 */
export async function startRedis(extraArgs = []) {
  const port = await freePort();
  const server = { port, url: `redis://127.0.0.1:${port}`, proc: null };
  server.start = async () => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning', ...extraArgs.map(String)], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.proc = proc;
    const exited = new Promise((r) => proc.once('exit', r));
    server.exited = exited;
    await until(`redis-server on ${port}`, async () => (await redisCommand(port, 'PING')).startsWith('+PONG'));
  };
  server.kill = async () => {
    if (!server.proc || server.proc.exitCode !== null) return;
    server.proc.kill('SIGKILL');
    await server.exited;
  };
  server.stop = server.kill;
  server.command = (cmd) => redisCommand(port, cmd);
  await server.start();
  return server;
}
