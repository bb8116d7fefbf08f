// The gateway of the release before this one (docs/UPGRADES.md), built from this repository's
// history for the rolling-upgrade tests: `git archive` of its commit into target/previous-src, then
// `cargo build` into a target directory of its own (target/previous), so this tree's build is
// never touched. Built once: a warm rerun only asks cargo, which finds it fresh. Run as a script
// (`node tests/support/previous.mjs`) it builds it ahead of the tests (scripts/test does).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from './service.mjs';

/** The last commit of the release before, on main. */
export const PREVIOUS_RELEASE = '372f50d';

const source = path.join(repoRoot, 'target', 'previous-src');
const targetDir = path.join(repoRoot, 'target', 'previous');

function run(command, args, options = {}) {
  const done = spawnSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'], ...options });
  if (done.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${done.error?.message ?? `exit ${done.status}`})`);
  }
}

/** Builds, if it is not built yet, and returns the path of the release before's chat-gateway. */
export function previousGateway() {
  const stamp = path.join(source, '.release');
  if (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8').trim() !== PREVIOUS_RELEASE) {
    // A clone without that commit (a shallow one) cannot run these tests: say so.
    run('git', ['-C', repoRoot, 'cat-file', '-e', `${PREVIOUS_RELEASE}^{commit}`]);
    fs.rmSync(source, { recursive: true, force: true });
    fs.mkdirSync(source, { recursive: true });
    run('sh', ['-c', 'git -C "$0" archive "$1" | tar -x -C "$2"', repoRoot, PREVIOUS_RELEASE, source]);
    fs.writeFileSync(stamp, `${PREVIOUS_RELEASE}\n`);
  }
  // The gateway alone, unoptimised, without debug info and without jemalloc (whose C build is
  // long): what the tests need, at about a quarter of this tree's build's CPU time.
  const unoptimised = ['--config', 'profile.dev.opt-level=0', '--config', 'profile.dev.package."*".opt-level=0'];
  run('cargo', ['build', '--quiet', '-p', 'chat-gateway', '--bin', 'chat-gateway', '--no-default-features', ...unoptimised], {
    cwd: source,
    env: { ...process.env, CARGO_TARGET_DIR: targetDir, CARGO_PROFILE_DEV_DEBUG: '0' },
  });
  return path.join(targetDir, 'debug', 'chat-gateway');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(previousGateway());
}
