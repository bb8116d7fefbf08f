// One slow Redis replica, with REDIS_WAIT_REPLICAS=1: the replica is SIGSTOPped (it stays
// connected and stops answering, as one stalled by its disk, its host or the network) while three
// users talk. Only the acks that wait for it may wait: history, read markers, new handshakes and
// /readyz answer at once, no send is acked ok while no replica holds it, and once the replica is
// back every text is stored once and acked ok.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../support/gateway.mjs';
import { until } from '../support/net.mjs';
import { keepSending, assertStoredOnce, assertDeliveredOnce, watchReadiness } from '../support/traffic.mjs';

const FAST = { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SECOND: '100000', EVENT_RATE_LIMIT_BURST: '1000', EVENT_RATE_LIMIT_PER_SECOND: '1000' };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` and resolves with [its result, how long it took in ms]. */
async function timed(fn) {
  const t0 = Date.now();
  const result = await fn();
  return [result, Date.now() - t0];
}

test('Sentinel, REDIS_WAIT_REPLICAS=1: a stopped Redis replica holds up only the acks that wait for it; nothing is lost or stored twice', async (t) => {
  const cluster = await startCluster({ replicas: 2, topology: 'sentinel', env: { ...FAST, REDIS_WAIT_REPLICAS: '1' } });
  t.after(() => cluster.stop());
  const [a, b] = cluster.gateways;
  const senders = [];
  for (const [name, gw] of [['ann', a], ['bob', b], ['cy', a]]) senders.push({ name, client: await cluster.join(gw, { sub: name }) });
  const reader = await cluster.join(b, { sub: 'reader' });
  const talk = keepSending(senders);
  await until('traffic flowing', () => talk.ok().length >= 10);
  const readiness = watchReadiness([a, b]);

  await cluster.redis.pauseReplica();
  const stoppedAt = Date.now();
  // The senders' acks now wait for the replica; meanwhile everything else must answer at once.
  await sleep(500);
  const slow = [];
  for (let i = 0; Date.now() - stoppedAt < 5000; i++) {
    const [page, historyMs] = await timed(() => reader.ask('history', { before: `${Date.now() + 3_600_000}-0`, limit: 50 }));
    assert.equal(page.ok, true, `history during the stall: ${JSON.stringify(page)}`);
    const last = reader.all('message received').at(-1);
    const [marked, readMs] = await timed(() => reader.ask('read', { id: last.id }));
    assert.deepEqual(marked, { ok: true }, 'read during the stall');
    // cluster.join resolves once `welcome` arrived, and rejects on a refusal (`server_busy`).
    const [late, joinMs] = await timed(() => cluster.join(i % 2 ? b : a, { sub: `late-${i}` }));
    late.socket.close();
    for (const [what, ms, limit] of [['history', historyMs, 200], ['read', readMs, 200], ['handshake', joinMs, 500]]) {
      if (ms > limit) slow.push(`${what} ${ms} ms`);
    }
    await sleep(200);
  }
  assert.deepEqual(slow, [], 'history, read and handshakes answer promptly while the replica is stopped');
  const okWhileStopped = talk.acks.filter((x) => x.ack.ok && x.at > stoppedAt + 300);
  assert.deepEqual(okWhileStopped.map((x) => x.text), [], 'no send is acked ok while no replica can hold it');

  await cluster.redis.resumeReplica();
  const resumedAt = Date.now();
  await until('every user acked ok after the replica is back', () => senders.every((s) => talk.ok().some((x) => x.from === s.name && x.at > resumedAt)), { timeoutMs: 15_000, everyMs: 50 });
  const acks = await talk.stop();
  assert.deepEqual(await readiness.stop(), [], '/readyz answered 200 throughout');
  assert.ok(acks.every((x) => x.ack.ok || x.ack.error === 'unavailable'), JSON.stringify(acks.find((x) => !x.ack.ok && x.ack.error !== 'unavailable')));
  assert.ok(acks.every((x) => x.ms < 5000), `every send acked within 5 s (slowest ${Math.max(...acks.map((x) => x.ms))} ms)`);
  await assertStoredOnce(acks, reader);
  await assertDeliveredOnce(acks, reader);
});
