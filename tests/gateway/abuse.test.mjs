// Hostile and broken clients: pipelined sends keep their order, every event is budgeted, a user
// cannot take a replica's slots, readers that stall are cut off by bytes, and connections that never
// become Socket.IO connections cannot pile up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { FAST_RATES, startCluster } from '../support/gateway.mjs';
import { closedAfter, until } from '../support/net.mjs';


/** Compares two message ids `<ms>-<seq>` as pairs of numbers. */
function compareIds(a, b) {
  const [am, as] = a.split('-').map(BigInt);
  const [bm, bs] = b.split('-').map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

function assertIncreasing(ids, what) {
  for (let i = 1; i < ids.length; i++) {
    assert.ok(compareIds(ids[i - 1], ids[i]) < 0, `${what}: ${ids[i - 1]} then ${ids[i]} at ${i}`);
  }
}

/** A gauge or counter from the replica's /metrics, summed over the series matching `labels`. */
async function metric(gateway, name, labels = '') {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name) && l.includes(labels))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

/** The resident memory of a process, in bytes. */
function rss(pid) {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line.split(/\s+/)[1]) * 1024;
}

test('several hundred sends pipelined on one connection are stored, acked and delivered in send order', async (t) => {
  const cluster = await startCluster({ replicas: 2, env: { ...FAST_RATES, MAX_EVENTS_IN_FLIGHT: '1000' } });
  t.after(() => cluster.stop());
  const [a, b] = cluster.gateways;
  const sender = await cluster.join(a, { sub: 'typist' });
  const reader = await cluster.join(b, { sub: 'reader' });
  const total = 400;
  // Every send leaves before the first ack comes back.
  const acks = await Promise.all(Array.from({ length: total }, (_, i) => sender.send(`line ${i}`)));
  assert.ok(acks.every((ack) => ack.ok), JSON.stringify(acks.find((ack) => !ack.ok)));
  const ids = acks.map((ack) => ack.id);
  assertIncreasing(ids, 'ack ids in send order');
  for (const c of [sender, reader]) {
    await c.wait('message received', (m) => m.id === ids.at(-1), 20_000);
    const got = c.all('message received');
    assert.deepEqual(got.map((m) => m.text), ids.map((_, i) => `line ${i}`), 'delivered in send order');
    assert.deepEqual(got.map((m) => m.id), ids, 'each delivered under its ack id');
  }
});

test('past MAX_EVENTS_IN_FLIGHT an event is refused at once with rate_limited; what was accepted keeps its order', async (t) => {
  const cluster = await startCluster({ replicas: 1, env: { ...FAST_RATES, MAX_EVENTS_IN_FLIGHT: '4' } });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const flooder = await cluster.join(gw, { sub: 'flooder' });
  const acks = await Promise.all(Array.from({ length: 300 }, (_, i) => flooder.send(`burst ${i}`)));
  const refused = acks.filter((ack) => !ack.ok);
  assert.ok(refused.length > 0, 'some events found four already in flight');
  assert.ok(refused.every((ack) => ack.error === 'rate_limited'), JSON.stringify(refused[0]));
  const accepted = acks.filter((ack) => ack.ok).map((ack) => ack.id);
  assertIncreasing(accepted, 'accepted ack ids');
  await flooder.wait('message received', (m) => m.id === accepted.at(-1));
  assert.deepEqual(flooder.all('message received').map((m) => m.id), accepted, 'exactly the accepted ones, in order');
  // A connection that waits for its acks is never refused.
  for (let i = 0; i < 10; i++) assert.equal((await flooder.send(`calm ${i}`)).ok, true);
});

test('pipelined sends while Redis is away are each acked within 5 s of being sent', async (t) => {
  const cluster = await startCluster({ replicas: 1, env: FAST_RATES });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const c = await cluster.join(gw, { sub: 'patient' });
  await cluster.redis.kill();
  const sent = Date.now();
  const acks = await Promise.all(Array.from({ length: 20 }, (_, i) => c.send(`into the void ${i}`)));
  const took = Date.now() - sent;
  assert.ok(acks.every((ack) => ack.ok === false && ['unavailable', 'rate_limited'].includes(ack.error)), JSON.stringify(acks));
  assert.ok(took < 5000, `the last of 20 queued sends was acked after ${took} ms`);
  assert.equal(c.socket.connected, true);
});

