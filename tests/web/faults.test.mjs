// Faults and hardening: Redis going away and coming back, session limits, security headers on
// every kind of response, 404s, health endpoints, and settings checked at start.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startStack, CookieJar, login, startLogin, assertSecurityHeaders, until } from './stack.mjs';
import { binDir } from '../support/service.mjs';
import { tempFile } from '../support/keys.mjs';

let stack;
before(async () => {
  stack = await startStack();
});
after(async () => stack?.stop());

test('security headers are on every kind of response', async () => {
  const jar = new CookieJar();
  await login(jar, stack.base, 'alice');
  const paths = ['/', '/dashboard', '/chat/General', '/chat/Nope', '/nowhere', '/static/app.css', '/healthz', '/readyz', '/.well-known/jwks.json', '/authorization-code/callback'];
  for (const p of paths) {
    const res = await jar.fetch(`${stack.base}${p}`);
    assertSecurityHeaders(assert, res, p);
  }
  const csp = (await jar.fetch(`${stack.base}/`)).headers.get('content-security-policy');
  assert.match(csp, new RegExp(`connect-src 'self' ${stack.base} ws://127\\.0\\.0\\.1:\\d+`));
});

test('an unknown room is a 404 page, signed in or not; room names are case-sensitive', async () => {
  const jar = new CookieJar();
  await login(jar, stack.base, 'alice');
  for (const j of [jar, new CookieJar()]) {
    for (const room of ['Nope', 'general']) {
      const res = await j.fetch(`${stack.base}/chat/${room}`);
      assert.equal(res.status, 404);
      assert.match(await res.text(), /<h1>Not found<\/h1>/);
    }
  }
  assert.equal((await jar.fetch(`${stack.base}/chat/General`)).status, 200);
});

