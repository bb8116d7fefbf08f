// Presence that stays true: one entry and one exit per user, however many tabs and replicas.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../support/gateway.mjs';

let cluster;
let a;
let b;

before(async () => {
  cluster = await startCluster({ replicas: 2, env: { EXIT_GRACE_S: '1', SWEEP_INTERVAL_MS: '200', RATE_LIMIT_BURST: '1000', RATE_LIMIT_PER_SECOND: '1000' } });
  [a, b] = cluster.gateways;
});
after(() => cluster?.stop());

/** Sends a marker through `sender` and waits until `reader` has it: everything published before it has arrived. */
async function settle(sender, reader) {
  const ack = await sender.send(`marker ${Math.random()}`);
  await reader.wait('message received', (m) => m.id === ack.id);
}

test('two tabs of one user on two replicas at the same instant: one entry, one member, one exit', async () => {
  const observer = await cluster.join(a, { sub: 'obs1', room: 'Sports' });
  const [tab1, tab2] = await Promise.all([
    cluster.join(a, { sub: 'ann', name: 'Ann', room: 'Sports' }),
    cluster.join(b, { sub: 'ann', name: 'Ann', room: 'Sports' }),
  ]);
  await settle(observer, observer);
  assert.deepEqual(observer.all('user entered'), [{ id: 'ann', name: 'Ann' }]);
  const late = await cluster.join(b, { sub: 'late1', room: 'Sports' });
  const members = (await late.welcome).members.map((m) => m.id).sort();
  assert.deepEqual(members, ['ann', 'late1', 'obs1']);

  tab1.socket.close();
  await tab1.closed;
  // One tab left: Ann stays. Wait past the grace and a sweep, then check.
  await new Promise((r) => setTimeout(r, 1600));
  await settle(observer, observer);
  assert.deepEqual(observer.all('user exited'), []);

  const closedAt = Date.now();
  tab2.socket.close();
  const exited = await observer.wait('user exited', (u) => u.id === 'ann', 5000);
  assert.deepEqual(exited, { id: 'ann', name: 'Ann' });
  assert.ok(Date.now() - closedAt >= 900, 'not before the exit grace');
  await settle(observer, observer);
  await settle(observer, late);
  assert.equal(observer.all('user exited').length, 1);
  assert.equal(late.all('user exited').length, 1);
});

test('a user who reconnects within the grace causes neither exit nor entry', async () => {
  const observer = await cluster.join(b, { sub: 'obs2', room: 'Music' });
  const first = await cluster.join(a, { sub: 'bob', room: 'Music' });
  await observer.wait('user entered', (u) => u.id === 'bob');
  first.socket.close();
  await first.closed;
  await cluster.join(b, { sub: 'bob', room: 'Music' });
  await new Promise((r) => setTimeout(r, 1600));
  await settle(observer, observer);
  assert.equal(observer.all('user entered').filter((u) => u.id === 'bob').length, 1);
  assert.deepEqual(observer.all('user exited'), []);
});

test('a joining connection gets welcome first, and its members list each user once', async () => {
  const sender = await cluster.join(a, { sub: 'chatty', room: 'General' });
  const flood = (async () => { for (let i = 0; i < 100; i++) await sender.send(`f${i}`); })();
  const joiners = await Promise.all(Array.from({ length: 5 }, (_, i) => cluster.join(b, { sub: `j${i % 2}`, room: 'General' })));
  await flood;
  for (const j of joiners) {
    assert.equal(j.events[0].name, 'welcome', 'welcome before anything else');
    const w = j.events[0].payload;
    const ids = w.members.map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, 'each user once');
    // Nothing missed, nothing twice: history plus live messages are exactly the flood's tail.
    await settle(sender, j);
    const seen = [...w.history, ...j.all('message received')].map((m) => m.id);
    assert.equal(new Set(seen).size, seen.length, 'no message twice');
    const texts = [...w.history, ...j.all('message received')].map((m) => m.text).filter((t) => /^f\d+$/.test(t));
    const last = texts.map((t) => Number(t.slice(1)));
    for (let i = 1; i < last.length; i++) assert.equal(last[i], last[i - 1] + 1, 'no gap');
    assert.equal(last.at(-1), 99);
  }
});
