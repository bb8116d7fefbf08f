// The test harness's Redis topologies do what they say (this proves tests/support/topology.mjs,
// not the chat): keys written and read through `command`, a primary killed and its replica
// promoted, a slot moved under live traffic, a Sentinel failover, and a restart that loses the data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedisTopology, keySlot } from '../support/topology.mjs';
import { until } from '../support/net.mjs';

test('single: keys written and read, kill() and start() give an empty Redis', async (t) => {
  const redis = await startRedisTopology('single');
  t.after(() => redis.stop());
  assert.equal(redis.kind, 'single');
  assert.match(redis.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(await redis.command('SET chat:room:{General}:seq 7'), 'OK');
  assert.equal(await redis.command('GET chat:room:{General}:seq'), '7');
  await redis.kill();
  await redis.start();
  assert.equal(await redis.command('GET chat:room:{General}:seq'), null);
});

test('cluster: 3 primaries with a replica each; keys spread over them; slots honour hash tags', async (t) => {
  const started = Date.now();
  const redis = await startRedisTopology('cluster');
  t.after(() => redis.stop());
  t.diagnostic(`cluster up in ${Date.now() - started} ms`);
  assert.equal(redis.kind, 'cluster');
  const ports = redis.nodes.map((n) => n.port);
  assert.equal(redis.url, `redis-cluster://127.0.0.1:${ports[0]}?${ports.slice(1).map((p) => `node=127.0.0.1:${p}`).join('&')}`);
  const primaries = await redis.primaries();
  assert.equal(primaries.length, 3);
  for (const p of primaries) assert.equal(redis.nodes.filter((n) => n.role === 'replica' && n.primaryId === p.id).length, 1);

  for (const key of ['chat:room:{General}:users', 'chat:room:{General}:events', '{}x', '{{a}}', 'a{}b{c}', 'plain', 'ümlaut{ä}']) {
    assert.equal(keySlot(key), await redis.commandOn(ports[0], ['CLUSTER', 'KEYSLOT', key]), key);
  }
  assert.equal(keySlot('chat:room:{General}:users'), keySlot('chat:room:{General}:history'));

  const owners = new Set();
  for (let i = 0; i < 30; i++) {
    const key = `chat:room:{room-${i}}:seq`;
    assert.equal(await redis.command(`SET ${key} ${i}`), 'OK');
    assert.equal(await redis.command(`GET ${key}`), String(i));
    const owner = await redis.ownerOf(key);
    owners.add(owner.port);
    // The owner serves it directly; another primary redirects.
    assert.equal(await redis.commandOn(owner.port, `GET ${key}`), String(i));
    const other = primaries.find((p) => p !== owner);
    await assert.rejects(redis.commandOn(other.port, `GET ${key}`), { name: 'RedisError', message: new RegExp(`^MOVED ${keySlot(key)} 127\\.0\\.0\\.1:${owner.port}`) });
  }
  assert.equal(owners.size, 3, 'thirty rooms land on all three primaries');
  // Shard channels route by slot like keys.
  assert.equal(await redis.command('SPUBLISH chat:room:{General}:events hello'), 0);
});

test('cluster: migrateSlotOf moves a busy slot and its keys to another primary, losing no write', async (t) => {
  const redis = await startRedisTopology('cluster');
  t.after(() => redis.stop());
  const key = 'chat:room:{General}:seq';
  for (let i = 0; i < 250; i++) await redis.command(`RPUSH chat:room:{General}:list-${i} x`);
  const from = await redis.ownerOf(key);
  const to = (await redis.primaries()).find((p) => p !== from);

  // Live traffic on the slot while it moves: every INCR must land exactly once.
  let writing = true;
  let acked = 0;
  const writer = (async () => {
    while (writing) {
      assert.equal(typeof await redis.command(`INCR ${key}`), 'number');
      acked++;
    }
  })();
  await until('writes before the move', () => acked >= 20);
  const started = Date.now();
  const before = acked;
  // Small batches, so the writes meet the slot half moved (ASK redirects).
  const moved = await redis.migrateSlotOf(key, to.port, { batch: 10 });
  t.diagnostic(`slot ${moved.slot} (${moved.keys} keys) moved in ${Date.now() - started} ms, ${acked - before} writes meanwhile`);
  const after = acked;
  await until('writes after the move', () => acked >= after + 20);
  writing = false;
  await writer;

  assert.equal(moved.from, from);
  assert.equal(moved.to, to);
  assert.ok(moved.keys >= 251, `moved ${moved.keys} keys`);
  assert.equal(await redis.ownerOf(key), to);
  assert.equal(await redis.commandOn(to.port, `GET ${key}`), String(acked));
  await assert.rejects(redis.commandOn(from.port, `GET ${key}`), { name: 'RedisError', message: new RegExp(`^MOVED ${moved.slot} 127\\.0\\.0\\.1:${to.port}`) });
  assert.equal(await redis.commandOn(to.port, 'LLEN chat:room:{General}:list-249'), 1);
  assert.equal(await redis.commandOn(from.port, `CLUSTER COUNTKEYSINSLOT ${moved.slot}`), 0);
});

test('cluster: killPrimaryOf SIGKILLs the primary, its replica takes over with the data; kill() and start() empty it', async (t) => {
  const redis = await startRedisTopology('cluster');
  t.after(() => redis.stop());
  const key = 'chat:room:{General}:seq';
  await redis.command(`SET ${key} 42`);
  // Replicated before the kill, so the promoted replica holds it.
  const owner = await redis.ownerOf(key);
  assert.equal(await redis.commandOn(owner.port, 'WAIT 1 5000'), 1);

  const started = Date.now();
  const { killed, promoted } = await redis.killPrimaryOf(key);
  t.diagnostic(`replica promoted in ${Date.now() - started} ms`);
  assert.equal(killed, owner);
  assert.equal(killed.alive, false);
  assert.equal(promoted.role, 'primary');
  assert.equal(promoted.primaryId, null);
  assert.equal((await redis.ownerOf(key)).port, promoted.port);
  assert.equal(await redis.command(`GET ${key}`), '42');
  assert.equal((await redis.primaries()).length, 3);

  await redis.revive();
  assert.equal(killed.alive, true);
  assert.equal(killed.role, 'replica');
  assert.equal(killed.primaryId, promoted.id);

  await redis.kill();
  await redis.start();
  assert.equal(await redis.command(`GET ${key}`), null);
  assert.equal((await redis.primaries()).length, 3);
});

test('sentinel: writes reach the primary; failover() promotes the replica with the data; kill() and start() empty it', async (t) => {
  const started = Date.now();
  const redis = await startRedisTopology('sentinel');
  t.after(() => redis.stop());
  t.diagnostic(`sentinel setup up in ${Date.now() - started} ms`);
  assert.equal(redis.kind, 'sentinel');
  const [s1, s2, s3] = redis.sentinels.map((s) => s.port);
  assert.equal(redis.url, `redis-sentinel://127.0.0.1:${s1}?node=127.0.0.1:${s2}&node=127.0.0.1:${s3}&sentinelServiceName=chat`);
  const first = await redis.primaryPort();
  assert.equal(first, redis.data[0].port);

  assert.equal(await redis.command('SET chat:room:{General}:seq 5'), 'OK');
  assert.equal(await redis.command('WAIT 1 5000'), 1);
  const failedAt = Date.now();
  const { killed, promoted } = await redis.failover();
  t.diagnostic(`failover in ${Date.now() - failedAt} ms`);
  assert.equal(killed, first);
  assert.equal(promoted, redis.data[1].port);
  assert.equal(await redis.primaryPort(), promoted);
  assert.equal((await redis.commandOn(promoted, 'ROLE'))[0], 'master');
  assert.equal(await redis.command('GET chat:room:{General}:seq'), '5');

  // The old primary comes back as a replica; a second failover goes back to it.
  await redis.revive();
  assert.equal((await redis.commandOn(killed, 'ROLE'))[0], 'slave');
  assert.equal(await redis.command('WAIT 1 5000'), 1);
  assert.deepEqual(await redis.failover(), { killed: promoted, promoted: killed });
  assert.equal(await redis.command('GET chat:room:{General}:seq'), '5');
  await redis.revive();

  await redis.kill();
  await redis.start();
  assert.equal(await redis.primaryPort(), killed);
  assert.equal(await redis.command('GET chat:room:{General}:seq'), null);
});
