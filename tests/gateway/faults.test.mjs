// Faults are features: a replica killed without a word, Redis restarting empty, a rolling restart.
// These tests use the default timing settings, so they measure the contract's own promises.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../support/gateway.mjs';
import { until } from '../support/net.mjs';

async function settle(sender, reader) {
  const ack = await sender.send(`marker ${Math.random()}`);
  assert.equal(ack.ok, true);
  await reader.wait('message received', (m) => m.id === ack.id);
}

test('the users of a replica killed with SIGKILL exit within 15 s; users who reconnect elsewhere do not', async (t) => {
  const cluster = await startCluster({ replicas: 2 });
  t.after(() => cluster.stop());
  const [doomed, survivor] = cluster.gateways;
  const observer = await cluster.join(survivor, { sub: 'observer' });
  await cluster.join(doomed, { sub: 'victim', name: 'Victim' });
  const mover = await cluster.join(doomed, { sub: 'mover' });
  await observer.wait('user entered', (u) => u.id === 'mover');

  const killedAt = Date.now();
  await doomed.stop('SIGKILL');
  await mover.closed;
  // The mover's client reconnects to the surviving replica at once.
  await cluster.join(survivor, { sub: 'mover' });
  const exited = await observer.wait('user exited', (u) => u.id === 'victim', 15_000);
  const elapsed = Date.now() - killedAt;
  assert.deepEqual(exited, { id: 'victim', name: 'Victim' });
  assert.ok(elapsed <= 15_000, `user exited after ${elapsed} ms`);
  await settle(observer, observer);
  assert.deepEqual(observer.all('user exited').map((u) => u.id), ['victim'], 'the mover never exited');
  assert.equal(observer.all('user entered').filter((u) => u.id === 'mover').length, 1);
});

test('while Redis is away connections stay open and sends are refused within 5 s; after an empty restart everything heals', async (t) => {
  const cluster = await startCluster({ replicas: 2 });
  t.after(() => cluster.stop());
  const [a, b] = cluster.gateways;
  const ann = await cluster.join(a, { sub: 'ann' });
  const bob = await cluster.join(b, { sub: 'bob' });
  await settle(ann, bob);

  await cluster.redis.kill();
  const sentAt = Date.now();
  const ack = await ann.send('into the void');
  assert.deepEqual(ack, { ok: false, error: 'unavailable' });
  assert.ok(Date.now() - sentAt < 5000, 'acked within 5 s');
  assert.equal((await fetch(`${a.url}/healthz`)).status, 200);
  await until('readyz to report Redis away', async () => (await fetch(`${a.url}/readyz`)).status === 503);
  assert.equal(ann.socket.connected, true);
  assert.equal(bob.socket.connected, true);

  const restartedAt = Date.now();
  await cluster.redis.start();
  // Presence heals without anyone reconnecting, and announces nobody.
  await until('presence restored', async () => (await cluster.redis.command('HLEN chat:room:{General}:users')) === 2, { timeoutMs: 15_000, everyMs: 100 });
  assert.ok(Date.now() - restartedAt <= 15_000);
  // Ready again means commands and the fan-out subscription are both back.
  for (const g of [a, b]) await until('readyz ready again', async () => (await fetch(`${g.url}/readyz`)).status === 200, { timeoutMs: 10_000 });
  // Fan-out resumes across replicas (subscriptions were restored).
  await until('a send accepted', async () => (await ann.send('back')).ok, { timeoutMs: 10_000, everyMs: 200 });
  await settle(ann, bob);
  await settle(bob, ann);
  const late = await cluster.join(b, { sub: 'late' });
  assert.deepEqual((await late.welcome).members.map((m) => m.id).sort(), ['ann', 'bob', 'late']);
  await ann.wait('user entered', (u) => u.id === 'late');
  await settle(late, bob);
  assert.deepEqual(ann.all('user entered').map((u) => u.id), ['bob', 'late'], 'rebuilt presence announced nobody');
  assert.deepEqual(bob.all('user entered').map((u) => u.id), ['late'], 'rebuilt presence announced nobody');
  // Message ids keep increasing across the data loss.
  const before = ann.all('message received')[0].id.split('-').map(BigInt);
  const after = ann.all('message received').at(-1).id.split('-').map(BigInt);
  assert.ok(after[0] > before[0] || (after[0] === before[0] && after[1] > before[1]));
});

test('SIGTERM drains a replica: clients are told to go, it exits within 30 s, and a rolling restart spams nobody', async (t) => {
  const cluster = await startCluster({ replicas: 2, env: { EXIT_GRACE_S: '3' } });
  t.after(() => cluster.stop());
  const [leaving, staying] = cluster.gateways;
  const observer = await cluster.join(staying, { sub: 'observer' });
  const users = await Promise.all(['u1', 'u2', 'u3'].map((sub) => cluster.join(leaving, { sub })));
  await until('all entered', () => observer.all('user entered').length === 3);

  const t0 = Date.now();
  const exit = leaving.stop('SIGTERM');
  for (const u of users) {
    assert.deepEqual(await u.wait('session ended', () => true, 5000), { reason: 'shutdown' });
    await u.closed;
  }
  // They reconnect elsewhere within the grace.
  await Promise.all(['u1', 'u2', 'u3'].map((sub) => cluster.join(staying, { sub })));
  const { code, signal } = await exit;
  assert.ok(Date.now() - t0 < 30_000, 'exited within 30 s');
  assert.equal(code, 0, `exit code ${code} signal ${signal}`);
  // Past the grace and a sweep: nobody exited, nobody entered twice.
  await new Promise((r) => setTimeout(r, 4500));
  await settle(observer, observer);
  assert.deepEqual(observer.all('user exited'), []);
  assert.equal(observer.all('user entered').length, 3);
  const members = await cluster.redis.command('HLEN chat:room:{General}:users');
  assert.equal(members, 4);
});

test('a replica whose fan-out subscription drops reads the gap back: its clients miss nothing', async (t) => {
  const cluster = await startCluster({ replicas: 2, env: { RATE_LIMIT_BURST: '1000', RATE_LIMIT_PER_SECOND: '1000' } });
  t.after(() => cluster.stop());
  const [a, b] = cluster.gateways;
  const sender = await cluster.join(a, { sub: 'sender' });
  const reader = await cluster.join(b, { sub: 'reader' });
  await settle(sender, reader);
  // Cut every subscriber connection; commands keep working, so sends go on while the
  // replicas reconnect and resubscribe.
  await cluster.redis.command('CLIENT KILL TYPE pubsub');
  const ids = [];
  for (let i = 0; i < 20; i++) {
    const ack = await sender.send(`during the gap ${i}`);
    assert.equal(ack.ok, true);
    ids.push(ack.id);
  }
  await reader.wait('message received', (m) => m.id === ids.at(-1), 10_000);
  const got = reader.all('message received').map((m) => m.id).filter((id) => ids.includes(id));
  assert.deepEqual(got, ids, 'every message, once, in order');
  await settle(sender, reader);
});
