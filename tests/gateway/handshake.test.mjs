// Handshake auth: every refusal code of the contract, and a refused handshake leaves no trace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startCluster, connectClient, startGateway } from '../support/gateway.mjs';
import { generateKeyPair, jws, claims } from '../support/keys.mjs';

let cluster;
let gw;
let observer;

before(async () => {
  cluster = await startCluster({ replicas: 1 });
  gw = cluster.gateways[0];
  observer = await cluster.join(gw, { sub: 'observer' });
});
after(() => cluster?.stop());

async function refusal(auth, opts) {
  const c = cluster.client(gw, auth, opts);
  return c.refused;
}

async function assertNoTrace() {
  // A refused handshake registers nothing and announces nothing.
  const members = await cluster.redis.command('HLEN chat:room:{General}:users');
  assert.equal(members, 1, 'only the observer is a member');
  assert.deepEqual(observer.all('user entered'), []);
}

test('a connection without a token is refused with token_missing', async () => {
  assert.equal(await refusal({}), 'token_missing');
  assert.equal(await refusal(undefined), 'token_missing');
});

test('a token in the query string is ignored: token_missing', async () => {
  const token = cluster.token({ sub: 'q' });
  assert.equal(await refusal({}, { query: { token } }), 'token_missing');
  await assertNoTrace();
});

test('malformed, unsigned, HMAC and tampered tokens are token_invalid', async () => {
  const k = cluster.keys;
  const body = claims({ sub: 'mallory' });
  const valid = cluster.token({ sub: 'mallory' });
  const [h, , s] = valid.split('.');
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...body, room: 'Sports', sub: 'admin' })).toString('base64url')}.${s}`;
  const cases = {
    garbage: 'not-a-token',
    none: jws({ alg: 'none', typ: 'JWT' }, body, null),
    noneWithKid: jws({ alg: 'none', typ: 'JWT', kid: k.kid }, body, null),
    hmacWithPublicKey: jws({ alg: 'HS256', typ: 'JWT', kid: k.kid }, body, (b) => crypto.createHmac('sha256', k.publicPem).update(b).digest()),
    tampered,
    embeddedJwk: jws({ alg: 'EdDSA', typ: 'JWT', kid: 'attacker', jwk: { kty: 'OKP', crv: 'Ed25519', x: generateKeyPair().x } }, body, (b) => crypto.sign(null, b, generateKeyPair().privateKey)),
    otherKey: (() => { const other = generateKeyPair(); return jws({ alg: 'EdDSA', typ: 'JWT', kid: other.kid }, body, (b) => crypto.sign(null, b, other.privateKey)); })(),
    otherKeyClaimingOurKid: (() => { const other = generateKeyPair(); return jws({ alg: 'EdDSA', typ: 'JWT', kid: k.kid }, body, (b) => crypto.sign(null, b, other.privateKey)); })(),
    wrongAudience: cluster.token({ sub: 'mallory', aud: 'someone-else' }),
    wrongIssuer: cluster.token({ sub: 'mallory', iss: 'https://evil.example' }),
    nameTooLong: cluster.token({ sub: 'mallory', name: 'x'.repeat(65) }),
    missingJti: (() => { const { jti, ...rest } = body; return jws({ alg: 'EdDSA', typ: 'JWT', kid: k.kid }, rest, (b) => crypto.sign(null, b, k.privateKey)); })(),
    stringExp: jws({ alg: 'EdDSA', typ: 'JWT', kid: k.kid }, { ...body, exp: String(body.exp) }, (b) => crypto.sign(null, b, k.privateKey)),
    notAString: 42,
  };
  for (const [name, token] of Object.entries(cases)) {
    assert.equal(await refusal({ token }), 'token_invalid', name);
  }
  await assertNoTrace();
});

test('an expired token is token_expired', async () => {
  const now = Math.floor(Date.now() / 1000);
  assert.equal(await refusal({ token: cluster.token({ sub: 'late', iat: now - 400, exp: now - 100 }) }), 'token_expired');
  await assertNoTrace();
});

test('a token for a room the deployment does not have is room_unknown (names are case-sensitive)', async () => {
  assert.equal(await refusal({ token: cluster.token({ sub: 'r', room: 'Nowhere' }) }), 'room_unknown');
  assert.equal(await refusal({ token: cluster.token({ sub: 'r', room: 'general' }) }), 'room_unknown');
  await assertNoTrace();
});

test('a token of a logged-out web session is token_revoked', async () => {
  await cluster.redis.command('SET chat:revoked:sess-gone 1 EX 60');
  assert.equal(await refusal({ token: cluster.token({ sub: 'gone', sid: 'sess-gone' }) }), 'token_revoked');
  await assertNoTrace();
});

test('past MAX_CONNECTIONS a replica answers server_busy', async () => {
  const small = await startGateway(cluster, { MAX_CONNECTIONS: '1' });
  const first = cluster.client(small, { token: cluster.token({ sub: 'first' }) });
  await first.welcome;
  const second = cluster.client(small, { token: cluster.token({ sub: 'second' }) });
  assert.equal(await second.refused, 'server_busy');
  await observer.wait('user entered', (u) => u.id === 'first');
  assert.equal(observer.all('user entered').some((u) => u.id === 'second'), false);
  await small.stop('SIGKILL');
});

test('an Origin outside ALLOWED_ORIGINS cannot open a connection', async () => {
  const strict = await startGateway(cluster, { ALLOWED_ORIGINS: 'https://chat.example.com' });
  const token = cluster.token({ sub: 'o' });
  const foreign = connectClient(strict.url, { token }, { extraHeaders: { origin: 'https://evil.example' } });
  cluster.clients.push(foreign);
  await assert.rejects(foreign.welcome, /connect_error/);
  const allowed = connectClient(strict.url, { token }, { extraHeaders: { origin: 'https://chat.example.com' } });
  cluster.clients.push(allowed);
  const welcome = await allowed.welcome;
  assert.equal(welcome.room, 'General');
  await strict.stop('SIGKILL');
});

test('a valid token is welcomed with the room, the user and the members', async () => {
  const c = await cluster.join(gw, { sub: 'ann', name: 'Ann' });
  const welcome = await c.welcome;
  assert.equal(welcome.room, 'General');
  assert.deepEqual(welcome.you, { id: 'ann', name: 'Ann' });
  assert.ok(welcome.members.some((m) => m.id === 'observer'));
  assert.ok(welcome.members.some((m) => m.id === 'ann'));
  assert.equal(welcome.recovered, true);
  assert.ok(Array.isArray(welcome.history));
  assert.deepEqual(c.all('user entered'), [], 'no user entered for oneself');
  await observer.wait('user entered', (u) => u.id === 'ann');
});
