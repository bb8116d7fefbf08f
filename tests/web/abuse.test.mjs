// Abuse and a hanging provider: a /login flood writes nothing to Redis and locks nobody out, so a
// whole office behind one address signs in at once; the sign-in budget (spent only by callbacks
// of logins started in that browser) and the token endpoint's budget are per client address,
// which behind a trusted proxy is the right-most untrusted X-Forwarded-For hop and otherwise the
// TCP peer; an identity provider that accepts connections and never answers gets the user an
// error page within OIDC_HTTP_TIMEOUT_S.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, CookieJar, login, startLogin, locationOf, sessionCookie, fetchToken,
  requestFrom, startHangingServer, sessionKeys, keyCount,
} from './stack.mjs';
import { loginAtProvider } from '../support/oidc.mjs';

const PENDING_LOGIN_MAX_S = 600;

/** Asserts a 429 with a Retry-After of 1..60 s. */
function assertRetryAfter(res, what) {
  assert.equal(res.status, 429, what);
  const retry = Number(res.headers['retry-after'] ?? res.headers.get?.('retry-after'));
  assert.ok(Number.isInteger(retry) && retry >= 1 && retry <= 60, `${what}: Retry-After ${retry}`);
}

/** Runs `task(i)` for i in 0..n, `width` at a time; resolves with the results in order. */
async function inParallel(n, width, task) {
  const results = new Array(n);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) {
      const i = next++;
      results[i] = await task(i);
    }
  }));
  return results;
}

/**
 * A login started by a browser that keeps no cookie jar (a raw request from `from`): the
 * pending-login cookie /login set, and the callback URL of that login with a made-up code.
 */
async function pendingLogin(base, from = '127.0.0.1') {
  const res = await requestFrom(from, `${base}/login`);
  assert.equal(res.status, 303);
  const cookie = res.headers['set-cookie'].find((c) => c.startsWith('chat_login_')).split(';')[0];
  const state = new URL(res.headers.location).searchParams.get('state');
  return { cookie, callback: `${base}/authorization-code/callback?code=made-up&state=${encodeURIComponent(state)}` };
}

test('a 300-request /login flood writes nothing to Redis and locks nobody out: a real sign-in from the same address follows at once', async () => {
  const stack = await startStack();
  try {
    const office = '127.0.0.1';
    const keysBefore = await keyCount(stack.redis);
    const flood = await inParallel(300, 30, () => requestFrom(office, `${stack.base}/login`));
    const refused = flood.filter((res) => res.status !== 303).length;
    assert.equal(refused, 0, `${refused} of 300 /login requests refused (${flood.at(-1).status})`);
    assert.equal(await keyCount(stack.redis), keysBefore, 'the flood wrote no key to Redis');
    for (const [i, res] of flood.entries()) {
      const cookies = res.headers['set-cookie'] ?? [];
      assert.ok(!cookies.some((c) => c.startsWith('chat_session=')), `request ${i}: no session is started`);
      const pending = cookies.find((c) => c.startsWith('chat_login_'));
      assert.match(pending ?? '', /; HttpOnly/i);
      assert.match(pending, /; SameSite=Lax/i);
      const maxAge = Number(/max-age=(\d+)/i.exec(pending)?.[1]);
      assert.ok(maxAge > 0 && maxAge <= PENDING_LOGIN_MAX_S, `request ${i}: pending-login cookie Max-Age ${maxAge}`);
    }

    // Right after it, from the same address: a real sign-in, with the normal session lifetime.
    const jar = new CookieJar();
    const { res, location } = await login(jar, stack.base, 'alice');
    assert.equal(res.status, 303);
    assert.equal(location, `${stack.base}/dashboard`);
    assert.equal((await jar.fetch(`${stack.base}/dashboard`)).status, 200);
    const ttl = await stack.redis.command(['TTL', sessionCookie(jar, stack.base)]);
    assert.ok(ttl > PENDING_LOGIN_MAX_S && ttl <= 3600, `signed-in session TTL ${ttl}`);
    assert.equal((await sessionKeys(stack.redis)).length, 1, 'one session: the one signed in');
    const metrics = await (await fetch(`${stack.base}/metrics`)).text();
    assert.doesNotMatch(metrics, /chat_web_rate_limited_total\{budget="login"\}/);
  } finally {
    await stack.stop();
  }
});

