// The Redis topologies of topology.mjs for tests in other languages (the store's Rust tests):
//
//   node tests/support/topology_cli.mjs single|cluster|sentinel [redis-server argument …]
//
// starts the topology and prints one JSON line: { "kind", "url", "port" } once it is ready, or
// { "error" } (and exits 1) if it could not start. Then each line read on stdin is one call of a
// method of the topology, { "call": "killPrimaryOf", "args": ["chat:room:{General}:seq"] },
// answered by one line { "ok": result } or { "error": message }; a node in a result is its port.
// When stdin closes, every process is SIGKILLed and the directories removed, and the script exits:
// the test that spawned it cannot leave Redis behind, whether it ends, fails or is killed.
import readline from 'node:readline';
import { startRedisTopology } from './topology.mjs';

/** Writes one line of JSON to stdout; a node of the topology (it has a process) as its port. */
function answer(value) {
  process.stdout.write(`${JSON.stringify(value, (_, v) => (v && typeof v === 'object' && 'proc' in v ? v.port : v))}\n`);
}

const [kind = 'single', ...args] = process.argv.slice(2);
let topology;
try {
  topology = await startRedisTopology(kind, { args });
} catch (e) {
  answer({ error: e.message });
  process.exit(1);
}
answer({ kind: topology.kind, url: topology.url, port: topology.port });

const lines = readline.createInterface({ input: process.stdin });
// One call at a time, in order: a fault and the check after it must not overlap.
let queue = Promise.resolve();
lines.on('line', (line) => {
  queue = queue.then(async () => {
    try {
      const { call, args: callArgs = [] } = JSON.parse(line);
      if (typeof topology[call] !== 'function') throw new Error(`a ${topology.kind} topology has no '${call}'`);
      answer({ ok: (await topology[call](...callArgs)) ?? null });
    } catch (e) {
      answer({ error: e.message });
    }
  });
});
// At once, even while a call is under way (it fails with the processes gone, and nobody reads it).
lines.on('close', async () => {
  await topology.stop();
  process.exit(0);
});
