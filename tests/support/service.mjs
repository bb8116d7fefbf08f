// Starts the project's real binaries (built by `cargo build`) and waits until they answer /healthz.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { killedOnExit } from './children.mjs';
import { until } from './net.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where the binaries are: $CHAT_BIN_DIR, or target/debug. */
export const binDir = process.env.CHAT_BIN_DIR ?? path.join(root, 'target', 'debug');
export const repoRoot = root;

/**
 * Spawns `name` with `env` added to a clean environment, and waits until `healthUrl` answers 200.
 * `bin` runs another build of it (a path) instead of this tree's.
 * Returns { proc, logs(), stop(signal), exited }.
 */
export async function startService(name, env, healthUrl, { timeoutMs = 15_000, bin = path.join(binDir, name) } = {}) {
  const proc = killedOnExit(spawn(bin, [], {
    cwd: root,
    env: { PATH: process.env.PATH, RUST_LOG: process.env.RUST_LOG ?? 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let output = '';
  const collect = (d) => {
    output += d.toString();
    if (process.env.CHAT_TEST_LOGS) process.stderr.write(`[${name}] ${d}`);
  };
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  const exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const service = {
    proc,
    exited,
    logs: () => output,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      proc.kill(signal);
      return exited;
    },
  };
  try {
    await until(`${name} at ${healthUrl}`, async () => {
      if (proc.exitCode !== null) throw new Error(`${name} exited with ${proc.exitCode}: ${output}`);
      const res = await fetch(healthUrl);
      return res.ok;
    }, { timeoutMs });
  } catch (e) {
    proc.kill('SIGKILL');
    throw new Error(`${e.message}\n--- ${name} output ---\n${output}`);
  }
  return service;
}
