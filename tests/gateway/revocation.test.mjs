// Revocation and refresh that cannot be missed: a logout published while a replica's subscription
// is down, a refresh while Redis is down, a logout racing a handshake, a key removed from the JWKS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { startCluster, startGateway, connectClient } from '../support/gateway.mjs';
import { generateKeyPair, jws, claims } from '../support/keys.mjs';
import { until } from '../support/net.mjs';

/** Sends an inline command to every data node of the topology; resolves with the replies. */
async function onEveryNode(redis, command) {
  if (redis.commandAll) return redis.commandAll(command);
  if (redis.data) return Promise.all(redis.data.map((n) => redis.commandOn(n.port, command).catch(() => 0)));
  return [await redis.command(command)];
}

test('a logout published while the subscription is down still ends its connections once the subscription is back', async (t) => {
  const cluster = await startCluster({ replicas: 1 });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const victim = await cluster.join(gw, { sub: 'leaver', sid: 'sess-gap' });
  const bystander = await cluster.join(gw, { sub: 'stayer', sid: 'sess-other' });
  // Cut the replica's subscriber connections, then log the session out before it resubscribes.
  const killed = await onEveryNode(cluster.redis, 'CLIENT KILL TYPE pubsub');
  assert.ok(killed.some((r) => r > 0), `subscribers cut: ${killed}`);
  await cluster.redis.command('SET chat:revoked:sess-gap 1 EX 600');
  const heard = await cluster.redis.command('PUBLISH chat:revocations sess-gap');
  assert.equal(heard, 0, 'the logout was published while nobody listened');
  const cutAt = Date.now();
  assert.deepEqual(await victim.wait('session ended', () => true, 15_000), { reason: 'token_revoked' });
  await victim.closed;
  assert.ok(Date.now() - cutAt < 15_000);
  assert.equal(bystander.socket.connected, true);
  assert.deepEqual(bystander.all('session ended'), []);
});

test('refresh fails closed: with Redis stopped it answers unavailable, never ok', async (t) => {
  const cluster = await startCluster({ replicas: 1 });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const c = await cluster.join(gw, { sub: 'refresher', sid: 'sess-r' });
  await cluster.redis.kill();
  const exp = Math.floor(Date.now() / 1000) + 600;
  const answer = await c.ask('refresh', cluster.token({ sub: 'refresher', sid: 'sess-r', exp }));
  assert.deepEqual(answer, { ok: false, error: 'unavailable' });
  await cluster.redis.start();
  await until('refresh accepted again', async () => (await c.ask('refresh', cluster.token({ sub: 'refresher', sid: 'sess-r', exp }))).ok, { timeoutMs: 15_000, everyMs: 500 });
});

test('a refreshed connection belongs to the new token\'s session: logging that one out ends it', async (t) => {
  const cluster = await startCluster({ replicas: 2 });
  t.after(() => cluster.stop());
  const [a, b] = cluster.gateways;
  const moved = await cluster.join(a, { sub: 'mover', sid: 'sess-old' });
  const exp = Math.floor(Date.now() / 1000) + 600;
  assert.deepEqual(await moved.ask('refresh', cluster.token({ sub: 'mover', sid: 'sess-new', exp })), { ok: true, exp });
  const probe = await cluster.join(b, { sub: 'probe', sid: 'sess-old' });
  // The old session's logout no longer concerns it...
  await cluster.redis.command('SET chat:revoked:sess-old 1 EX 600');
  await cluster.redis.command('PUBLISH chat:revocations sess-old');
  await probe.wait('session ended', (e) => e.reason === 'token_revoked');
  const ack = await moved.send('still mine');
  assert.equal(ack.ok, true);
  assert.deepEqual(moved.all('session ended'), []);
  // ...the new one's does.
  await cluster.redis.command('SET chat:revoked:sess-new 1 EX 600');
  await cluster.redis.command('PUBLISH chat:revocations sess-new');
  assert.deepEqual(await moved.wait('session ended', () => true, 2000), { reason: 'token_revoked' });
  await moved.closed;
});

test('a logout racing handshakes leaves no connection of that session open', async (t) => {
  const cluster = await startCluster({ replicas: 1, env: { MAX_CONNECTIONS_PER_USER: '1000' } });
  t.after(() => cluster.stop());
  const [gw] = cluster.gateways;
  const spray = 150;
  const clients = [];
  // Logouts published again and again while the handshakes run: some land between a
  // handshake's check and its connection going live.
  let publishing = true;
  const publisher = (async () => {
    while (publishing) await cluster.redis.command('PUBLISH chat:revocations sess-race');
  })();
  for (let i = 0; i < spray; i++) {
    clients.push(cluster.client(gw, { token: cluster.token({ sub: `racer-${i % 10}`, sid: 'sess-race' }) }));
    if (i % 10 === 9) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(clients.map((c) => c.welcome.catch(() => {})));
  publishing = false;
  await publisher;
  // The logout for good: from here every handshake is refused and every connection must end.
  await cluster.redis.command('SET chat:revoked:sess-race 1 EX 600');
  await cluster.redis.command('PUBLISH chat:revocations sess-race');
  await until('every connection of the session closed', () => clients.every((c) => !c.socket.connected), { timeoutMs: 5000 });
  const welcomed = clients.filter((c) => c.events.some((e) => e.name === 'welcome'));
  assert.ok(welcomed.length > 0, 'some handshakes completed');
  for (const c of welcomed) assert.deepEqual(c.all('session ended'), [{ reason: 'token_revoked' }]);
  const late = cluster.client(gw, { token: cluster.token({ sub: 'racer-0', sid: 'sess-race' }) });
  assert.equal(await late.refused, 'token_revoked');
  // Presence was released for every one of them.
  await until('presence empty', async () => (await cluster.redis.command('HLEN chat:room:{General}:conns')) === 0, { timeoutMs: 5000 });
});

test('a key removed from the JWKS stops being trusted without a restart', async (t) => {
  const cluster = await startCluster({ replicas: 0 });
  t.after(() => cluster.stop());
  const kept = generateKeyPair();
  const removed = generateKeyPair();
  let published = [kept, removed];
  const jwk = (k) => ({ kty: 'OKP', crv: 'Ed25519', x: k.x, kid: k.kid, alg: 'EdDSA', use: 'sig' });
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ keys: published.map(jwk) }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const gw = await startGateway(cluster, {
    JWT_PUBLIC_KEY_FILE: '',
    JWKS_URL: `http://127.0.0.1:${server.address().port}/.well-known/jwks.json`,
    JWKS_REFRESH_S: '1',
  });
  const signedBy = (k, sub) => jws({ alg: 'EdDSA', typ: 'JWT', kid: k.kid }, claims({ sub }), (b) => crypto.sign(null, b, k.privateKey));
  const join = (k, sub) => {
    const c = connectClient(gw.url, { token: signedBy(k, sub) });
    cluster.clients.push(c);
    return c;
  };
  await join(removed, 'before').welcome;
  published = [kept];
  const outcome = (c) => Promise.race([c.welcome.then(() => 'welcomed', () => null), c.refused]);
  await until('the removed key refused', async () => (await outcome(join(removed, 'after'))) === 'token_invalid', { timeoutMs: 10_000, everyMs: 300 });
  await join(kept, 'kept').welcome;
});
