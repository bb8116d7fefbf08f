// Redis full (deploy/README.md, "When Redis is full"): Redis runs with an explicit `maxmemory` and
// `maxmemory-policy noeviction`, so a full Redis refuses writes instead of silently evicting
// sessions or presence. The gateway turns that into contract answers: sends acked `unavailable`,
// handshakes refused; nothing already stored is lost, and freeing memory heals everything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startCluster } from '../support/gateway.mjs';

/** The refusal codes of a handshake (CONTRACT.md, "Refused handshake"). */
const REFUSAL_CODES = ['token_missing', 'token_invalid', 'token_expired', 'token_revoked', 'room_unknown', 'server_busy', 'too_many_connections'];

/** Runs one command with redis-cli against the test's Redis; returns its raw output. */
function cli(redis, ...args) {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(redis.port), '--raw', ...args.map(String)], { encoding: 'utf8' });
}

/** Every `chat:*` key with its type and full value (what "nothing already stored is lost" compares). */
function snapshot(redis) {
  const keys = cli(redis, 'KEYS', 'chat:*').split('\n').filter(Boolean).sort();
  const read = {
    hash: (k) => cli(redis, 'HGETALL', k),
    set: (k) => cli(redis, 'SMEMBERS', k).split('\n').sort().join('\n'),
    zset: (k) => cli(redis, 'ZRANGE', k, 0, -1, 'WITHSCORES'),
    stream: (k) => cli(redis, 'XRANGE', k, '-', '+'),
    string: (k) => cli(redis, 'GET', k),
  };
  return Object.fromEntries(keys.map((k) => {
    const type = cli(redis, 'TYPE', k).trim();
    return [k, { type, value: read[type]?.(k) ?? '' }];
  }));
}

const MIB = 1024 * 1024;

/** Redis's `used_memory` and `maxmemory`, in bytes. */
function memory(redis) {
  const info = cli(redis, 'INFO', 'memory');
  const field = (name) => Number(info.match(new RegExp(`^${name}:(\\d+)`, 'm'))[1]);
  return { used: field('used_memory'), max: field('maxmemory') };
}

/**
 * Writes 1 MiB filler strings until Redis refuses a write with OOM, then tops the filler up so that
 * Redis stays about 1 MiB over its limit (client buffers shrinking cannot bring it back under).
 * Returns the filler's key names.
 */
function fill(redis) {
  const keys = [];
  for (let i = 0; ; i++) {
    if (i > 1000) throw new Error('Redis never refused a write: is maxmemory set?');
    if (cli(redis, 'SETRANGE', `filler:${i}`, MIB - 1, 'x').startsWith('OOM')) break;
    keys.push(`filler:${i}`);
  }
  let { used, max } = memory(redis);
  if (used - max < MIB / 2) {
    cli(redis, 'DEL', keys.at(-1));
    ({ used, max } = memory(redis));
    assert.match(cli(redis, 'SETRANGE', keys.at(-1), max + MIB - used, 'x'), /^\d+/);
  }
  assert.match(cli(redis, 'SET', 'filler:probe', 'x'), /^OOM/, 'a full Redis refuses writes');
  return keys;
}

/** Deletes the filler: Redis has room again. */
function drain(redis, keys) {
  cli(redis, 'DEL', ...keys);
}

const FULL_REDIS = ['--maxmemory', '24mb', '--maxmemory-policy', 'noeviction'];

