// What one client can hold of chat-web and make it remember: a connection that never sends a
// whole request head is closed by the header-read timeout, open connections are capped (past the
// cap new ones are closed, those open are still served, a closed one frees its place), and made-up
// methods and paths add no series to /metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { startStack } from './stack.mjs';
import { closedAfter, rawConnection, until } from '../support/net.mjs';

const portOf = (stack) => Number(new URL(stack.base).port);

test('a connection that never sends a whole request head is closed by the header-read timeout', async (t) => {
  const stack = await startStack({ env: { HTTP_HEADER_TIMEOUT_S: '1' } });
  t.after(() => stack.stop());
  const port = portOf(stack);
  const [silent, slowloris] = await Promise.all([
    closedAfter(port, null),
    closedAfter(port, 'GET /login HTTP/1.1\r\nHost: x\r\nCookie: a=b\r\n'),
  ]);
  assert.ok(silent < 4000 && slowloris < 4000, `closed after ${silent} ms and ${slowloris} ms`);
  // A whole request is still served.
  assert.equal((await fetch(`${stack.base}/healthz`)).status, 200);
});

test('past WEB_MAX_CONNECTIONS new connections are closed while open ones are served, and a closed one frees its place', async (t) => {
  const cap = 4;
  // A long header-read timeout, so the connections this test holds idle are not closed by it.
  const stack = await startStack({ env: { WEB_MAX_CONNECTIONS: String(cap), HTTP_HEADER_TIMEOUT_S: '30' } });
  const held = [];
  t.after(async () => {
    await Promise.all(held.map((c) => c.close()));
    await stack.stop();
  });
  const port = portOf(stack);
  // Fill the cap (the start-up health check's idle keep-alive connection may hold a place for
  // a few seconds more: a connection closed unanswered is tried again).
  await until(`${cap} connections served`, async () => {
    while (held.length < cap) {
      const c = await rawConnection(port);
      if ((await c.get('/healthz')) !== 200) {
        await c.close();
        return false;
      }
      held.push(c);
    }
    return true;
  }, { timeoutMs: 15_000, everyMs: 200 });

  const refused = await rawConnection(port);
  assert.equal(await refused.get('/healthz'), null, 'a connection past the cap is closed unanswered');
  await refused.closed;
  for (const [i, c] of held.entries()) assert.equal(await c.get('/readyz'), 200, `open connection ${i} is still served`);

  await held.pop().close();
  const next = await until('a new connection served once one closed', async () => {
    const c = await rawConnection(port);
    if ((await c.get('/healthz')) === 200) return c;
    await c.close();
    return null;
  });
  held.push(next);
  const again = await rawConnection(port);
  assert.equal(await again.get('/healthz'), null, 'the cap holds again');
});

test('made-up methods and paths leave /metrics with bounded labels, and small', async (t) => {
  const stack = await startStack();
  t.after(() => stack.stop());
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.after(() => agent.destroy());
  const send = (method, path) => new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: portOf(stack), method, path, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', reject);
    req.end();
  });
  const random = () => crypto.randomBytes(6).toString('hex');
  const requests = 4000;
  for (let i = 0; i < requests; i += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, j) => {
      const n = i + j;
      // Extension methods on every kind of path, and standard ones on made-up paths.
      const method = n % 4 === 3 ? 'DELETE' : `X${random().toUpperCase()}`;
      const path = [`/${random()}/${n}`, `/chat/${random()}`, '/login', `/static/${random()}.js`][n % 4];
      return send(method, path);
    }));
  }
  const text = await (await fetch(`${stack.base}/metrics`)).text();
  const series = text.split('\n').filter((l) => l.startsWith('chat_web_http_requests_total{'));
  assert.ok(series.length > 0, 'requests are counted');
  const values = (label) => new Set(series.map((l) => new RegExp(`${label}="([^"]*)"`).exec(l)?.[1]));
  const methods = values('method');
  const standard = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE', 'other'];
  for (const m of methods) assert.ok(standard.includes(m), `method label ${m}`);
  assert.ok(methods.has('other'), 'extension methods are counted as other');
  const routes = values('route');
  assert.ok(routes.size <= 20, `${routes.size} route labels: ${[...routes].slice(0, 10)}`);
  for (const r of routes) assert.doesNotMatch(r, /[0-9a-f]{12}/, `route label ${r} is a template, not a path`);
  for (const s of values('status')) assert.match(s, /^[1-5]xx$/, `status label ${s}`);
  assert.ok(series.length <= 100, `${series.length} series`);
  assert.ok(text.length < 32 * 1024, `/metrics is ${text.length} bytes`);
});
