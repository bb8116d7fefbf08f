// `typing` → `user typing`: to the room's other users only, at most one per user per 2 s
// across replicas, never stored.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../support/gateway.mjs';
import { until } from '../support/net.mjs';

let cluster;
let a;
let b;

before(async () => {
  cluster = await startCluster({ replicas: 2 });
  [a, b] = cluster.gateways;
});
after(() => cluster?.stop());

test('typing reaches the other users on every replica, never the typist\'s own tabs', async () => {
  const room = 'Sports';
  const annA = await cluster.join(a, { sub: 'ann', name: 'Ann', room });
  const annB = await cluster.join(b, { sub: 'ann', name: 'Ann', room });
  const bob = await cluster.join(b, { sub: 'bob', name: 'Bob', room });
  const cy = await cluster.join(a, { sub: 'cy', name: 'Cy', room });
  const elsewhere = await cluster.join(a, { sub: 'di', room: 'Music' });
  annA.socket.emit('typing');
  for (const c of [bob, cy]) {
    assert.deepEqual(await c.wait('user typing'), { id: 'ann', name: 'Ann' });
  }
  // Bob's typing reaches Ann's tabs after Ann's own would have: none of hers came first.
  bob.socket.emit('typing');
  for (const c of [annA, annB]) {
    await c.wait('user typing', (u) => u.id === 'bob');
    assert.deepEqual(c.all('user typing'), [{ id: 'bob', name: 'Bob' }]);
  }
  await cy.wait('user typing', (u) => u.id === 'bob');
  assert.deepEqual(bob.all('user typing'), [{ id: 'ann', name: 'Ann' }], 'not his own');
  // Nothing leaks to another room, nothing is stored.
  const marker = await elsewhere.send('marker');
  await elsewhere.wait('message received', (m) => m.id === marker.id);
  assert.equal(elsewhere.all('user typing').length, 0);
  const late = await cluster.join(b, { sub: 'eve', room });
  assert.equal((await late.welcome).history.length, 0, 'typing writes no history');
});

test('a burst of typing from two tabs on two replicas reaches the room once per 2 s', async () => {
  const room = 'General';
  const tab1 = await cluster.join(a, { sub: 'fay', name: 'Fay', room });
  const tab2 = await cluster.join(b, { sub: 'fay', name: 'Fay', room });
  const gus = await cluster.join(a, { sub: 'gus', room });
  const started = Date.now();
  for (let i = 0; i < 20; i++) {
    tab1.socket.emit('typing');
    tab2.socket.emit('typing');
  }
  // Each tab's events are handled in order: once both messages reach Gus, every typing
  // before them was published or dropped.
  const [m1, m2] = await Promise.all([tab1.send('one'), tab2.send('two')]);
  await gus.wait('message received', (m) => m.id === m1.id);
  await gus.wait('message received', (m) => m.id === m2.id);
  assert.equal(gus.all('user typing').length, 1, 'one of forty reached the room');
  // Keep typing: the next one gets through only once the 2 s have passed.
  const second = await until('a second user typing', () => {
    tab1.socket.emit('typing');
    return gus.all('user typing').length >= 2 ? Date.now() : undefined;
  }, { timeoutMs: 6000, everyMs: 100 });
  assert.ok(second - started >= 1900, `second after ${second - started} ms`);
  assert.equal(gus.all('user typing').length, 2);
});