test('when Redis is full: sends are acked unavailable within 5 s, handshakes refused, nothing stored is lost; freeing memory heals', async (t) => {
  const cluster = await startCluster({ replicas: 2, redisArgs: FULL_REDIS });
  t.after(() => cluster.stop());
  const [a, b] = cluster.gateways;
  assert.equal(cli(cluster.redis, 'CONFIG', 'GET', 'maxmemory-policy').split('\n')[1], 'noeviction');

  const ann = await cluster.join(a, { sub: 'ann', name: 'Ann' });
  const bob = await cluster.join(b, { sub: 'bob', name: 'Bob' });
  await ann.wait('user entered', (u) => u.id === 'bob');
  const stored = [];
  for (const text of ['first', 'second', 'third']) {
    const ack = await ann.send(text);
    assert.equal(ack.ok, true);
    stored.push(ack.id);
  }
  await bob.wait('message received', (m) => m.id === stored.at(-1));
  const before = snapshot(cluster.redis);
  assert.ok(before['chat:room:{General}:users'], 'presence is stored');
  assert.ok(before['chat:room:{General}:history'], 'history is stored');

  const filler = fill(cluster.redis);
  assert.ok(filler.length > 0, 'the filler took some memory before Redis refused writes');

  // A send: acked unavailable, promptly, never ok and never hanging.
  const sentAt = Date.now();
  const ack = await ann.send('into a full Redis');
  const took = Date.now() - sentAt;
  assert.deepEqual(ack, { ok: false, error: 'unavailable' });
  assert.ok(took < 5000, `acked after ${took} ms`);

  // A new handshake: refused with a contract code, nothing joined.
  const carol = cluster.client(b, { token: cluster.token({ sub: 'carol', room: 'General' }) });
  const code = await carol.refused;
  assert.ok(REFUSAL_CODES.includes(code), `refused with ${code}`);

  // Existing connections stay open, and nothing already stored was evicted or changed.
  assert.equal(ann.socket.connected, true);
  assert.equal(bob.socket.connected, true);
  assert.deepEqual(snapshot(cluster.redis), before);
  assert.ok(!bob.all('message received').some((m) => m.text === 'into a full Redis'));

  // Memory freed: sends, deliveries and handshakes work again.
  drain(cluster.redis, filler);
  const again = await ann.send('after the filler is gone');
  assert.equal(again.ok, true, JSON.stringify(again));
  await bob.wait('message received', (m) => m.id === again.id);
  const dave = await cluster.join(b, { sub: 'dave', name: 'Dave' });
  const welcome = await dave.welcome;
  assert.deepEqual(welcome.members.map((m) => m.id).sort(), ['ann', 'bob', 'dave']);
  assert.deepEqual(welcome.history.map((m) => m.id), [...stored, again.id]);
});

test('a Redis that stays full longer than the heartbeat TTL sweeps nobody: live replicas keep their presence', async (t) => {
  const ttlMs = 1500;
  const cluster = await startCluster({
    replicas: 2,
    redisArgs: FULL_REDIS,
    env: { HEARTBEAT_INTERVAL_MS: '300', HEARTBEAT_TTL_MS: String(ttlMs), SWEEP_INTERVAL_MS: '200' },
  });
  t.after(() => cluster.stop());
  const [a, b] = cluster.gateways;
  const ann = await cluster.join(a, { sub: 'ann' });
  const bob = await cluster.join(b, { sub: 'bob' });
  await ann.wait('user entered', (u) => u.id === 'bob');
  const presence = () => cli(cluster.redis, 'HGETALL', 'chat:room:{General}:users');
  const before = presence();
  const alive = () => cli(cluster.redis, 'KEYS', 'chat:room:{General}:alive:*').split('\n').filter(Boolean).length;
  assert.equal(alive(), 2);

  const filler = fill(cluster.redis);
  // Three heartbeat TTLs with writes refused: the replicas' heartbeats must not lapse.
  const until3Ttl = Date.now() + 3 * ttlMs;
  while (Date.now() < until3Ttl) {
    assert.equal(alive(), 2, 'a live replica lost its heartbeat while Redis was full');
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(presence(), before);
  assert.equal(ann.all('user exited').length + bob.all('user exited').length, 0);

  drain(cluster.redis, filler);
  const ack = await ann.send('still here');
  assert.equal(ack.ok, true);
  await bob.wait('message received', (m) => m.id === ack.id);
});