test('history and refresh have per-user budgets of their own and answer rate_limited past them', async (t) => {
  const cluster = await startCluster({ replicas: 1, env: { EVENT_RATE_LIMIT_BURST: '5', EVENT_RATE_LIMIT_PER_SECOND: '1' } });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const tab1 = await cluster.join(gw, { sub: 'pager' });
  const tab2 = await cluster.join(gw, { sub: 'pager' });
  const other = await cluster.join(gw, { sub: 'someone-else' });
  const page = { before: `${Date.now() + 60_000}-0`, limit: 10 };
  // One user's two tabs share the budget.
  const answers = [];
  for (let i = 0; i < 4; i++) answers.push(await tab1.ask('history', page), await tab2.ask('history', page));
  const limited = answers.filter((a) => a.error === 'rate_limited').length;
  assert.ok(answers.slice(0, 5).every((a) => a.ok), 'the burst is served');
  assert.ok(limited >= 2, `past the burst: ${JSON.stringify(answers)}`);
  // Refresh has its own budget: it is still served after history ran out.
  const token = () => cluster.token({ sub: 'pager' });
  assert.equal((await tab1.ask('refresh', token())).ok, true);
  const refreshes = [];
  for (let i = 0; i < 8; i++) refreshes.push(await tab1.ask('refresh', token()));
  assert.ok(refreshes.some((r) => r.error === 'rate_limited'), JSON.stringify(refreshes));
  // Sending is budgeted apart, and another user is untouched.
  assert.equal((await tab1.send('still talking')).ok, true);
  assert.equal((await other.ask('history', page)).ok, true);
});

test('message sent, message edit and read each have a per-user budget of the write rate, apart from each other', async (t) => {
  const cluster = await startCluster({ replicas: 1, env: { RATE_LIMIT_BURST: '3', RATE_LIMIT_PER_SECOND: '1' } });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const writer = await cluster.join(gw, { sub: 'writer' });
  const sends = [];
  for (let i = 0; i < 5; i++) sends.push(await writer.send(`line ${i}`));
  assert.ok(sends.slice(0, 3).every((a) => a.ok), JSON.stringify(sends));
  assert.ok(sends.some((a) => a.error === 'rate_limited'), `past the burst: ${JSON.stringify(sends)}`);
  const { id } = sends[0];
  // Its sends ran out; its edits and reads have budgets of their own.
  const edits = [];
  for (let i = 0; i < 5; i++) edits.push(await writer.ask('message edit', { id, text: `edit ${i}` }));
  assert.ok(edits.slice(0, 3).every((a) => a.ok), JSON.stringify(edits));
  assert.ok(edits.some((a) => a.error === 'rate_limited'), `past the burst: ${JSON.stringify(edits)}`);
  const reads = [];
  for (let i = 0; i < 5; i++) reads.push(await writer.ask('read', { id }));
  assert.ok(reads.slice(0, 3).every((a) => a.ok), JSON.stringify(reads));
  assert.ok(reads.some((a) => a.error === 'rate_limited'), `past the burst: ${JSON.stringify(reads)}`);
});

test("a history flood from one user does not delay another user's acks", async (t) => {
  // Sends are not what is budgeted here; history keeps its default budget.
  const cluster = await startCluster({ replicas: 1, env: FAST_RATES });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  // A room whose history pages are as heavy as they get.
  const filler = await cluster.join(gw, { sub: 'filler' });
  const long = 'h'.repeat(1990);
  for (let i = 0; i < 120; i++) assert.equal((await filler.send(`${i} ${long}`)).ok, true);
  const abuser = await cluster.join(gw, { sub: 'abuser' });
  const victim = await cluster.join(gw, { sub: 'victim' });
  const before = `${Date.now() + 60_000}-0`;
  // Pipelined past its budget, the abuser is also read from only as its budget refills
  // (TCP holds the rest), so its 300 requests are answered over a few seconds.
  const flood = Promise.all(Array.from({ length: 300 }, () => abuser.socket.timeout(60_000).emitWithAck('history', { before, limit: 100 })));
  const latencies = [];
  for (let i = 0; i < 40; i++) {
    const t0 = performance.now();
    const ack = await victim.send(`calm ${i}`);
    latencies.push(performance.now() - t0);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    await new Promise((r) => setTimeout(r, 10));
  }
  const answers = await flood;
  latencies.sort((x, y) => x - y);
  const p99 = latencies[Math.floor(latencies.length * 0.99)];
  assert.ok(p99 < 1000, `the other user's ack p99 was ${p99.toFixed(1)} ms`);
  const served = answers.filter((a) => a.ok).length;
  assert.ok(answers.every((a) => a.ok || a.error === 'rate_limited'), JSON.stringify(answers.find((a) => !a.ok && a.error !== 'rate_limited')));
  assert.ok(served <= 20, `the flood was budgeted: ${served} of ${answers.length} pages served`);
  assert.equal(victim.socket.connected, true);
});

