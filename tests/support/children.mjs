// Every process a test starts is SIGKILLed when the test file's process exits, even after a
// failure, so a test run never leaves servers behind (scripts/test runs with --test-force-exit).

const children = new Set();
process.once('exit', () => {
  for (const proc of children) proc.kill('SIGKILL');
});

/** Registers `proc` to be SIGKILLed when this process exits; returns `proc`. */
export function killedOnExit(proc) {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return proc;
}
