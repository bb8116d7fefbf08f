// Rooms are data, tens of thousands of them: a room nobody on a replica is in costs it nothing
// (no subscription, no entry in its list of rooms), a replica's background traffic does not grow
// with the rooms that exist, and a replica stalled past its liveness carries on and is announced
// back. On a single Redis (the keys and commands looked at here are one node's).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../support/gateway.mjs';
import { until } from '../support/net.mjs';

const FAST = { HEARTBEAT_INTERVAL_MS: '300', HEARTBEAT_TTL_MS: '1000', SWEEP_INTERVAL_MS: '200', EXIT_GRACE_S: '1' };

/** Sends a marker through `sender` and waits until `reader` has it. */
async function settle(sender, reader) {
  const ack = await sender.send(`marker ${Math.random()}`);
  assert.equal(ack.ok, true);
  await reader.wait('message received', (m) => m.id === ack.id);
}

/** How many connections (replicas) are subscribed to `room`'s channel. */
async function subscribers(redis, room) {
  const [, count] = await redis.command(['PUBSUB', 'SHARDNUMSUB', `chat:room:{${room}}:events`]);
  return count;
}

/** The rooms every replica lists (`chat:node:{N}:rooms`), one list per replica. */
async function listed(redis) {
  const keys = await redis.command(['KEYS', 'chat:node:{*}:rooms']);
  return Promise.all(keys.map(async (k) => (await redis.command(['SMEMBERS', k])).sort()));
}

test('a replica follows a room while it holds a connection there, and forgets it after the last exit', async (t) => {
  const cluster = await startCluster({ replicas: 1, env: FAST });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  assert.equal(await subscribers(cluster.redis, 'Music'), 0, 'nobody in Music: not subscribed');
  const ann = await cluster.join(gw, { sub: 'ann', room: 'Music' });
  assert.equal(await subscribers(cluster.redis, 'Music'), 1);
  assert.deepEqual(await listed(cluster.redis), [['Music']]);
  const bob = await cluster.join(gw, { sub: 'bob', room: 'Music' });
  await ann.wait('user entered', (u) => u.id === 'bob');
  bob.socket.close();
  await ann.wait('user exited', (u) => u.id === 'bob');
  assert.equal(await subscribers(cluster.redis, 'Music'), 1, 'ann is still there');
  ann.socket.close();
  // Ann's exit is announced when due, and then the room is let go.
  await until('Music unsubscribed', async () => (await subscribers(cluster.redis, 'Music')) === 0);
  await until('Music off the list', async () => (await listed(cluster.redis)).every((rooms) => rooms.length === 0));
  assert.equal(await cluster.redis.command(['HLEN', 'chat:room:{Music}:users']), 0, 'ann exited');
  // Back: followed again at once.
  const again = await cluster.join(gw, { sub: 'cy', room: 'Music' });
  await settle(again, again);
  assert.equal(await subscribers(cluster.redis, 'Music'), 1);
});

test('a replica whose list of rooms Redis lost lists them again', async (t) => {
  const cluster = await startCluster({ replicas: 1, env: FAST });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  await cluster.join(gw, { sub: 'ann', room: 'Music' });
  await cluster.join(gw, { sub: 'bob', room: 'Sports' });
  const [key] = await cluster.redis.command(['KEYS', 'chat:node:{*}:rooms']);
  await cluster.redis.command(['DEL', key]);
  await until('the list back', async () => (await cluster.redis.command(['SMEMBERS', key])).length === 2, { timeoutMs: 5000 });
  assert.deepEqual((await cluster.redis.command(['SMEMBERS', key])).sort(), ['Music', 'Sports']);
});

test("a replica's traffic at rest does not grow with the rooms that exist", async (t) => {
  const cluster = await startCluster({ replicas: 2 });
  t.after(() => cluster.stop());
  const [a, b] = cluster.gateways;
  // Rooms people made, nobody in them (their settings, as chat-store's room_create.lua stores them).
  const made = "for i = 0, 999 do redis.call('HSET', 'chat:room:{made-' .. i .. '}:meta', 'kind', 'public', 'name', 'made ' .. i) end";
  await cluster.redis.command(['EVAL', made, '0']);
  assert.equal(await cluster.redis.command(['EXISTS', 'chat:room:{made-999}:meta']), 1);
  const ann = await cluster.join(a, { sub: 'ann', room: 'General' });
  const bob = await cluster.join(b, { sub: 'bob', room: 'General' });
  await settle(ann, bob);
  await cluster.redis.command('CONFIG RESETSTAT');
  const started = Date.now();
  // Every heartbeat and sweep of both replicas comes at least twice in 4 s.
  await new Promise((r) => setTimeout(r, 4000));
  const stats = await cluster.redis.command('INFO commandstats');
  const seconds = (Date.now() - started) / 1000;
  const calls = [...stats.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)]
    .filter(([, cmd]) => !['info', 'config'].includes(cmd))
    .reduce((sum, [, , n]) => sum + Number(n), 0);
  t.diagnostic(`${(calls / seconds).toFixed(0)} commands/s at rest, two replicas, 1,000 made rooms, 3 configured`);
  // 3 configured rooms heartbeat and sweep room by room for the release before (about 24
  // commands/s a replica); everything else is a few commands a replica, whatever the rooms.
  assert.ok(calls / seconds < 100, `${(calls / seconds).toFixed(0)} commands/s at rest`);
  assert.equal(await subscribers(cluster.redis, 'made-1'), 0);
});

test('a replica stalled past its liveness is swept, then carries on under a new id and is announced back', async (t) => {
  const cluster = await startCluster({ replicas: 2, env: FAST });
  t.after(() => cluster.stop());
  const [stalled, survivor] = cluster.gateways;
  const observer = await cluster.join(survivor, { sub: 'observer', room: 'Sports' });
  const victim = await cluster.join(stalled, { sub: 'victim', name: 'Victim', room: 'Sports' });
  await observer.wait('user entered', (u) => u.id === 'victim');

  stalled.proc.kill('SIGSTOP');
  try {
    // Its liveness lapses; the survivor takes it, sweeps its room, and announces the exit.
    await observer.wait('user exited', (u) => u.id === 'victim', 10_000);
  } finally {
    stalled.proc.kill('SIGCONT');
  }
  // Back, it learns it was swept, and registers its connection again, announced.
  await observer.wait('user entered', (u) => u.id === 'victim' && observer.all('user entered').filter((x) => x.id === 'victim').length === 2, 10_000);
  await settle(victim, observer);
  await settle(observer, victim);
  const late = await cluster.join(survivor, { sub: 'late', room: 'Sports' });
  assert.deepEqual((await late.welcome).members.map((m) => m.id).sort(), ['late', 'observer', 'victim']);
  const alive = await cluster.redis.command(['KEYS', 'chat:{nodes}:alive:*']);
  assert.equal(alive.length, 2, `two replicas alive: ${alive}`);
  assert.ok(alive.some((k) => /\.1$/.test(k)), `the stalled one under a new id: ${alive}`);
  // Nothing more: one exit, one entry back, and the room stays whole.
  await new Promise((r) => setTimeout(r, 2500));
  await settle(observer, late);
  assert.deepEqual(observer.all('user exited').map((u) => u.id), ['victim']);
  assert.equal(await cluster.redis.command(['HLEN', 'chat:room:{Sports}:users']), 3);
});