test('one user cannot hold more than MAX_CONNECTIONS_PER_USER connections on a replica', async (t) => {
  const cluster = await startCluster({ replicas: 1, env: { MAX_CONNECTIONS_PER_USER: '3' } });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const tabs = [];
  for (let i = 0; i < 3; i++) tabs.push(await cluster.join(gw, { sub: 'greedy' }));
  const fourth = cluster.client(gw, { token: cluster.token({ sub: 'greedy', room: 'Sports' }) });
  assert.equal(await fourth.refused, 'too_many_connections');
  // Another user is not affected.
  await cluster.join(gw, { sub: 'modest' });
  // A slot comes back when one of the user's connections goes.
  tabs[0].socket.close();
  await until('a freed slot', async () => {
    const again = cluster.client(gw, { token: cluster.token({ sub: 'greedy' }) });
    try {
      await again.welcome;
      return true;
    } catch {
      return false;
    }
  }, { timeoutMs: 5000, everyMs: 100 });
});

test('a connection that never sends a whole request head is closed by the header-read timeout', async (t) => {
  const cluster = await startCluster({ replicas: 1, env: { HTTP_HEADER_TIMEOUT_S: '1' } });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const [silent, slowloris] = await Promise.all([
    closedAfter(gw.port, null),
    closedAfter(gw.port, 'GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n'),
  ]);
  assert.ok(silent < 4000 && slowloris < 4000, `closed after ${silent} ms and ${slowloris} ms`);
  // A whole request is still served.
  assert.equal((await fetch(`${gw.url}/healthz`)).status, 200);
});

test('readers that stall are cut off by bytes waiting, at once, and the replica stays small', async (t) => {
  const stalled = 6;
  const cluster = await startCluster({
    replicas: 1,
    // The packet limit is out of reach: only the byte limit (1 MiB by default) can catch them.
    env: { ...FAST_RATES, SLOW_CONSUMER_MAX_PACKETS: '1000000' },
  });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const readers = [];
  for (let i = 0; i < stalled; i++) readers.push(await cluster.join(gw, { sub: `stall-${i}`, room: 'Music' }));
  const fast = await cluster.join(gw, { sub: 'fast', room: 'Music' });
  const sender = await cluster.join(gw, { sub: 'sender', room: 'Music' });
  const baseline = rss(gw.proc.pid);
  for (const r of readers) r.socket.io.engine.transport.ws._socket.pause();

  // 3,000 messages of ~2 KB: about 6 MB for each reader, 36 MB if the replica kept it all.
  const text = 'z'.repeat(1990);
  const total = 3000;
  let last;
  let peak = baseline;
  for (let i = 0; i < total; i += 50) {
    const acks = await Promise.all(Array.from({ length: 50 }, (_, j) => sender.send(`${i + j} ${text}`)));
    assert.ok(acks.every((ack) => ack.ok));
    last = acks.at(-1);
    peak = Math.max(peak, rss(gw.proc.pid));
  }
  await fast.wait('message received', (m) => m.id === last.id, 30_000);
  assert.equal(fast.all('message received').length, total, 'the reader that keeps up got everything');
  // Cut while still stalled: the server does not wait for them to read or for a heartbeat.
  await until('every stalled reader cut', async () => (await metric(gw, 'chat_gateway_sessions_ended_total', 'slow_consumer')) === stalled, { timeoutMs: 5000 });
  await until('only the fast reader and the sender left', async () => (await metric(gw, 'chat_gateway_connections')) === 2, { timeoutMs: 5000 });
  const grew = peak - baseline;
  assert.ok(grew < 24 * 1024 * 1024, `RSS grew by ${(grew / 1048576).toFixed(1)} MiB with ${stalled} stalled readers`);
  for (const r of readers) r.socket.io.engine.transport.ws._socket.resume();
  for (const r of readers) {
    await r.closed;
    assert.ok(r.all('message received').length < total, 'cut off before the end');
  }
  assert.equal(fast.socket.connected, true);
});

test('a malformed event payload gets a clear error and loses nothing', async (t) => {
  const cluster = await startCluster({ replicas: 1 });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const c = await cluster.join(gw, { sub: 'odd' });
  assert.deepEqual(await c.ask('history', 'not an object'), { ok: false, error: 'invalid' });
  assert.deepEqual(await c.ask('history', { before: 'x', limit: 5 }), { ok: false, error: 'invalid' });
  assert.deepEqual(await c.ask('history', { before: '1-0', limit: 1000 }), { ok: false, error: 'invalid' });
  assert.deepEqual(await c.ask('message sent', { text: 'an object' }), { ok: false, error: 'invalid' });
  assert.deepEqual(await c.ask('refresh', { token: 1 }), { ok: false, error: 'token_invalid' });
  const ack = await c.send('fine after all that');
  assert.equal(ack.ok, true);
  await c.wait('message received', (m) => m.id === ack.id);
  assert.equal(c.socket.connected, true);
});

