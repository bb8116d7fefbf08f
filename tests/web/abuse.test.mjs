// Abuse and a hanging provider: a cookieless /login flood leaves only short-lived keys and is
// cut off by the per-address budget; the callback and the token endpoint have budgets per client
// address, which behind a trusted proxy is the right-most untrusted X-Forwarded-For hop and
// otherwise the TCP peer; an identity provider that accepts connections and never answers gets
// the user an error page within OIDC_HTTP_TIMEOUT_S.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, CookieJar, login, startLogin, locationOf, sessionCookie, fetchToken,
  requestFrom, startHangingServer, sessionKeys,
} from './stack.mjs';
import { loginAtProvider } from '../support/oidc.mjs';

const PENDING_LOGIN_MAX_S = 600;

/** Asserts a 429 with a Retry-After of 1..60 s. */
function assertRetryAfter(res, what) {
  assert.equal(res.status, 429, what);
  const retry = Number(res.headers['retry-after'] ?? res.headers.get?.('retry-after'));
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `${what}: Retry-After ${retry}`);
}

test('a cookieless /login flood leaves keys that live at most 10 minutes, and past the budget is refused and leaves none', async () => {
  const burst = 8;
  const stack = await startStack({ env: { LOGIN_RATE_BURST: String(burst), LOGIN_RATE_PER_MINUTE: '1' } });
  try {
    const flooder = '127.0.0.2';
    for (let i = 0; i < burst; i += 1) {
      const res = await requestFrom(flooder, `${stack.base}/login`);
      assert.equal(res.status, 303, `request ${i}`);
      const cookie = res.headers['set-cookie']?.find((c) => c.startsWith('chat_session='));
      const maxAge = Number(/max-age=(\d+)/i.exec(cookie ?? '')?.[1]);
      assert.ok(maxAge > 0 && maxAge <= PENDING_LOGIN_MAX_S, `pre-login cookie Max-Age ${maxAge}`);
    }
    const pending = await sessionKeys(stack.redis);
    assert.equal(pending.length, burst, 'one pending login per accepted request');
    for (const { key, ttl } of pending) assert.ok(ttl > 0 && ttl <= PENDING_LOGIN_MAX_S, `${key} TTL ${ttl}`);

    // Past the budget: refused before any session is made, whatever the client claims to be.
    for (let i = 0; i < 5; i += 1) {
      const res = await requestFrom(flooder, `${stack.base}/login`, { headers: { 'x-forwarded-for': `198.51.100.${i}` } });
      assertRetryAfter(res, `over-budget request ${i}`);
      assert.equal(res.headers['set-cookie'], undefined, 'no session cookie');
      assert.match(res.text, /<h1>Too many requests<\/h1>/);
    }
    assert.equal((await sessionKeys(stack.redis)).length, burst, 'refused requests created no key');

    // Another address is not limited, and its completed login gets the normal session lifetime.
    const jar = new CookieJar();
    const { callbackUrl } = await startLogin(jar, stack.base, 'alice');
    const preLogin = sessionCookie(jar, stack.base);
    const done = await jar.fetch(callbackUrl);
    assert.equal(done.status, 303);
    const signedIn = sessionCookie(jar, stack.base);
    assert.notEqual(signedIn, preLogin, 'the session id is cycled at login');
    const ttl = Number(/^:(\d+)/.exec(await stack.redis.command(`TTL ${signedIn}`))[1]);
    assert.ok(ttl > PENDING_LOGIN_MAX_S && ttl <= 3600, `signed-in session TTL ${ttl}`);
    assert.equal((await jar.fetch(`${stack.base}/dashboard`)).status, 200);
    const metrics = await (await fetch(`${stack.base}/metrics`)).text();
    assert.match(metrics, /chat_web_rate_limited_total\{budget="login"\} 5/);
  } finally {
    await stack.stop();
  }
});

test('the callback budget is per client address: behind a trusted proxy per forwarded client, else per peer', async () => {
  const stack = await startStack({
    env: { TRUSTED_PROXIES: '127.0.0.1', LOGIN_RATE_BURST: '4', LOGIN_RATE_PER_MINUTE: '1' },
  });
  try {
    const callback = `${stack.base}/authorization-code/callback?code=x&state=y`;
    const as = (client, extra = {}) => ({ headers: { 'x-forwarded-for': client, ...extra } });
    // Client A, through the trusted proxy (this machine's 127.0.0.1), spends its budget...
    for (let i = 0; i < 4; i += 1) {
      const res = await requestFrom('127.0.0.1', callback, as('203.0.113.1'));
      assert.equal(res.status, 400, `A's callback ${i} is judged (no login in progress)`);
    }
    const refused = await requestFrom('127.0.0.1', callback, as('203.0.113.1'));
    assertRetryAfter(refused, 'A over its budget');
    assert.match(refused.text, /<h1>Too many requests<\/h1>/);
    // ...and cannot escape it by writing another address left of what the proxy appended.
    const forged = await requestFrom('127.0.0.1', callback, as('198.51.100.77, 203.0.113.1'));
    assertRetryAfter(forged, 'A with a forged left-most hop');
    // Client B, through the same proxy, is not limited: it even signs in.
    assert.equal((await requestFrom('127.0.0.1', callback, as('203.0.113.2'))).status, 400);
    const jar = new CookieJar();
    const b = { 'x-forwarded-for': '203.0.113.2' };
    const start = await jar.fetch(`${stack.base}/login`, { headers: b });
    assert.equal(start.status, 303);
    const callbackUrl = await loginAtProvider(jar, locationOf(start, `${stack.base}/login`), 'bob');
    const done = await jar.fetch(callbackUrl, { headers: b });
    assert.equal(done.status, 303, 'B completes its login');

    // A peer that is not a trusted proxy is counted as itself: its X-Forwarded-For is ignored.
    for (let i = 0; i < 4; i += 1) {
      const res = await requestFrom('127.0.0.2', callback, as(`198.51.100.${i}`));
      assert.equal(res.status, 400, `untrusted peer's callback ${i}`);
    }
    assertRetryAfter(await requestFrom('127.0.0.2', callback, as('198.51.100.200')), 'untrusted peer over its budget');
  } finally {
    await stack.stop();
  }
});

