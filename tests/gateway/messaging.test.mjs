// Messages across replicas: validation, acks, order, history and recovery with `since`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAST_RATES, fileCluster } from '../support/gateway.mjs';

const cluster = await fileCluster({ replicas: 2, env: FAST_RATES });
const [a, b] = cluster.gateways;

test('a message sent through one replica reaches every member on every replica, the sender included', async () => {
  const ann = await cluster.join(a, { sub: 'ann', name: 'Ann', room: 'Sports' });
  const bob = await cluster.join(b, { sub: 'bob', name: 'Bob', room: 'Sports' });
  const elsewhere = await cluster.join(b, { sub: 'cy', room: 'Music' });
  const text = '<img src=x onerror=alert(1)> & "quotes" / \\ 😀';
  const ack = await ann.send(text);
  assert.equal(ack.ok, true);
  assert.match(ack.id, /^\d+-\d+$/);
  for (const c of [ann, bob]) {
    const m = await c.wait('message received', (m) => m.id === ack.id);
    assert.deepEqual(Object.keys(m).sort(), ['id', 'room', 'text', 'ts', 'user']);
    assert.equal(m.text, text, 'text exactly as sent');
    assert.equal(m.room, 'Sports');
    assert.deepEqual(m.user, { id: 'ann', name: 'Ann' });
    assert.ok(Math.abs(m.ts - Date.now()) < 10_000);
  }
  // A marker in Music proves the Sports message did not leak there.
  const marker = await elsewhere.send('marker');
  await elsewhere.wait('message received', (m) => m.id === marker.id);
  assert.equal(elsewhere.all('message received').length, 1);
});

test('bad messages get the contract error and are neither stored nor delivered', async () => {
  const ann = await cluster.join(a, { sub: 'ann2', room: 'General' });
  const watcher = await cluster.join(b, { sub: 'watch2', room: 'General' });
  assert.deepEqual(await ann.send(42), { ok: false, error: 'invalid' });
  assert.deepEqual(await ann.send({ text: 'hi' }), { ok: false, error: 'invalid' });
  assert.deepEqual(await ann.send(''), { ok: false, error: 'empty' });
  assert.deepEqual(await ann.send(' \n\t '), { ok: false, error: 'empty' });
  assert.deepEqual(await ann.send('😀'.repeat(2001)), { ok: false, error: 'too_long' });
  const longest = await ann.send('😀'.repeat(2000));
  assert.equal(longest.ok, true, '2000 code points are allowed');
  const m = await watcher.wait('message received', (m) => m.id === longest.id);
  assert.equal([...m.text].length, 2000);
  assert.equal(watcher.all('message received').length, 1, 'only the valid message was delivered');
});

test('every connection sees a room\'s messages in id order while senders on both replicas race', async () => {
  const senders = [];
  for (let i = 0; i < 4; i++) senders.push(await cluster.join(i % 2 ? b : a, { sub: `racer${i}`, room: 'Music' }));
  const readers = [await cluster.join(a, { sub: 'reader-a', room: 'Music' }), await cluster.join(b, { sub: 'reader-b', room: 'Music' })];
  const perSender = 50;
  const acks = await Promise.all(senders.map((s, i) => Promise.all(Array.from({ length: perSender }, (_, k) => s.send(`${i}:${k}`)))));
  const ids = new Set(acks.flat().map((x) => { assert.equal(x.ok, true); return x.id; }));
  assert.equal(ids.size, senders.length * perSender);
  const key = (id) => id.split('-').map(BigInt);
  const less = (x, y) => { const [a1, a2] = key(x); const [b1, b2] = key(y); return a1 < b1 || (a1 === b1 && a2 < b2); };
  for (const r of [...readers, ...senders]) {
    await r.wait('message received', () => r.all('message received').filter((m) => ids.has(m.id)).length === ids.size);
    const got = r.all('message received').filter((m) => ids.has(m.id)).map((m) => m.id);
    for (let i = 1; i < got.length; i++) assert.ok(less(got[i - 1], got[i]), `out of order: ${got[i - 1]} then ${got[i]}`);
    assert.equal(new Set(got).size, got.length, 'no duplicates');
  }
});

test('history pages back, oldest first, and refuses bad requests', async () => {
  const ann = await cluster.join(a, { sub: 'hist', room: 'General' });
  const ids = [];
  for (let i = 0; i < 30; i++) ids.push((await ann.send(`h${i}`)).id);
  const page = await ann.ask('history', { before: ids[20], limit: 5 });
  assert.equal(page.ok, true);
  assert.deepEqual(page.messages.map((m) => m.text), ['h15', 'h16', 'h17', 'h18', 'h19']);
  assert.deepEqual(await ann.ask('history', { before: ids[20], limit: 101 }), { ok: false, error: 'invalid' });
  assert.deepEqual(await ann.ask('history', { before: 'yesterday', limit: 5 }), { ok: false, error: 'invalid' });
  assert.deepEqual(await ann.ask('history', 'nope'), { ok: false, error: 'invalid' });
  const late = await cluster.join(b, { sub: 'late', room: 'General' });
  const welcome = await late.welcome;
  assert.ok(welcome.history.length <= 100);
  assert.equal(welcome.history.at(-1).id, ids.at(-1), 'welcome history ends with the newest message');
});

test('a client that reconnects with `since` gets exactly what it missed', async () => {
  const sender = await cluster.join(a, { sub: 'since-sender', room: 'Sports' });
  const first = await sender.send('before');
  const missed = [];
  for (let i = 0; i < 3; i++) missed.push((await sender.send(`missed ${i}`)).id);
  const back = await cluster.join(b, { sub: 'since-reader', room: 'Sports', since: first.id });
  const welcome = await back.welcome;
  assert.equal(welcome.recovered, true);
  assert.deepEqual(welcome.history.map((m) => m.id), missed);
  for (let i = 0; i < 105; i++) await sender.send(`flood ${i}`);
  const far = await cluster.join(b, { sub: 'since-far', room: 'Sports', since: first.id });
  const w2 = await far.welcome;
  assert.equal(w2.recovered, false, 'more than 100 came after since');
  assert.equal(w2.history.length, 100);
});

test('the per-user rate limit refuses a burst beyond its size, and refused sends do not count', async () => {
  const limited = await (async () => {
    const { startGateway } = await import('../support/gateway.mjs');
    return startGateway(cluster, { RATE_LIMIT_BURST: '3', RATE_LIMIT_PER_SECOND: '1' });
  })();
  const c = await cluster.join(limited, { sub: 'spammer', room: 'General' });
  assert.deepEqual(await c.send(''), { ok: false, error: 'empty' });
  const results = [];
  for (let i = 0; i < 5; i++) results.push(await c.send(`s${i}`));
  assert.deepEqual(results.map((r) => r.ok), [true, true, true, false, false]);
  assert.equal(results[3].error, 'rate_limited');
  await limited.stop('SIGKILL');
});
