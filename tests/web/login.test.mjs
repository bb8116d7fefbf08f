// The happy path of the web service, walked over HTTP like a browser: home, login at a real
// OpenID Connect provider, dashboard, room page, room token, JWKS, logout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startStack, CookieJar, login, locationOf, sessionCookie, csrfOf, fetchToken,
  verifyWithJwks, subscribe, assertSecurityHeaders, until,
} from './stack.mjs';
import { loginAtProvider } from '../support/oidc.mjs';

let stack;
before(async () => {
  stack = await startStack({ keys: 2, idp: { accounts: { alice: { name: '  Alice <b>Liddell</b>\u0007 ' } } } });
});
after(async () => stack?.stop());

test('home page offers a login link and carries the security headers', async () => {
  const res = await fetch(`${stack.base}/`);
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /href="\/login"/);
  assertSecurityHeaders(assert, res, 'home');
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
});

test('a full login lands on the dashboard with the display name from the provider, escaped', async () => {
  const jar = new CookieJar();
  const { res, location } = await login(jar, stack.base, 'alice');
  assert.equal(res.status, 303);
  assert.equal(location, `${stack.base}/dashboard`);
  const page = await jar.fetch(location);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /Alice &#60;b&#62;Liddell&#60;\/b&#62;|Alice &lt;b&gt;Liddell&lt;\/b&gt;/);
  assert.doesNotMatch(html, /<b>Liddell/);
  assertSecurityHeaders(assert, page, 'dashboard');
});

test('/login keeps the login in progress in an HttpOnly, SameSite=Lax cookie of its own and starts no session', async () => {
  const jar = new CookieJar();
  const first = await jar.fetch(`${stack.base}/login`);
  assert.equal(first.status, 303);
  const lines = first.headers.getSetCookie();
  assert.ok(!lines.some((c) => c.startsWith('chat_session=')), 'no session before the sign-in completes');
  const pending = lines.find((c) => c.startsWith('chat_login_'));
  assert.ok(pending, 'a pending-login cookie');
  assert.match(pending, /HttpOnly/i);
  assert.match(pending, /SameSite=Lax/i, 'it comes back on the redirect from the provider');
  assert.match(pending, /Path=\//);
  assert.match(pending, /Max-Age=600\b/i);
  assert.doesNotMatch(pending, /Secure/i, 'http PUBLIC_URL: not Secure');
  const value = pending.split(';')[0].split('=')[1];
  const state = new URL(first.headers.get('location')).searchParams.get('state');
  assert.ok(!Buffer.from(value, 'base64url').toString('latin1').includes(state), 'the state is not readable in the cookie');
  const { res } = await login(jar, stack.base, 'bob');
  assert.equal(res.status, 303);
  const cookieLine = res.headers.getSetCookie().find((c) => c.startsWith('chat_session='));
  assert.match(cookieLine, /HttpOnly/i);
  assert.match(cookieLine, /SameSite=Lax/i);
  assert.doesNotMatch(cookieLine, /Secure/i);
  // The sign-in used up its own pending login; the first one, never completed, stays until it expires.
  const left = [...jar.for(stack.base).keys()].filter((k) => k.startsWith('chat_login_'));
  assert.deepEqual(left, [pending.split('=')[0]]);
});

test('logins started in two tabs of one browser both complete, and each sign-in cycles the session id (no fixation)', async () => {
  const jar = new CookieJar();
  // Both tabs start a login; then each goes through the provider and back, one after the other.
  const start = async (next) => {
    const url = `${stack.base}/login?next=${encodeURIComponent(next)}`;
    const res = await jar.fetch(url);
    assert.equal(res.status, 303);
    return locationOf(res, url);
  };
  const tab1 = await start('/chat/General');
  const tab2 = await start('/chat/Sports');
  const callback1 = await loginAtProvider(jar, tab1, 'erin');
  const first = await jar.fetch(callback1);
  assert.equal(first.status, 303);
  assert.equal(locationOf(first, callback1), `${stack.base}/chat/General`);
  const before = sessionCookie(jar, stack.base);
  assert.ok(before);
  const callback2 = await loginAtProvider(jar, tab2, 'erin');
  const second = await jar.fetch(callback2);
  assert.equal(second.status, 303, 'the other tab completes too');
  assert.equal(locationOf(second, callback2), `${stack.base}/chat/Sports`);
  const afterLogin = sessionCookie(jar, stack.base);
  assert.ok(afterLogin);
  assert.notEqual(afterLogin, before, 'session id cycled at the sign-in');
  assert.equal((await jar.fetch(`${stack.base}/dashboard`)).status, 200);
  // The id the browser had before the sign-in is worthless.
  const planted = new CookieJar();
  planted.for(stack.base).set('chat_session', before);
  const res2 = await planted.fetch(`${stack.base}/dashboard`);
  assert.equal(res2.status, 303);
  assert.match(res2.headers.get('location'), /^\/login\?next=/);
});

test('protected pages redirect to /login?next=... and come back there after login', async () => {
  for (const path of ['/dashboard', '/chat/Sports']) {
    const res = await fetch(`${stack.base}${path}`, { redirect: 'manual' });
    assert.equal(res.status, 303, path);
    const to = new URL(res.headers.get('location'), stack.base);
    assert.equal(to.pathname, '/login', path);
    assert.equal(to.searchParams.get('next'), path);
  }
  const jar = new CookieJar();
  const first = await jar.fetch(`${stack.base}/chat/Sports`);
  const loginUrl = locationOf(first, `${stack.base}/chat/Sports`);
  const { location } = await login(jar, stack.base, 'carol', new URL(loginUrl).searchParams.get('next'));
  assert.equal(location, `${stack.base}/chat/Sports`);
  const page = await jar.fetch(location);
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /data-room="Sports"/);
  assert.match(html, /<script src="\/static\/room.js"/);
  assertSecurityHeaders(assert, page, 'room');
});

