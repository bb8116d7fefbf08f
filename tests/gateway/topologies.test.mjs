// Redis that scales out and fails over: a primary SIGKILLed under traffic (Cluster and Sentinel),
// a busy room's hash slot resharded key by key to another shard under traffic (with and without
// REDIS_WAIT_REPLICAS), and rooms spread over the shards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../support/gateway.mjs';
import { until } from '../support/net.mjs';
import { keepSending, wholeHistory, assertStoredOnce, assertDeliveredOnce } from '../support/traffic.mjs';

const FAST = { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SECOND: '100000', EVENT_RATE_LIMIT_BURST: '1000', EVENT_RATE_LIMIT_PER_SECOND: '1000' };
const HISTORY_KEY = 'chat:room:{General}:history';

/**
 * Two users on two replicas talking until `stop()`: each send's ack and how long it took.
 * Resolves `stop()` with { acks: [{ from, text, ack, ms }] }.
 */
function converse(ann, bob) {
  let running = true;
  const acks = [];
  const talk = async (from, c) => {
    for (let i = 0; running; i++) {
      const text = `${from} ${i}`;
      const t0 = Date.now();
      const ack = await c.send(text);
      acks.push({ from, text, ack, ms: Date.now() - t0, at: Date.now() });
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const both = Promise.all([talk('ann', ann), talk('bob', bob)]);
  return {
    acks,
    async stop() {
      running = false;
      await both;
      return acks;
    },
  };
}

/** Every message acked ok reached the other user, once. */
async function assertBothReceivedOnce(ok, { ann, bob }) {
  for (const [reader, writer] of [[bob, 'ann'], [ann, 'bob']]) {
    const last = ok.filter((x) => x.from === writer).at(-1);
    await reader.wait('message received', (m) => m.id === last.ack.id, 10_000);
    const got = reader.all('message received').map((m) => m.id);
    assert.equal(new Set(got).size, got.length, 'nothing delivered twice');
    const missed = ok.filter((x) => x.from === writer && !got.includes(x.ack.id));
    assert.deepEqual(missed.map((x) => x.text), [], `everything ${writer} got acked ok reached the other user`);
  }
}

async function failoverUnderTraffic(t, topology, fail) {
  const cluster = await startCluster({ replicas: 2, topology, env: { ...FAST, REDIS_WAIT_REPLICAS: '1' } });
  t.after(() => cluster.stop());
  const [a, b] = cluster.gateways;
  const ann = await cluster.join(a, { sub: 'ann' });
  const bob = await cluster.join(b, { sub: 'bob' });
  const talk = converse(ann, bob);
  await until('traffic flowing', () => talk.acks.filter((x) => x.ack.ok).length >= 10);
  const killedAt = Date.now();
  await fail(cluster.redis);
  // Flow comes back: a send acked ok after the kill reaches the other user.
  await until('an ok ack after the failover', () => talk.acks.some((x) => x.ack.ok && x.at > killedAt + 100 && x.from === 'ann'), { timeoutMs: 15_000, everyMs: 50 });
  const back = talk.acks.find((x) => x.ack.ok && x.at > killedAt + 100 && x.from === 'ann');
  await bob.wait('message received', (m) => m.id === back.ack.id, 15_000 - (Date.now() - killedAt));
  const acks = await talk.stop();

  assert.ok(acks.every((x) => x.ms < 5000), `every send acked within 5 s (slowest ${Math.max(...acks.map((x) => x.ms))} ms)`);
  assert.ok(acks.every((x) => x.ack.ok || x.ack.error === 'unavailable'), JSON.stringify(acks.find((x) => !x.ack.ok && x.ack.error !== 'unavailable')));
  const ok = acks.filter((x) => x.ack.ok);
  // With REDIS_WAIT_REPLICAS=1, an ok means a replica held it: the promoted one has it.
  const kept = new Map((await wholeHistory(ann)).map((m) => [m.id, m.text]));
  const lost = ok.filter((x) => kept.get(x.ack.id) !== x.text);
  assert.deepEqual(lost.map((x) => x.text), [], 'every message acked ok is in the history after the failover');
  await assertBothReceivedOnce(ok, { ann, bob });
  // Each sender's ack ids kept increasing, across the failover too.
  for (const from of ['ann', 'bob']) {
    const ids = ok.filter((x) => x.from === from).map((x) => x.ack.id.split('-').map(BigInt));
    for (let i = 1; i < ids.length; i++) {
      const [p, q] = [ids[i - 1], ids[i]];
      assert.ok(q[0] > p[0] || (q[0] === p[0] && q[1] > p[1]), `${from}'s ack ids went backwards at ${i}`);
    }
  }
}

// With REDIS_WAIT_REPLICAS=1 an ok needs a replica: the killed node comes back as the promoted
// one's replica (as an operator's restart would bring it), and the flow with it.
test('Cluster: a primary SIGKILLed under traffic: acks within 5 s, flow back within 15 s, nothing acked ok lost', async (t) => {
  await failoverUnderTraffic(t, 'cluster', async (redis) => {
    await redis.killPrimaryOf(HISTORY_KEY);
    await redis.revive();
  });
});

test('Sentinel: the primary SIGKILLed under traffic: acks within 5 s, flow back within 15 s, nothing acked ok lost', async (t) => {
  await failoverUnderTraffic(t, 'sentinel', async (redis) => {
    await redis.failover();
    await redis.revive();
  });
});

/**
 * A busy room's slot resharded the way `redis-cli --cluster reshard` does it (SETSLOT
 * IMPORTING/MIGRATING, MIGRATE one key at a time with the traffic going on, then SETSLOT NODE on
 * every primary) while three users talk through two replicas, resending what is refused: flow,
 * handshakes and readiness back within 15 s of the end of the migration, every text stored once,
 * nothing acked ok lost.
 */
async function reshardUnderTraffic(t, waitReplicas) {
  const cluster = await startCluster({ replicas: 2, topology: 'cluster', env: { ...FAST, REDIS_WAIT_REPLICAS: String(waitReplicas) } });
  t.after(() => cluster.stop());
  const [a, b] = cluster.gateways;
  const senders = [];
  for (const [name, gw] of [['ann', a], ['bob', b], ['cy', a]]) senders.push({ name, client: await cluster.join(gw, { sub: name }) });
  const watcher = await cluster.join(b, { sub: 'watcher' });
  const talk = keepSending(senders);
  await until('traffic flowing', () => talk.ok().length >= 10);
  const owner = await cluster.redis.ownerOf(HISTORY_KEY);
  const target = (await cluster.redis.primaries()).find((n) => n.port !== owner.port);
  const { keys } = await cluster.redis.migrateSlotOf(HISTORY_KEY, target.port, { batch: 1, pauseMs: 100 });
  const movedAt = Date.now();
  assert.ok(keys >= 5, `the room's keys moved one by one (${keys})`);
  assert.equal((await cluster.redis.ownerOf(HISTORY_KEY)).port, target.port, 'the slot moved');

  await until('every user acked ok after the migration', () => senders.every((s) => talk.ok().some((x) => x.from === s.name && x.at > movedAt)), { timeoutMs: 15_000, everyMs: 50 });
  for (const gw of [a, b]) {
    await until(`${gw.url} ready`, async () => (await fetch(`${gw.url}/readyz`)).status === 200, { timeoutMs: 15_000 - (Date.now() - movedAt), everyMs: 100 });
    const late = cluster.client(gw, { token: cluster.token({ sub: `late-${gw.port}`, room: 'General' }) });
    const refused = late.refused.then((code) => assert.fail(`a handshake after the migration was refused: ${code}`));
    await Promise.race([late.welcome, refused]);
  }
  assert.ok(Date.now() - movedAt < 15_000, `flow, readiness and handshakes back within 15 s (${Date.now() - movedAt} ms)`);

  const acks = await talk.stop();
  assert.ok(acks.every((x) => x.ack.ok || x.ack.error === 'unavailable'), JSON.stringify(acks.find((x) => !x.ack.ok && x.ack.error !== 'unavailable')));
  assert.ok(acks.every((x) => x.ms < 5000), `every send acked within 5 s (slowest ${Math.max(...acks.map((x) => x.ms))} ms)`);
  await assertStoredOnce(acks, watcher);
  await assertDeliveredOnce(acks, watcher);
}

test("Cluster: a busy room's slot resharded key by key under traffic: flow back within 15 s, nothing acked lost, nothing stored twice", async (t) => {
  await reshardUnderTraffic(t, 0);
});

test("Cluster, REDIS_WAIT_REPLICAS=1: a busy room's slot resharded key by key under traffic: flow back within 15 s, nothing acked lost, nothing stored twice", async (t) => {
  await reshardUnderTraffic(t, 1);
});

test('Cluster: traffic in several rooms is published by more than one primary', async (t) => {
  const rooms = Array.from({ length: 12 }, (_, i) => `room-${i}`);
  const cluster = await startCluster({ replicas: 1, topology: 'cluster', env: { ...FAST, ROOMS: rooms.join(',') } });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  for (const room of rooms) {
    const c = await cluster.join(gw, { sub: `u-${room}`, room });
    const ack = await c.send(`hello ${room}`);
    assert.equal(ack.ok, true);
    await c.wait('message received', (m) => m.id === ack.id);
  }
  const stats = await cluster.redis.commandAll('INFO commandstats');
  const publishing = stats.filter((s) => /cmdstat_spublish:calls=[1-9]/.test(s)).length;
  assert.ok(publishing >= 2, `${publishing} of ${stats.length} primaries published room events`);
  const classic = stats.filter((s) => /cmdstat_publish:calls=[1-9]/.test(s)).length;
  assert.equal(classic, 0, 'room events never go over classic pub/sub, which every node would copy');
});

test("Cluster: /readyz covers the sharded subscriptions: unready while a room's new shard refuses it, ready and delivering once subscribed again", async (t) => {
  const cluster = await startCluster({ replicas: 1, topology: 'cluster', env: FAST });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const ready = async () => (await fetch(`${gw.url}/readyz`)).status;
  await until('ready', async () => (await ready()) === 200);
  const ann = await cluster.join(gw, { sub: 'ann' });
  const bob = await cluster.join(gw, { sub: 'bob' });
  const owner = await cluster.redis.ownerOf(HISTORY_KEY);
  const target = (await cluster.redis.primaries()).find((n) => n.port !== owner.port);
  // The shard the room moves to lets the gateway's user publish and subscribe to nothing but
  // revocations: the room's subscription there is refused (NOPERM), while no channel the
  // subscriber already holds on that node is taken away (which would drop its connection).
  await cluster.redis.commandOn(target.port, 'ACL SETUSER default resetchannels &chat:revocations');
  t.after(() => cluster.redis.commandOn(target.port, 'ACL SETUSER default allchannels').catch(() => {}));
  await cluster.redis.migrateSlotOf(HISTORY_KEY, target.port);
  await until('unready while the moved room is not subscribed', async () => (await ready()) === 503, { timeoutMs: 10_000, everyMs: 100 });
  assert.equal(await (await fetch(`${gw.url}/readyz`)).text(), 'redis unavailable');
  await cluster.redis.commandOn(target.port, 'ACL SETUSER default allchannels');
  await until('ready again once subscribed on the new shard', async () => (await ready()) === 200, { timeoutMs: 10_000, everyMs: 100 });
  // The subscription on the new shard is live: a message reaches the other user through it.
  const ack = await until('a send accepted', async () => {
    const answer = await ann.send('after the move');
    return answer.ok && answer;
  }, { timeoutMs: 10_000, everyMs: 200 });
  await bob.wait('message received', (m) => m.id === ack.id, 10_000);
});
