// Every way a login can go wrong ends on a clear error page with no signed-in session:
// a wrong state, a replayed or injected code, a code from another client or another provider,
// a provider error, and a provider that cannot be reached.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, CookieJar, login, startLogin, sessionCookie, locationOf } from './stack.mjs';
import { startOidcProvider, loginAtProvider } from '../support/oidc.mjs';

let stack;
let otherIdp;
before(async () => {
  stack = await startStack({ idp: { clients: [{ client_id: 'another-app', client_secret: 'another-secret' }], claimsInIdToken: true } });
  // A second provider that knows a client with the same id and secret.
  otherIdp = await startOidcProvider({ publicUrl: stack.base, clientId: stack.idp.clientId, clientSecret: stack.idp.clientSecret });
});
after(async () => {
  await otherIdp?.stop();
  await stack?.stop();
});

/** Asserts an error page with `status` and that `jar` is not signed in. */
async function assertRefused(res, jar, status = 400) {
  assert.equal(res.status, status);
  const html = await res.text();
  assert.match(html, /<h1>Sign-in failed<\/h1>/);
  assert.match(html, /not signed in|expired or was already used|did not sign you in/);
  assert.doesNotMatch(html, /panicked|RUST_BACKTRACE/);
  const dash = await jar.fetch(`${stack.base}/dashboard`);
  assert.equal(dash.status, 303, 'no session was created');
  assert.equal((await jar.fetch(`${stack.base}/api/rooms/General/token`, { method: 'POST', headers: { origin: stack.base } })).status, 401);
}

/** The callback URL with `params` changed (null deletes). */
function tamper(callbackUrl, params) {
  const url = new URL(callbackUrl);
  for (const [k, v] of Object.entries(params)) {
    if (v === null) url.searchParams.delete(k);
    else url.searchParams.set(k, v);
  }
  return url.toString();
}

test('the display name can come from the ID token itself', async () => {
  const jar = new CookieJar();
  const { location } = await login(jar, stack.base, 'zoe');
  assert.match(await (await jar.fetch(location)).text(), /User zoe/);
});

test('a wrong state is refused, and the login cannot be retried with the right one', async () => {
  const jar = new CookieJar();
  const { callbackUrl } = await startLogin(jar, stack.base, 'mallory');
  await assertRefused(await jar.fetch(tamper(callbackUrl, { state: 'forged' })), jar);
  await assertRefused(await jar.fetch(callbackUrl), jar);
  await assertRefused(await jar.fetch(tamper(callbackUrl, { state: null })), jar);
});

test('a replayed callback is refused, in the same browser and in another one', async () => {
  const jar = new CookieJar();
  const { res, callbackUrl } = await login(jar, stack.base, 'alice');
  assert.equal(res.status, 303);
  const replay = await jar.fetch(callbackUrl);
  assert.equal(replay.status, 400);
  assert.equal((await jar.fetch(`${stack.base}/dashboard`)).status, 200, 'a replay does not sign the real user out');
  await assertRefused(await new CookieJar().fetch(callbackUrl), new CookieJar());
});

test('a used code replayed into a fresh login with a valid state is refused by the code exchange', async () => {
  const victim = new CookieJar();
  const { callbackUrl: used } = await login(victim, stack.base, 'alice');
  const attacker = new CookieJar();
  const { callbackUrl: mine } = await startLogin(attacker, stack.base, 'mallory');
  const state = new URL(mine).searchParams.get('state');
  await assertRefused(await attacker.fetch(tamper(used, { state })), attacker);
});

test("a code stolen from another browser's login is useless (PKCE and nonce are bound to the session)", async () => {
  const victim = new CookieJar();
  const { callbackUrl: stolen } = await startLogin(victim, stack.base, 'alice');
  const attacker = new CookieJar();
  const { callbackUrl: mine } = await startLogin(attacker, stack.base, 'mallory');
  const state = new URL(mine).searchParams.get('state');
  await assertRefused(await attacker.fetch(tamper(stolen, { state })), attacker);
  // The victim's own login is unharmed: its code was never redeemed.
  const ok = await victim.fetch(stolen);
  assert.equal(ok.status, 303);
});

test('a code issued to another client is refused', async () => {
  const jar = new CookieJar();
  const start = await jar.fetch(`${stack.base}/login`);
  const auth = new URL(locationOf(start, `${stack.base}/login`));
  auth.searchParams.set('client_id', 'another-app');
  const callbackUrl = await loginAtProvider(jar, auth.toString(), 'alice');
  assert.ok(new URL(callbackUrl).searchParams.get('code'), 'the provider issued a code to the other client');
  await assertRefused(await jar.fetch(callbackUrl), jar);
});

test('a code from another provider is refused, by its iss parameter or by the exchange', async () => {
  for (const keepIss of [true, false]) {
    const jar = new CookieJar();
    const start = await jar.fetch(`${stack.base}/login`);
    const auth = new URL(locationOf(start, `${stack.base}/login`));
    const foreign = new URL(auth.pathname + auth.search, otherIdp.issuer);
    const callbackUrl = await loginAtProvider(jar, foreign.toString(), 'alice');
    assert.equal(new URL(callbackUrl).searchParams.get('iss'), otherIdp.issuer);
    await assertRefused(await jar.fetch(keepIss ? callbackUrl : tamper(callbackUrl, { iss: null })), jar);
  }
});

test('a callback without a code, or with a provider error, is refused', async () => {
  const jar = new CookieJar();
  const { callbackUrl } = await startLogin(jar, stack.base, 'alice');
  await assertRefused(await jar.fetch(tamper(callbackUrl, { code: null })), jar);
  const jar2 = new CookieJar();
  const { callbackUrl: cb2 } = await startLogin(jar2, stack.base, 'alice');
  await assertRefused(await jar2.fetch(tamper(cb2, { code: null, error: 'access_denied' })), jar2, 403);
});

test('a callback with no login in progress is refused without a session', async () => {
  const jar = new CookieJar();
  await assertRefused(await jar.fetch(`${stack.base}/authorization-code/callback?code=abc&state=def`), jar);
  assert.equal(sessionCookie(jar, stack.base), undefined);
});

test('logins are counted by outcome in /metrics', async () => {
  const text = await (await fetch(`${stack.base}/metrics`)).text();
  assert.match(text, /chat_web_logins_total\{outcome="success"\} [1-9]/);
  assert.match(text, /chat_web_logins_total\{outcome="state_mismatch"\} [1-9]/);
  assert.match(text, /chat_web_logins_total\{outcome="code_refused"\} [1-9]/);
  assert.match(text, /chat_web_logins_total\{outcome="issuer_mismatch"\} [1-9]/);
  assert.match(text, /chat_web_http_requests_total\{[^}]*route="\/login"[^}]*\} [1-9]/);
});

// Last: it takes the provider away.
test('with the identity provider away, /login shows a clear error page; when it is back, login works', async () => {
  const fresh = await startStack();
  try {
    await fresh.idp.stop();
    const res = await fetch(`${fresh.base}/login`, { redirect: 'manual' });
    assert.equal(res.status, 503);
    const html = await res.text();
    assert.match(html, /identity provider\) cannot be reached/);
    assert.equal((await fetch(`${fresh.base}/healthz`)).status, 200, 'the service keeps running');
    await fresh.idp.start();
    const jar = new CookieJar();
    const { res: done, location } = await login(jar, fresh.base, 'alice');
    assert.equal(done.status, 303);
    assert.equal((await jar.fetch(location)).status, 200);
  } finally {
    await fresh.stop();
  }
});