test('?next= is a local path only: no open redirect', async () => {
  for (const evil of ['//evil.example/x', 'https://evil.example/', '/\\evil.example', '\\\\evil.example', 'javascript:alert(1)']) {
    const jar = new CookieJar();
    const { location } = await login(jar, stack.base, 'dave', evil);
    assert.equal(location, `${stack.base}/dashboard`, `next=${evil}`);
  }
});

test('the API without a session answers 401 JSON', async () => {
  const res = await fetchToken(new CookieJar(), stack.base, 'General');
  assert.equal(res.status, 401);
  assert.equal((await res.json()).error, 'login_required');
  assert.equal(res.headers.get('cache-control'), 'no-store');
});

test('logout without a session just goes home', async () => {
  const res = await fetch(`${stack.base}/logout`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'csrf=x' });
  assert.equal(res.status, 303);
  assert.equal(res.headers.get('location'), '/');
});

test('dashboard shows every configured room with its live member count', async () => {
  await stack.redis.command('HSET chat:room:{Music}:users u1 1 u2 2');
  const jar = new CookieJar();
  await login(jar, stack.base, 'erin');
  const html = await (await jar.fetch(`${stack.base}/dashboard`)).text();
  for (const room of ['General', 'Sports', 'Music']) assert.match(html, new RegExp(`href="/chat/${room}"`));
  assert.match(html, /data-room="Music">2 people here/);
  assert.match(html, /data-room="General">0 people here/);
});

test('room tokens: EdDSA, kid = thumbprint of the last key, contract claims, verified against the JWKS', async () => {
  const jar = new CookieJar();
  await login(jar, stack.base, 'alice');
  const res = await fetchToken(jar, stack.base, 'General', { body: '{}' });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const body = await res.json();
  assert.equal(body.gateway_url, stack.base);
  const jwksRes = await fetch(`${stack.base}/.well-known/jwks.json`);
  assert.equal(jwksRes.status, 200);
  const jwks = await jwksRes.json();
  assert.deepEqual(jwks.keys.map((k) => k.kid).sort(), stack.keys.map((k) => k.kid).sort(), 'every configured key is published');
  const { header, claims } = verifyWithJwks(body.token, jwks);
  assert.equal(header.kid, stack.keys[1].kid, 'the last key signs');
  assert.equal(header.typ, 'JWT');
  assert.equal(claims.iss, 'chat-web');
  assert.equal(claims.aud, 'chat-gateway');
  assert.equal(claims.sub, 'alice');
  assert.equal(claims.name, 'Alice <b>Liddell</b>');
  assert.equal(claims.room, 'General');
  assert.equal(claims.exp, body.exp);
  assert.ok(claims.exp - claims.iat <= 300 && claims.exp > Math.floor(Date.now() / 1000));
  assert.ok(claims.jti);
  assert.ok(claims.sid && claims.sid.length >= 32);
  assert.ok(!sessionCookie(jar, stack.base).includes(claims.sid) && claims.sid !== sessionCookie(jar, stack.base), 'sid is not the cookie');
  const again = verifyWithJwks((await (await fetchToken(jar, stack.base, 'General')).json()).token, jwks).claims;
  assert.notEqual(again.jti, claims.jti);
  assert.equal(again.sid, claims.sid, 'one sid per web session');
});

