// What one member's events cost Redis, measured by Redis itself (`INFO commandstats`): a `read`
// costs the same however many large messages are unread, and a join costs the same however many
// messages were deleted before it. Compared within one run, so the machine's speed cancels out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAST_RATES, fileCluster } from '../support/gateway.mjs';
import { redis, scriptTime } from '../support/redis.mjs';

const BIG = '😀'.repeat(2000); // 8,000 bytes: the largest text a member may send

const cluster = await fileCluster({ replicas: 1, env: FAST_RATES });
const [gw] = cluster.gateways;
const hostile = await cluster.join(gw, { sub: 'hostile', room: 'General' });
const ids = [];
for (let i = 0; i < 1000; i += 50) {
  const acks = await Promise.all(Array.from({ length: 50 }, () => hostile.send(BIG)));
  assert.ok(acks.every((ack) => ack.ok), JSON.stringify(acks.find((x) => !x.ok)));
  ids.push(...acks.map((ack) => ack.id));
}

/** Redis script time per call of `action`, run `times` times one after another. */
async function scriptTimePer(times, action) {
  await redis(cluster.redis.port, 'CONFIG RESETSTAT');
  for (let i = 0; i < times; i++) await action(i);
  const { usec } = await scriptTime(cluster.redis.port);
  return usec / times;
}

test('a read costs Redis the same with 10 or 1000 unread 8 KB messages', async () => {
  const reader = await cluster.join(gw, { sub: 'reader', room: 'General' });
  const read = (id) => async () => assert.deepEqual(await reader.ask('read', { id }), { ok: true });
  const near = await scriptTimePer(20, read(ids.at(-11)));
  const far = await scriptTimePer(20, read(ids[0]));
  assert.ok(far < 3 * near + 200, `a read with 999 unread took ${far.toFixed(0)} µs of Redis, with 10 ${near.toFixed(0)} µs`);
});

test('a join costs Redis the same however many messages were deleted before it', async () => {
  const join = (room) => async (i) => {
    const c = await cluster.join(gw, { sub: `joiner-${room}-${i}`, room });
    c.socket.close();
  };
  const baseline = await scriptTimePer(10, join('Music'));
  for (let i = 0; i < ids.length; i += 50) {
    const acks = await Promise.all(ids.slice(i, i + 50).map((id) => hostile.ask('message delete', { id })));
    assert.ok(acks.every((ack) => ack.ok), JSON.stringify(acks.find((x) => !x.ok)));
  }
  const afterDeletes = await scriptTimePer(10, join('General'));
  assert.ok(afterDeletes < 3 * baseline + 300,
    `a join after 1000 deletions took ${afterDeletes.toFixed(0)} µs of Redis, in an empty room ${baseline.toFixed(0)} µs`);
  const fresh = await cluster.join(gw, { sub: 'after', room: 'General' });
  assert.deepEqual((await fresh.welcome).history, [], 'every message is gone');
});