test('the token endpoint budget is per client address and refuses with JSON rate_limited', async () => {
  const stack = await startStack({
    env: { TRUSTED_PROXIES: '127.0.0.0/30', TOKEN_RATE_BURST: '3', TOKEN_RATE_PER_MINUTE: '1' },
  });
  try {
    const jar = new CookieJar();
    await login(jar, stack.base, 'alice');
    const cookie = `chat_session=${sessionCookie(jar, stack.base)}`;
    const token = (peer, client) => requestFrom(peer, `${stack.base}/api/rooms/General/token`, {
      method: 'POST',
      headers: { cookie, origin: stack.base, 'content-type': 'application/json', 'x-forwarded-for': client },
      body: '{}',
    });
    for (let i = 0; i < 3; i += 1) assert.equal((await token('127.0.0.1', '203.0.113.1')).status, 200, `A's token ${i}`);
    const refused = await token('127.0.0.1', '203.0.113.1');
    assertRetryAfter(refused, 'A over its token budget');
    assert.deepEqual(JSON.parse(refused.text), { error: 'rate_limited' });
    assert.equal(refused.headers['cache-control'], 'no-store');
    // Another trusted proxy of the listed network forwarding the same client: the same budget.
    assertRetryAfter(await token('127.0.0.2', '203.0.113.1'), 'A through another trusted proxy');
    // Another client: its own budget, same session.
    assert.equal((await token('127.0.0.1', '203.0.113.2')).status, 200, 'B is not limited');
    // An untrusted peer (127.0.0.5 is outside 127.0.0.0/30): counted as itself whatever it forwards.
    for (let i = 0; i < 3; i += 1) assert.equal((await token('127.0.0.5', `198.51.100.${i}`)).status, 200);
    assertRetryAfter(await token('127.0.0.5', '198.51.100.99'), 'untrusted peer over its budget');
    // Without a session the budget still applies first (nothing is looked up for a refused request).
    const anonymous = await requestFrom('127.0.0.5', `${stack.base}/api/rooms/General/token`, { method: 'POST', headers: { origin: stack.base } });
    assertRetryAfter(anonymous, 'anonymous over budget');
    assert.equal((await fetchToken(new CookieJar(), stack.base, 'General', { headers: { 'x-forwarded-for': '203.0.113.3' } })).status, 401);
  } finally {
    await stack.stop();
  }
});

test('a token endpoint that accepts the connection and never answers: the callback shows "cannot be reached" within OIDC_HTTP_TIMEOUT_S (default 5 s)', async () => {
  const stack = await startStack();
  let hanging;
  try {
    const jar = new CookieJar();
    // /login discovers the provider; the code is issued; then the provider hangs.
    const { callbackUrl } = await startLogin(jar, stack.base, 'alice');
    await stack.idp.stop();
    hanging = await startHangingServer(stack.idp.port);
    const started = Date.now();
    const res = await jar.fetch(callbackUrl);
    const elapsed = Date.now() - started;
    assert.ok(hanging.accepted() >= 1, 'the code exchange reached the hanging provider');
    assert.ok(elapsed < 7000, `error page after ${elapsed} ms`);
    assert.equal(res.status, 503);
    const html = await res.text();
    assert.match(html, /<h1>Sign-in failed<\/h1>/);
    assert.match(html, /identity provider\) cannot be reached/);
    assert.equal((await jar.fetch(`${stack.base}/dashboard`)).status, 303, 'not signed in');
    // The provider answers again: sign-in works.
    await hanging.close();
    hanging = null;
    await stack.idp.start();
    const again = await login(new CookieJar(), stack.base, 'alice');
    assert.equal(again.res.status, 303);
  } finally {
    await hanging?.close();
    await stack.stop();
  }
});

test('a discovery endpoint that never answers: /login shows "cannot be reached" within OIDC_HTTP_TIMEOUT_S', async () => {
  const hanging = await startHangingServer();
  const stack = await startStack({ env: { OIDC_ISSUER: hanging.url, OIDC_HTTP_TIMEOUT_S: '1' } });
  try {
    const started = Date.now();
    const res = await fetch(`${stack.base}/login`, { redirect: 'manual' });
    const elapsed = Date.now() - started;
    assert.ok(hanging.accepted() >= 1, 'discovery reached the hanging provider');
    assert.ok(elapsed < 2500, `error page after ${elapsed} ms`);
    assert.equal(res.status, 503);
    assert.match(await res.text(), /identity provider\) cannot be reached/);
    assert.equal((await sessionKeys(stack.redis)).length, 0, 'a failed /login leaves no session');
  } finally {
    await stack.stop();
    await hanging.close();
  }
});