test('the token endpoint refuses unknown rooms, foreign and null origins, cross-site fetches and bodies', async () => {
  const jar = new CookieJar();
  await login(jar, stack.base, 'alice');
  const unknown = await fetchToken(jar, stack.base, 'Nope');
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error, 'room_unknown');
  for (const origin of ['https://evil.example', 'null', false]) {
    const res = await fetchToken(jar, stack.base, 'General', { origin });
    assert.equal(res.status, 403, `origin ${origin}`);
    assert.equal(res.headers.get('cache-control'), 'no-store');
  }
  const crossSite = await fetchToken(jar, stack.base, 'General', { headers: { 'sec-fetch-site': 'cross-site' } });
  assert.equal(crossSite.status, 403);
  const sameSite = await fetchToken(jar, stack.base, 'General', { headers: { 'sec-fetch-site': 'same-origin' } });
  assert.equal(sameSite.status, 200);
  const withBody = await fetchToken(jar, stack.base, 'General', { body: '{"room":"Sports"}' });
  assert.equal(withBody.status, 400);
});

test('logout needs the CSRF token; with it the session ends, the sid is revoked and gateways are told', async () => {
  const jar = new CookieJar();
  await login(jar, stack.base, 'alice');
  const page = await (await jar.fetch(`${stack.base}/dashboard`)).text();
  const csrf = csrfOf(page);
  assert.ok(csrf, 'the page carries a CSRF token');
  const { claims } = verifyWithJwks((await (await fetchToken(jar, stack.base, 'General')).json()).token, await (await fetch(`${stack.base}/.well-known/jwks.json`)).json());
  const sub = await subscribe(stack.redis.port, 'chat:revocations');
  try {
    const post = (body) => jar.fetch(`${stack.base}/logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    for (const bad of ['', 'csrf=', `csrf=${csrf.slice(0, -1)}x`]) {
      const res = await post(bad);
      assert.equal(res.status, 403, `csrf ${JSON.stringify(bad)}`);
    }
    assert.equal((await jar.fetch(`${stack.base}/dashboard`)).status, 200, 'still signed in after refused logouts');
    assert.equal(await stack.redis.command(`EXISTS chat:revoked:${claims.sid}`), 0);

    const res = await post(`csrf=${encodeURIComponent(csrf)}`);
    assert.equal(res.status, 303);
    const to = new URL(res.headers.get('location'));
    assert.equal(to.origin + to.pathname, `${stack.idp.issuer}/session/end`);
    assert.ok(to.searchParams.get('id_token_hint'), 'id_token_hint');
    assert.equal(to.searchParams.get('post_logout_redirect_uri'), `${stack.base}/`);
    assert.equal(await stack.redis.command(`EXISTS chat:revoked:${claims.sid}`), 1);
    const ttl = await stack.redis.command(`TTL chat:revoked:${claims.sid}`);
    assert.ok(ttl >= 330, `revocation outlives a token plus grace (ttl ${ttl})`);
    await until('revocation published', () => sub.received().includes(claims.sid));
    const after = await jar.fetch(`${stack.base}/dashboard`);
    assert.equal(after.status, 303, 'signed out');
    assert.equal((await fetchToken(jar, stack.base, 'General')).status, 401);
  } finally {
    sub.close();
  }
});

test('the provider accepts our end-session request', async () => {
  const jar = new CookieJar();
  await login(jar, stack.base, 'alice');
  const csrf = csrfOf(await (await jar.fetch(`${stack.base}/dashboard`)).text());
  const res = await jar.fetch(`${stack.base}/logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `csrf=${csrf}` });
  const endSession = await jar.fetch(res.headers.get('location'));
  assert.equal(endSession.status, 200, 'the provider shows its logout confirmation, not an error');
  assert.doesNotMatch(await endSession.text(), /invalid_request|error/i);
});
