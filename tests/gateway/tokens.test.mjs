// Live tokens: refresh, expiry on a live connection, and logout reaching every replica.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../support/gateway.mjs';

let cluster;
let a;
let b;

before(async () => {
  cluster = await startCluster({ replicas: 2, env: { TOKEN_EXPIRY_GRACE_S: '1' } });
  [a, b] = cluster.gateways;
});
after(() => cluster?.stop());

const now = () => Math.floor(Date.now() / 1000);

test('refresh accepts a fresh token of the same user and room, and refuses others', async () => {
  const c = await cluster.join(a, { sub: 'ref', room: 'General' });
  const exp = now() + 600;
  assert.deepEqual(await c.ask('refresh', cluster.token({ sub: 'ref', room: 'General', exp })), { ok: true, exp });
  assert.deepEqual(await c.ask('refresh', cluster.token({ sub: 'other', room: 'General' })), { ok: false, error: 'token_invalid' });
  assert.deepEqual(await c.ask('refresh', cluster.token({ sub: 'ref', room: 'Sports' })), { ok: false, error: 'token_invalid' });
  assert.deepEqual(await c.ask('refresh', cluster.token({ sub: 'ref', iat: now() - 400, exp: now() - 100 })), { ok: false, error: 'token_expired' });
  assert.deepEqual(await c.ask('refresh', 'garbage'), { ok: false, error: 'token_invalid' });
  assert.deepEqual(await c.ask('refresh', 7), { ok: false, error: 'token_invalid' });
});

test('a connection whose token expired past the grace is ended with token_expired; a refreshed one lives on', async () => {
  const short = cluster.client(a, { token: cluster.token({ sub: 'short', exp: now() + 1 }) });
  const refreshed = cluster.client(b, { token: cluster.token({ sub: 'kept', exp: now() + 1 }) });
  await Promise.all([short.welcome, refreshed.welcome]);
  const ack = await refreshed.ask('refresh', cluster.token({ sub: 'kept', exp: now() + 600 }));
  assert.equal(ack.ok, true);
  const ended = await short.wait('session ended', () => true, 8000);
  assert.deepEqual(ended, { reason: 'token_expired' });
  await short.closed;
  const probe = await refreshed.send('still here');
  assert.equal(probe.ok, true);
  assert.deepEqual(refreshed.all('session ended'), []);
  assert.equal(refreshed.socket.connected, true);
});

test('logging out a web session ends its connections on every replica with token_revoked', async () => {
  const onA = await cluster.join(a, { sub: 'leaver', sid: 'sess-1' });
  const onB = await cluster.join(b, { sub: 'leaver', sid: 'sess-1', room: 'Sports' });
  const other = await cluster.join(b, { sub: 'leaver', sid: 'sess-2' });
  const t0 = Date.now();
  await cluster.redis.command('SET chat:revoked:sess-1 1 EX 600');
  await cluster.redis.command('PUBLISH chat:revocations sess-1');
  for (const c of [onA, onB]) {
    assert.deepEqual(await c.wait('session ended', () => true, 2000), { reason: 'token_revoked' });
    await c.closed;
  }
  assert.ok(Date.now() - t0 < 2000);
  assert.equal(other.socket.connected, true);
  assert.deepEqual(other.all('session ended'), []);
  assert.deepEqual(await other.ask('refresh', cluster.token({ sub: 'leaver', sid: 'sess-1' })), { ok: false, error: 'token_revoked' });
});