test('100 people behind one address sign in within a minute, all of them', async () => {
  const stack = await startStack();
  try {
    const started = Date.now();
    const people = await inParallel(100, 10, async (i) => {
      const jar = new CookieJar();
      const { res, location } = await login(jar, stack.base, `colleague-${i}`);
      return { i, jar, status: res.status, location };
    });
    for (const { i, status, location } of people) {
      assert.equal(status, 303, `colleague ${i} signed in`);
      assert.equal(location, `${stack.base}/dashboard`, `colleague ${i} lands on the dashboard`);
    }
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 60_000, `within a minute (${elapsed} ms)`);
    const pages = await inParallel(100, 10, async (i) => (await people[i].jar.fetch(`${stack.base}/dashboard`)).text());
    for (const [i, html] of pages.entries()) assert.match(html, new RegExp(`User colleague-${i}\\b`), `colleague ${i}'s dashboard`);
    assert.equal((await sessionKeys(stack.redis)).length, 100, 'one session each');
  } finally {
    await stack.stop();
  }
});

test('the sign-in budget is a coarse per-address guard: only callbacks of logins started in that browser spend it', async () => {
  const burst = 3;
  const stack = await startStack({ env: { LOGIN_RATE_BURST: String(burst), LOGIN_RATE_PER_MINUTE: '1' } });
  try {
    // Callbacks with no login in progress (a flood of them, or forged ones) are refused unspent.
    for (let i = 0; i < 10; i += 1) {
      const res = await requestFrom('127.0.0.1', `${stack.base}/authorization-code/callback?code=x&state=y${i}`);
      assert.equal(res.status, 400, `callback without a login ${i}`);
    }
    for (let i = 0; i < burst; i += 1) {
      const { res } = await login(new CookieJar(), stack.base, `early-${i}`);
      assert.equal(res.status, 303, `sign-in ${i} within the budget`);
    }
    const jar = new CookieJar();
    const { callbackUrl } = await startLogin(jar, stack.base, 'late');
    const refused = await jar.fetch(callbackUrl);
    assertRetryAfter(refused, 'a sign-in past the budget');
    assert.match(await refused.text(), /<h1>Too many requests<\/h1>/);
    assert.equal((await jar.fetch(`${stack.base}/dashboard`)).status, 303, 'not signed in');
    assert.equal((await sessionKeys(stack.redis)).length, burst, 'the refused sign-in made no session');
    const metrics = await (await fetch(`${stack.base}/metrics`)).text();
    assert.match(metrics, /chat_web_rate_limited_total\{budget="login"\} 1\b/);
    assert.match(metrics, /chat_web_logins_total\{outcome="rate_limited"\} 1\b/);
  } finally {
    await stack.stop();
  }
});

test('the sign-in budget is per client address: behind a trusted proxy per forwarded client, else per peer', async () => {
  const stack = await startStack({
    env: { TRUSTED_PROXIES: '127.0.0.1', LOGIN_RATE_BURST: '4', LOGIN_RATE_PER_MINUTE: '1' },
  });
  try {
    // A login started without a cookie jar: its cookie can be sent back with any made-up code,
    // and each such callback is judged by the provider (the code is refused) after spending.
    const { cookie, callback } = await pendingLogin(stack.base);
    const as = (client) => ({ headers: { cookie, 'x-forwarded-for': client } });
    // Client A, through the trusted proxy (this machine's 127.0.0.1), spends its budget...
    for (let i = 0; i < 4; i += 1) {
      const res = await requestFrom('127.0.0.1', callback, as('203.0.113.1'));
      assert.equal(res.status, 400, `A's callback ${i} is judged (the made-up code is refused)`);
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
