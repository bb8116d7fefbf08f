// The production shape in a real browser: Redis, one chat-web, two chat-gateway replicas behind
// the shipped nginx configuration, and a real OpenID Connect provider. Two people log in through
// the provider's form, chat, survive the SIGKILL of a gateway replica, and log out.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, until } from '../support/net.mjs';
import { startRedis } from '../support/redis.mjs';
import { startService } from '../support/service.mjs';
import { generateKeyPair, tempFile } from '../support/keys.mjs';
import { startOidcProvider } from '../support/oidc.mjs';
import { startNginx } from '../support/nginx.mjs';
import { launchBrowser, openPage, screenshot, sendFromPage, waitForMessage, memberNames } from '../support/browser.mjs';

let redis, idp, web, gateways, lb, browser;

before(async () => {
  redis = await startRedis();
  const keys = generateKeyPair();
  const lbPort = await freePort();
  const publicUrl = `http://127.0.0.1:${lbPort}`;
  idp = await startOidcProvider({
    publicUrl,
    accounts: { alice: { name: 'Alice' }, bob: { name: 'Bob' } },
  });
  const webPort = await freePort();
  web = await startService('chat-web', {
    WEB_ADDR: `127.0.0.1:${webPort}`,
    PUBLIC_URL: publicUrl,
    OIDC_ISSUER: idp.issuer,
    OIDC_CLIENT_ID: idp.clientId,
    OIDC_CLIENT_SECRET: idp.clientSecret,
    REDIS_URL: redis.url,
    JWT_PRIVATE_KEY_FILE: tempFile('web.pem', keys.privatePem),
  }, `http://127.0.0.1:${webPort}/healthz`);
  gateways = [];
  for (let i = 0; i < 2; i++) {
    const port = await freePort();
    const g = await startService('chat-gateway', {
      GATEWAY_ADDR: `127.0.0.1:${port}`,
      REDIS_URL: redis.url,
      JWKS_URL: `http://127.0.0.1:${webPort}/.well-known/jwks.json`,
      ALLOWED_ORIGINS: publicUrl,
      EXIT_GRACE_S: '2',
    }, `http://127.0.0.1:${port}/healthz`);
    g.addr = `127.0.0.1:${port}`;
    g.node = /node="?([0-9a-f]{32})/.exec(g.logs())?.[1];
    gateways.push(g);
  }
  lb = await startNginx({ gateways: gateways.map((g) => g.addr), web: `127.0.0.1:${webPort}`, port: lbPort });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await lb?.stop();
  for (const g of gateways ?? []) await g.stop('SIGKILL');
  await web?.stop();
  await idp?.stop();
  await redis?.kill();
});

async function logIn(account, name) {
  const tab = await openPage(browser);
  await tab.page.goto(`${lb.base}/chat/General`);
  // The provider's own login form.
  await tab.page.waitForSelector('input[name=login]');
  await tab.page.fill('input[name=login]', account);
  await tab.page.fill('input[name=password]', 'any');
  await tab.page.click('button[type=submit]');
  await tab.page.waitForURL(`${lb.base}/chat/General`, { timeout: 15_000 });
  await tab.page.waitForSelector('#status[data-state=connected]');
  assert.match(await tab.page.textContent('header'), new RegExp(name));
  return tab;
}

/** The gateway replica that holds `user`'s connection, from the presence keys. */
async function gatewayOf(user) {
  for (const g of gateways) {
    const members = await redis.command(`SMEMBERS chat:room:{General}:node:${g.node}`);
    if (members.some((m) => m.includes(`\t${user}`))) return g;
  }
  return null;
}

