// Starts what one web test file needs: a private Redis, a real OpenID Connect provider and the
// chat-web binary wired to both, plus helpers that act like a browser walking the login flow.
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { freePort, until } from '../support/net.mjs';
import { startRedisTopology } from '../support/topology.mjs';
export { subscribe } from '../support/redis.mjs';
import { startService } from '../support/service.mjs';
import { generateKeyPair, tempFile } from '../support/keys.mjs';
import { startOidcProvider, loginAtProvider } from '../support/oidc.mjs';
import { CookieJar } from './jar.mjs';

export { CookieJar, until };

/**
 * Redis + provider + chat-web. Options: `idp` (provider options), `env` (extra chat-web settings), `keys` (several pairs),
 * `topology` (the Redis: 'single', 'cluster' or 'sentinel'; `CHAT_TEST_REDIS` by default, see support/topology.mjs).
 */
export async function startStack({ idp: idpOptions = {}, env = {}, keys: keyCount = 1, topology = process.env.CHAT_TEST_REDIS || 'single' } = {}) {
  const redis = await startRedisTopology(topology);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const idp = await startOidcProvider({ publicUrl: base, ...idpOptions });
  const keys = Array.from({ length: keyCount }, () => generateKeyPair());
  const keyFile = tempFile('web.pem', keys.map((k) => k.privatePem).join(''));
  const settings = {
    WEB_ADDR: `127.0.0.1:${port}`,
    PUBLIC_URL: base,
    OIDC_ISSUER: idp.issuer,
    OIDC_CLIENT_ID: idp.clientId,
    OIDC_CLIENT_SECRET: idp.clientSecret,
    REDIS_URL: redis.url,
    JWT_PRIVATE_KEY_FILE: keyFile,
    ROOMS: 'General,Sports,Music',
    ...env,
  };
  const web = await startService('chat-web', settings, `${base}/healthz`);
  return {
    base,
    redis,
    idp,
    web,
    keys,
    settings,
    async stop() {
      await web.stop();
      await idp.stop();
      await redis.stop();
    },
  };
}

/** Location of a redirect, resolved against `url`; asserts nothing. */
export function locationOf(res, url) {
  const loc = res.headers.get('location');
  return loc === null ? null : new URL(loc, url).toString();
}

/**
 * Starts a login at `base`/login (with `next`), signs in at the provider as `account`, and
 * returns { callbackUrl } without following the callback (so tests can tamper with it).
 */
export async function startLogin(jar, base, account, next) {
  const url = `${base}/login${next ? `?next=${encodeURIComponent(next)}` : ''}`;
  const res = await jar.fetch(url);
  if (res.status !== 303) throw new Error(`/login answered ${res.status}: ${await res.text()}`);
  const authorizationUrl = locationOf(res, url);
  const callbackUrl = await loginAtProvider(jar, authorizationUrl, account);
  return { authorizationUrl, callbackUrl };
}

/** The whole login: returns the response of the callback (a redirect to `next`). */
export async function login(jar, base, account = 'alice', next) {
  const { callbackUrl } = await startLogin(jar, base, account, next);
  const res = await jar.fetch(callbackUrl);
  return { res, callbackUrl, location: locationOf(res, callbackUrl) };
}

/** The session cookie's value for `base`, or undefined. */
export function sessionCookie(jar, base) {
  return jar.for(base).get('chat_session');
}

/** The logout form's CSRF token found in a page. */
export function csrfOf(html) {
  return /name="csrf" value="([^"]+)"/.exec(html)?.[1];
}

/** POST to the token endpoint as the page would (same Origin; `origin: false` sends none). */
export function fetchToken(jar, base, room, { origin = base, body = '', headers = {} } = {}) {
  return jar.fetch(`${base}/api/rooms/${encodeURIComponent(room)}/token`, {
    method: 'POST',
    headers: { ...(origin === false ? {} : { origin }), 'content-type': 'application/json', ...headers },
    body,
  });
}

/** Verifies an EdDSA JWT against a JWKS with Node's crypto; returns { header, claims } or throws. */
export function verifyWithJwks(token, jwks) {
  const [h, p, s] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  if (header.alg !== 'EdDSA') throw new Error(`alg ${header.alg}`);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`no key ${header.kid}`);
  const thumbprint = crypto.createHash('sha256').update(`{"crv":"Ed25519","kty":"OKP","x":"${jwk.x}"}`).digest('base64url');
  if (thumbprint !== header.kid) throw new Error('kid is not the RFC 7638 thumbprint');
  const key = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, format: 'jwk' });
  if (!crypto.verify(null, Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'))) throw new Error('bad signature');
  return { header, claims: JSON.parse(Buffer.from(p, 'base64url')) };
}

/** Headers every page must carry. */
export function assertSecurityHeaders(assert, res, what) {
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /default-src 'self'/, `${what}: CSP default-src`);
  assert.match(csp, /script-src 'self'(;|$)/, `${what}: CSP script-src`);
  assert.match(csp, /frame-ancestors 'none'/, `${what}: CSP frame-ancestors`);
  assert.doesNotMatch(csp, /unsafe-inline/, `${what}: no unsafe-inline`);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${what}: nosniff`);
  assert.match(res.headers.get('referrer-policy') ?? '', /^(same-origin|no-referrer|strict-origin)/, `${what}: Referrer-Policy`);
}

/**
 * One HTTP request from the local address `from` (any 127.x.y.z: a second client on this
 * machine), so the service sees a different TCP peer. Resolves with { status, headers, text }.
 */
export function requestFrom(from, url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, localAddress: from }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A TCP server on 127.0.0.1 (`port`, or a free one) that accepts connections and never answers:
 * a provider that hangs. `accepted()` counts the connections it took.
 */
export async function startHangingServer(port = 0) {
  const sockets = new Set();
  let accepted = 0;
  const server = net.createServer((sock) => {
    accepted += 1;
    sockets.add(sock);
    sock.on('error', () => {});
    sock.on('close', () => sockets.delete(sock));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    accepted: () => accepted,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** The session keys in `redis` (the store keeps them under their bare 22-character ids), with their TTLs. */
export async function sessionKeys(redis) {
  const keys = (await redis.command('KEYS *')).filter((k) => /^[A-Za-z0-9_-]{22}$/.test(k));
  const ttls = [];
  for (const key of keys) ttls.push(await redis.command(['TTL', key]));
  return keys.map((key, i) => ({ key, ttl: ttls[i] }));
}

/** How many keys `redis` holds (DBSIZE). */
export async function keyCount(redis) {
  return redis.command('DBSIZE');
}
