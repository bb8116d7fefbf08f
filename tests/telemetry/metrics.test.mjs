// /metrics on both services moves as the traffic says.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../support/gateway.mjs';

let cluster;
before(async () => { cluster = await startCluster({ replicas: 2 }); });
after(() => cluster?.stop());

/** The value of one sample (`name{labels}`) in a Prometheus text page, 0 when absent. */
function sample(page, name, labels = {}) {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const line of page.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([^\s{]+)(\{[^}]*\})?\s+([0-9.eE+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (want.every((w) => (m[2] ?? '').includes(w))) total += Number(m[3]);
  }
  return total;
}

const scrape = async (g) => (await fetch(`${g.url}/metrics`)).text();

test('gateway counters follow handshakes, acks, deliveries and refusals', async () => {
  const [a, b] = cluster.gateways;
  const before = await Promise.all([scrape(a), scrape(b)]);
  const ann = await cluster.join(a, { sub: 'ann' });
  await cluster.join(b, { sub: 'bob' });
  const refused = cluster.client(a, {});
  assert.equal(await refused.refused, 'token_missing');
  for (let i = 0; i < 3; i++) assert.equal((await ann.send(`m${i}`)).ok, true);
  assert.deepEqual(await ann.send(''), { ok: false, error: 'empty' });
  await ann.wait('message received', () => ann.all('message received').length === 3);
  const afterA = await scrape(a);
  const afterB = await scrape(b);
  const delta = (page, old, name, labels) => sample(page, name, labels) - sample(old, name, labels);
  assert.equal(delta(afterA, before[0], 'chat_gateway_handshakes_total', { outcome: 'ok' }), 1);
  assert.equal(delta(afterA, before[0], 'chat_gateway_handshakes_total', { outcome: 'token_missing' }), 1);
  assert.equal(delta(afterA, before[0], 'chat_gateway_acks_total', { outcome: 'ok' }), 3);
  assert.equal(delta(afterA, before[0], 'chat_gateway_acks_total', { outcome: 'empty' }), 1);
  // Replica B wrote each of the three messages to Bob.
  const bDeliveries = await (async () => {
    for (let i = 0; i < 50; i++) {
      const page = await scrape(b);
      const d = delta(page, before[1], 'chat_gateway_deliveries_total');
      if (d >= 3) return d;
      await new Promise((r) => setTimeout(r, 100));
    }
    return delta(afterB, before[1], 'chat_gateway_deliveries_total');
  })();
  assert.equal(bDeliveries, 3);
  assert.ok(sample(afterA, 'chat_gateway_fanout_latency_seconds_count') >= 3);
  assert.ok(sample(afterA, 'chat_store_redis_command_seconds_count', { operation: 'send message' }) >= 3);
});

test('a send whose ack deadline passes while Redis is stalled is still counted, as unavailable', async (t) => {
  // Redis stops answering (SIGSTOP) without closing its connection; the ack deadline
  // (ACK_TIMEOUT_MS) passes long before the Redis command's own timeout would. The second
  // send waits behind the first, so its deadline passes before its turn comes.
  const stalled = await startCluster({
    replicas: 1,
    topology: 'single',
    env: { ACK_TIMEOUT_MS: '500', REDIS_COMMAND_TIMEOUT_MS: '10000' },
  });
  t.after(() => stalled.stop());
  const [g] = stalled.gateways;
  const ann = await stalled.join(g, { sub: 'ann' });
  const before = await scrape(g);
  stalled.redis.proc.kill('SIGSTOP');
  t.after(() => stalled.redis.proc.kill('SIGCONT'));
  const acks = await Promise.all([ann.send('into a stalled Redis'), ann.send('and behind it')]);
  assert.deepEqual(acks, [{ ok: false, error: 'unavailable' }, { ok: false, error: 'unavailable' }]);
  const after = await scrape(g);
  const counted = sample(after, 'chat_gateway_acks_total', { outcome: 'unavailable' })
    - sample(before, 'chat_gateway_acks_total', { outcome: 'unavailable' });
  assert.equal(counted, 2, 'both late acks are counted');
});
