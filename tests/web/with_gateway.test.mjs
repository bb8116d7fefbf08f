// chat-web and a real chat-gateway together: a token from the web service opens a connection
// (the gateway reads the web service's JWKS), presence shows on the dashboard, and logging out
// ends the connection and makes the session's tokens useless.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, CookieJar, login, csrfOf, fetchToken, until } from './stack.mjs';
import { startService } from '../support/service.mjs';
import { connectClient } from '../support/gateway.mjs';
import { freePort } from '../support/net.mjs';

let stack;
let gateway;
const clients = [];
before(async () => {
  const port = await freePort();
  const gatewayUrl = `http://127.0.0.1:${port}`;
  stack = await startStack({ env: { GATEWAY_PUBLIC_URL: gatewayUrl } });
  const service = await startService('chat-gateway', {
    GATEWAY_ADDR: `127.0.0.1:${port}`,
    REDIS_URL: stack.redis.url,
    JWKS_URL: `${stack.base}/.well-known/jwks.json`,
  }, `${gatewayUrl}/healthz`);
  gateway = { ...service, url: gatewayUrl };
});
after(async () => {
  for (const c of clients) c.socket.close();
  await gateway?.stop('SIGKILL');
  await stack?.stop();
});

test('a room token from chat-web opens a gateway connection; logout ends it and revokes the session', async () => {
  const jar = new CookieJar();
  await login(jar, stack.base, 'alice');
  const res = await fetchToken(jar, stack.base, 'Sports');
  assert.equal(res.status, 200);
  const { token, gateway_url: gatewayUrl } = await res.json();
  assert.equal(gatewayUrl, gateway.url, 'gateway_url is GATEWAY_PUBLIC_URL');
  const client = connectClient(gatewayUrl, { token });
  clients.push(client);
  const welcome = await client.welcome;
  assert.equal(welcome.room, 'Sports');
  assert.deepEqual(welcome.you, { id: 'alice', name: 'User alice' });

  await until('the dashboard to count alice in Sports', async () =>
    /data-room="Sports">1 person here/.test(await (await jar.fetch(`${stack.base}/dashboard`)).text()));

  const csrf = csrfOf(await (await jar.fetch(`${stack.base}/dashboard`)).text());
  const out = await jar.fetch(`${stack.base}/logout`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `csrf=${csrf}` });
  assert.equal(out.status, 303);
  const ended = await client.wait('session ended');
  assert.equal(ended.reason, 'token_revoked');
  await client.closed;

  const again = connectClient(gatewayUrl, { token });
  clients.push(again);
  assert.equal(await again.refused, 'token_revoked', 'the old token is useless after logout');
});

test('the dashboard and GET /api/rooms show the user\'s unread counts, up while away and down once read', async () => {
  const join = async (account, room) => {
    const jar = new CookieJar();
    await login(jar, stack.base, account);
    const { token, gateway_url: url } = await (await fetchToken(jar, stack.base, room)).json();
    const client = connectClient(url, { token });
    clients.push(client);
    await client.welcome;
    return { jar, client };
  };
  const unread = async (jar) => {
    const res = await jar.fetch(`${stack.base}/api/rooms`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    return Object.fromEntries((await res.json()).rooms.map((r) => [r.room, r.unread]));
  };
  const carol = await join('carol', 'Music');
  const dave = await join('dave', 'Music');
  const first = await dave.client.send('hello');
  assert.deepEqual(await carol.client.ask('read', { id: first.id }), { ok: true });
  carol.client.socket.close();
  assert.equal((await unread(carol.jar)).Music, 0);
  const second = await dave.client.send('are you there?');
  await dave.client.send('carol?');
  assert.equal((await unread(carol.jar)).Music, 2);
  assert.match(await (await carol.jar.fetch(`${stack.base}/dashboard`)).text(), /data-room="Music" data-unread="2">2 unread/);
  assert.equal((await unread(dave.jar)).Music, 0, 'per user');
  const back = await join('carol', 'Music');
  assert.equal((await back.client.welcome).unread, 2);
  assert.deepEqual(await back.client.ask('read', { id: second.id }), { ok: true });
  assert.equal((await unread(carol.jar)).Music, 1);
  assert.equal((await new CookieJar().fetch(`${stack.base}/api/rooms`)).status, 401);
});