test('two people log in through the provider, chat, survive a replica\'s death and see each other leave', async () => {
  assert.ok(gateways.every((g) => g.node), 'gateway node ids are logged');
  const alice = await logIn('alice', 'Alice');
  const bob = await logIn('bob', 'Bob');

  // They see each other enter.
  await alice.page.waitForFunction(() => [...document.querySelectorAll('#messages .notice')].some((n) => n.textContent === 'Bob entered the room.'));
  await until('both members listed', async () => (await memberNames(bob.page)).length === 2);
  assert.deepEqual((await memberNames(bob.page)).sort(), ['Alice', 'Bob (you)']);

  // Messages both ways; markup is shown as text and runs nothing.
  const hostile = '<img src=x onerror=alert(1)>';
  await sendFromPage(alice.page, hostile);
  await waitForMessage(bob.page, hostile);
  await sendFromPage(bob.page, 'Hello Alice');
  await waitForMessage(alice.page, 'Hello Alice');
  for (const tab of [alice, bob]) {
    assert.equal(await tab.page.locator('#messages img').count(), 0, 'no element was made from a message');
  }
  await screenshot(alice.page, 'production-room-alice');
  await screenshot(bob.page, 'production-room-bob');

  // SIGKILL the replica Alice is on: her page reconnects through the balancer and misses nothing.
  const doomed = await gatewayOf('alice');
  assert.ok(doomed, 'Alice is registered on a replica');
  await doomed.stop('SIGKILL');
  await alice.page.waitForSelector('#status:not([data-state=connected])', { timeout: 10_000 });
  await sendFromPage(bob.page, 'sent while Alice was away');
  await alice.page.waitForSelector('#status[data-state=connected]', { timeout: 20_000 });
  await waitForMessage(alice.page, 'sent while Alice was away');
  await sendFromPage(alice.page, 'back again');
  await waitForMessage(bob.page, 'back again');
  const aliceMessages = await alice.page.$$eval('#messages .message', (items) => items.map((i) => i.dataset.id));
  assert.equal(new Set(aliceMessages).size, aliceMessages.length, 'no message shown twice');
  await screenshot(alice.page, 'production-after-failover');

  // Alice logs out: her connection ends and Bob sees her leave.
  await alice.page.click('form[action="/logout"] button');
  await bob.page.waitForFunction(() => [...document.querySelectorAll('#messages .notice')].some((n) => n.textContent === 'Alice left the room.'), null, { timeout: 15_000 });
  await until('Alice gone from the member list', async () => (await memberNames(bob.page)).length === 1);
  assert.deepEqual(await memberNames(bob.page), ['Bob (you)']);
  await screenshot(bob.page, 'production-after-logout');

  assert.deepEqual([...alice.dialogs, ...bob.dialogs], [], 'no script ran from a message');
  assert.deepEqual([...alice.errors, ...bob.errors], []);
});

test('the room page works at phone width and with the keyboard only', async () => {
  const tab = await openPage(browser, { width: 390, height: 844 });
  await tab.page.goto(`${lb.base}/chat/Sports`);
  await tab.page.waitForSelector('input[name=login]');
  await tab.page.fill('input[name=login]', 'carol');
  await tab.page.fill('input[name=password]', 'any');
  await tab.page.press('input[name=password]', 'Enter');
  await tab.page.waitForURL(`${lb.base}/chat/Sports`, { timeout: 15_000 });
  await tab.page.waitForSelector('#status[data-state=connected]');
  // Nothing wider than the screen.
  const overflow = await tab.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page overflows by ${overflow}px`);
  // Reach the message box with Tab alone, type, and send with Enter.
  let focused = '';
  for (let i = 0; i < 20 && focused !== 'message-input'; i++) {
    await tab.page.keyboard.press('Tab');
    focused = await tab.page.evaluate(() => document.activeElement?.id ?? '');
  }
  assert.equal(focused, 'message-input');
  await tab.page.keyboard.type('typed with the keyboard');
  await tab.page.keyboard.press('Enter');
  await waitForMessage(tab.page, 'typed with the keyboard');
  await screenshot(tab.page, 'production-phone');
  await tab.context.close();
});