test('health: /healthz is 200, /readyz is 200 with Redis up, /metrics is Prometheus text', async () => {
  assert.equal((await fetch(`${stack.base}/healthz`)).status, 200);
  assert.equal((await fetch(`${stack.base}/readyz`)).status, 200);
  const metrics = await fetch(`${stack.base}/metrics`);
  assert.match(metrics.headers.get('content-type'), /^text\/plain/);
  assert.match(await metrics.text(), /# TYPE chat_web_http_requests_total counter/);
});

test('with Redis away, session pages and sign-ins answer a clear 503 and readiness fails; both recover by themselves', async () => {
  const jar = new CookieJar();
  await login(jar, stack.base, 'alice');
  await stack.redis.kill();
  try {
    const res = await jar.fetch(`${stack.base}/dashboard`);
    assert.equal(res.status, 503);
    assert.match(await res.text(), /session store cannot be reached/);
    assert.equal((await fetch(`${stack.base}/readyz`)).status, 503);
    assert.equal((await fetch(`${stack.base}/healthz`)).status, 200);
    assert.equal((await jar.fetch(`${stack.base}/`)).status, 200, 'the home page still renders');
    const api = await jar.fetch(`${stack.base}/api/rooms/General/token`, { method: 'POST', headers: { origin: stack.base } });
    assert.equal(api.status, 503);
    assert.equal((await api.json()).error, 'unavailable');
    // A login starts without Redis (what it must remember is a cookie); its sign-in needs a session.
    const fresh = new CookieJar();
    const { callbackUrl } = await startLogin(fresh, stack.base, 'bob');
    const signIn = await fresh.fetch(callbackUrl);
    assert.equal(signIn.status, 503);
    assert.match(await signIn.text(), /session store cannot be reached/);
  } finally {
    await stack.redis.start();
  }
  await until('readyz 200 after Redis is back', async () => (await fetch(`${stack.base}/readyz`)).status === 200);
  // Redis came back empty, so the old session is gone: a fresh login works end to end.
  await until('session pages leave 503', async () => (await jar.fetch(`${stack.base}/dashboard`)).status !== 503);
  const again = new CookieJar();
  const { location } = await login(again, stack.base, 'alice');
  assert.equal((await again.fetch(location)).status, 200);
});

test('a session ends at its absolute limit even while in use', async () => {
  const short = await startStack({ env: { SESSION_MAX_AGE_S: '2' } });
  try {
    const jar = new CookieJar();
    await login(jar, short.base, 'alice');
    assert.equal((await jar.fetch(`${short.base}/dashboard`)).status, 200);
    await until('the session to end', async () => (await jar.fetch(`${short.base}/dashboard`)).status === 303, { timeoutMs: 6000, everyMs: 250 });
  } finally {
    await short.stop();
  }
});

test('a session left unused past its idle limit ends', async () => {
  const idle = await startStack({ env: { SESSION_IDLE_S: '1' } });
  try {
    const jar = new CookieJar();
    await login(jar, idle.base, 'alice');
    assert.equal((await jar.fetch(`${idle.base}/dashboard`)).status, 200);
    // Nothing to wait on but the clock: no request may touch the session meanwhile.
    await new Promise((r) => setTimeout(r, 2200));
    const res = await jar.fetch(`${idle.base}/dashboard`);
    assert.equal(res.status, 303);
    assert.match(res.headers.get('location'), /^\/login\?next=/);
  } finally {
    await idle.stop();
  }
});

/** Runs the binary with `env` and resolves with { code, output } once it exits. */
function runToExit(env) {
  return new Promise((resolve) => {
    const proc = spawn(path.join(binDir, 'chat-web'), [], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let output = '';
    proc.stdout.on('data', (d) => { output += d; });
    proc.stderr.on('data', (d) => { output += d; });
    proc.on('exit', (code) => resolve({ code, output }));
  });
}

test('a missing or bad setting stops the process at start with a line naming it', async () => {
  const good = { ...stack.settings, WEB_ADDR: '127.0.0.1:0' };
  for (const missing of ['OIDC_ISSUER', 'OIDC_CLIENT_ID', 'OIDC_CLIENT_SECRET', 'REDIS_URL', 'JWT_PRIVATE_KEY_FILE']) {
    const env = { ...good };
    delete env[missing];
    const { code, output } = await runToExit(env);
    assert.notEqual(code, 0, missing);
    assert.match(output, new RegExp(`chat-web: ${missing} is required`), missing);
  }
  const badKey = await runToExit({ ...good, JWT_PRIVATE_KEY_FILE: tempFile('bad.pem', 'not a key') });
  assert.notEqual(badKey.code, 0);
  assert.match(badKey.output, /JWT_PRIVATE_KEY_FILE/);
  const badTtl = await runToExit({ ...good, TOKEN_TTL_S: 'soon' });
  assert.match(badTtl.output, /TOKEN_TTL_S is invalid/);
});

test('the room page loads only same-site scripts and styles, which are served with the right types', async () => {
  const jar = new CookieJar();
  await login(jar, stack.base, 'alice');
  const html = await (await jar.fetch(`${stack.base}/chat/General`)).text();
  const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
  assert.ok(refs.includes('/static/room.js') && refs.includes('/static/vendor/socket.io.min.js') && refs.includes('/static/app.css'));
  for (const ref of refs) assert.ok(ref.startsWith('#') || (ref.startsWith('/') && !ref.startsWith('//')), `local reference ${ref}`);
  for (const [asset, type] of [['/static/room.js', /javascript/], ['/static/vendor/socket.io.min.js', /javascript/], ['/static/app.css', /text\/css/]]) {
    const res = await fetch(`${stack.base}${asset}`);
    assert.equal(res.status, 200, asset);
    assert.match(res.headers.get('content-type'), type, asset);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  }
  const script = await (await fetch(`${stack.base}/static/room.js`)).text();
  assert.doesNotMatch(script, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'network text is never HTML');
  assert.match(script, /transports: \['websocket'\]/);
  assert.match((await (await fetch(`${stack.base}/static/vendor/socket.io.min.js`)).text()).slice(0, 100), /Socket\.IO v4\.8\.4/);
});
