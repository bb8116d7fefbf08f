// Rooms people make, in the browser, in the production shape (Redis, chat-web, two gateway
// replicas behind the shipped nginx rules, the OpenID Connect provider): a private room made and
// a second person added, who sees it appear on their dashboard; a direct conversation; a member
// removed, who sees it at once in their open tab and cannot come back by reloading; an
// announcement room refusing a member's message; and the same basics in the single-process mode.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { freePort, until } from '../support/net.mjs';
import { startRedis } from '../support/redis.mjs';
import { startService } from '../support/service.mjs';
import { generateKeyPair, tempFile } from '../support/keys.mjs';
import { startOidcProvider } from '../support/oidc.mjs';
import { startNginx } from '../support/nginx.mjs';
import {
  launchBrowser, openPage, screenshot, sendFromPage, waitForMessage, contrastProblems, startSingleProcess,
} from '../support/browser.mjs';

let redis, idp, web, gateways, lb, browser;
const people = {}; // account -> { context, tabs: [{ page, errors, dialogs }] }

before(async () => {
  redis = await startRedis();
  const keys = generateKeyPair();
  const lbPort = await freePort();
  const publicUrl = `http://127.0.0.1:${lbPort}`;
  idp = await startOidcProvider({
    publicUrl,
    accounts: { alice: { name: 'Alice' }, bob: { name: 'Bob' }, carol: { name: 'Carol' } },
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
    gateways.push(g);
  }
  lb = await startNginx({ gateways: gateways.map((g) => g.addr), web: `127.0.0.1:${webPort}`, port: lbPort });
  browser = await launchBrowser();
  // The room API adds only people who have signed in before: everyone signs in first.
  for (const [account, name] of [['alice', 'Alice'], ['bob', 'Bob'], ['carol', 'Carol']]) {
    people[account] = await logIn(account, name);
  }
});

after(async () => {
  await browser?.close();
  await lb?.stop();
  for (const g of gateways ?? []) await g.stop('SIGKILL');
  await web?.stop();
  await idp?.stop();
  await redis?.kill();
});

/** Signs `account` in through the provider's form, landing on the dashboard. */
async function logIn(account, name) {
  const first = await openPage(browser);
  await first.page.goto(`${lb.base}/dashboard`);
  await first.page.waitForSelector('input[name=login]');
  await first.page.fill('input[name=login]', account);
  await first.page.fill('input[name=password]', 'any');
  await first.page.click('button[type=submit]');
  await first.page.waitForURL(`${lb.base}/dashboard`, { timeout: 15_000 });
  assert.match(await first.page.textContent('header'), new RegExp(name));
  return { context: first.context, tabs: [first] };
}

/** Another tab of `account`'s browser (same cookies), recording its dialogs and page errors. */
async function tab(account, path = '/dashboard') {
  const { context, tabs } = people[account];
  const page = await context.newPage();
  const t = { page, dialogs: [], errors: [] };
  page.on('dialog', (d) => { t.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => t.errors.push(e.message));
  tabs.push(t);
  await page.goto(`${lb.base}${path}`);
  if (path.startsWith('/chat/')) await page.waitForSelector('#status[data-state=connected]');
  return page;
}

function pageErrors() {
  return Object.values(people).flatMap((p) => p.tabs.flatMap((t) => [...t.errors, ...t.dialogs]));
}

const roomLink = (page, name) => page.locator('#room-list a.room-link').filter({ hasText: new RegExp(`^${name}$`) });
const roomItem = (page, name) => page.locator('#room-list .room-item').filter({ has: page.locator('a.room-link', { hasText: new RegExp(`^${name}$`) }) });
const person = (page, name) => page.locator('#people .person').filter({ has: page.locator('.person-name', { hasText: new RegExp(`^${name}( \\(you\\))?$`) }) });
const messageLi = (page, text) => page.locator('#messages .message', { has: page.locator('.text', { hasText: text }) });
const roomIdOf = (page) => decodeURIComponent(new URL(page.url()).pathname.split('/').pop());

/** Makes a room from the dashboard's form; resolves with its id once its page is connected. */
async function createRoom(page, { name, topic = '', kind, owner = 'Alice' }) {
  await page.goto(`${lb.base}/dashboard`);
  await page.fill('#create-name', name);
  await page.fill('#create-topic', topic);
  await page.check(`#create-form input[name=kind][value=${kind}]`);
  await page.click('#create-submit');
  await page.waitForURL(/\/chat\/[A-Za-z0-9_-]+$/);
  await page.waitForSelector('#status[data-state=connected]');
  assert.equal(await page.textContent('#room-name'), name);
  // Its maker owns it: the settings and the member tools are shown.
  await person(page, owner).locator('.person-role', { hasText: 'owner' }).waitFor();
  return roomIdOf(page);
}

/** On a room page, a moderator adds `name` picked from the people found by `prefix`. */
async function addMember(page, prefix, name) {
  await page.fill('#add-member-search', prefix);
  await page.getByRole('button', { name: `Add ${name} to the room`, exact: true }).click();
  await page.waitForFunction((n) => document.getElementById('room-notice').textContent === `${n} was added to the room.`, name);
  await person(page, name).waitFor();
}

/** On a room page, opens the Manage menu of `name` and presses the button `action`. */
async function manage(page, name, action) {
  const row = person(page, name);
  const menu = row.locator('details.manage');
  if (!(await menu.evaluate((d) => d.open))) await row.locator('summary').click();
  await page.getByRole('button', { name: `${action}: ${name}`, exact: true }).click();
}

test('a private room: made, a second person added sees it appear on their dashboard, and nobody else sees it', async () => {
  const alice = await tab('alice');
  const bob = await tab('bob');
  const carol = await tab('carol');
  const room = await createRoom(alice, { name: 'Design', topic: 'Logos and colours', kind: 'private' });
  assert.equal(await alice.textContent('#room-kind'), 'private');
  assert.equal(await alice.textContent('#room-topic'), 'Logos and colours');
  assert.equal(await alice.title(), 'Design · Chat');
  assert.equal(await roomLink(bob, 'Design').count(), 0, 'not on Bob\'s dashboard before he is added');

  await addMember(alice, 'bo', 'Bob');
  assert.equal(await person(alice, 'Bob').locator('.person-role').textContent(), 'member');
  await screenshot(alice, 'rooms-private-owner');

  // Bob's open dashboard shows the room at its next poll, marked private, and says so to screen readers.
  await roomLink(bob, 'Design').waitFor({ timeout: 10_000 });
  const item = roomItem(bob, 'Design');
  assert.equal(await item.locator('.room-kind').textContent(), 'private');
  assert.equal(await item.locator('.room-topic').textContent(), 'Logos and colours');
  assert.match(await bob.textContent('#rooms-status'), /New in your rooms: Design\./);
  await screenshot(bob, 'rooms-dashboard-added');
  await roomLink(bob, 'Design').click();
  await bob.waitForURL(`${lb.base}/chat/${room}`);
  await bob.waitForSelector('#status[data-state=connected]');
  await sendFromPage(bob, 'Hi Alice, thanks for adding me');
  await waitForMessage(alice, 'Hi Alice, thanks for adding me');
  await sendFromPage(alice, 'Welcome, Bob');
  await waitForMessage(bob, 'Welcome, Bob');
  // A member has no tools over others: no Manage menus, no Delete on Alice's message, no settings.
  assert.equal(await bob.locator('#people details.manage').count(), 0);
  assert.equal(await messageLi(bob, 'Welcome, Bob').locator('button.delete').count(), 0);
  assert.equal(await bob.isVisible('#room-settings'), false);
  assert.equal(await bob.isVisible('#add-member'), false);

  // The owner deletes anyone's message; it goes for everyone.
  await messageLi(alice, 'Hi Alice, thanks for adding me').getByRole('button', { name: 'Delete this message by Bob' }).click();
  await bob.waitForFunction(() => ![...document.querySelectorAll('#messages .text')].some((e) => e.textContent === 'Hi Alice, thanks for adding me'));

  // Carol: not on her dashboard, not in the directory, and its page is a 404.
  await carol.reload();
  assert.equal(await roomLink(carol, 'Design').count(), 0);
  await carol.fill('#directory-search', 'Des');
  await carol.waitForFunction(() => /No public room matches/.test(document.getElementById('directory-status').textContent));
  const res = await carol.goto(`${lb.base}/chat/${room}`);
  assert.equal(res.status(), 404);
  assert.deepEqual(pageErrors(), []);
});

test('a direct conversation between two people, started with the keyboard; the same two always get the same room', async () => {
  const alice = await tab('alice');
  const bob = await tab('bob');
  await alice.focus('#direct-search');
  await alice.keyboard.type('Bo');
  await alice.getByRole('button', { name: 'Add Bob', exact: true }).waitFor();
  await alice.keyboard.press('Enter'); // the only match is picked
  await alice.locator('#direct-picked .picked-name', { hasText: 'Bob' }).waitFor();
  assert.equal(await alice.evaluate(() => document.activeElement.id), 'direct-search');
  let focused = '';
  for (let i = 0; i < 6 && focused !== 'direct-start'; i++) {
    await alice.keyboard.press('Tab');
    focused = await alice.evaluate(() => document.activeElement.id);
  }
  assert.equal(focused, 'direct-start');
  await alice.keyboard.press('Enter');
  await alice.waitForURL(/\/chat\/[A-Za-z0-9_-]+$/);
  await alice.waitForSelector('#status[data-state=connected]');
  const room = roomIdOf(alice);
  // A direct conversation has no name of its own: each side sees the other's.
  assert.equal(await alice.textContent('#room-name'), 'Bob');
  assert.equal(await alice.textContent('#room-kind'), 'direct message');
  assert.equal(await alice.isVisible('#leave-room'), true);
  assert.equal(await alice.isVisible('#settings-link'), false);

  await roomLink(bob, 'Alice').waitFor({ timeout: 10_000 });
  const item = roomItem(bob, 'Alice');
  assert.equal(await item.locator('.room-kind').textContent(), 'direct message');
  await sendFromPage(alice, 'Lunch at noon?');
  // A new direct message is unread at once (the read marker of a room made in v2.0 starts where
  // its member joined it). Checked at the end, so the rest runs either way.
  const unreadShown = await bob.waitForFunction(() => document.querySelector('#room-list .room-item[data-kind=direct] .unread-count')?.dataset.unread === '1', null, { timeout: 10_000 })
    .then(() => true, () => false);
  await screenshot(bob, 'rooms-dashboard-direct');
  await roomLink(bob, 'Alice').click();
  await bob.waitForSelector('#status[data-state=connected]');
  assert.equal(await bob.textContent('#room-name'), 'Alice');
  await waitForMessage(bob, 'Lunch at noon?');
  await sendFromPage(bob, 'Yes, see you there');
  await waitForMessage(alice, 'Yes, see you there');
  await screenshot(alice, 'rooms-direct');

  // Bob writing to Alice lands in the same conversation.
  await bob.goto(`${lb.base}/dashboard`);
  await bob.fill('#direct-search', 'Al');
  await bob.getByRole('button', { name: 'Add Alice', exact: true }).click();
  await bob.click('#direct-start');
  await bob.waitForURL(`${lb.base}/chat/${room}`);
  await waitForMessage(bob, 'Yes, see you there');
  assert.ok(unreadShown, 'the first direct message was shown unread on Bob\'s dashboard');
  assert.deepEqual(pageErrors(), []);
});

test('a removed member sees it at once in their open tab, stops reconnecting, and gets a 404 on reload', async () => {
  const alice = await tab('alice');
  const room = await createRoom(alice, { name: 'Ops', kind: 'private' });
  await addMember(alice, 'B', 'Bob');
  const bob = await tab('bob', `/chat/${room}`);
  const bobDashboard = await tab('bob');
  await roomLink(bobDashboard, 'Ops').waitFor();
  await sendFromPage(bob, 'on call tonight');
  await waitForMessage(alice, 'on call tonight');

  await manage(alice, 'Bob', 'Remove from room');
  await alice.waitForFunction(() => document.getElementById('room-notice').textContent === 'Bob was removed from the room.');
  await person(alice, 'Bob').waitFor({ state: 'detached' });
  const removedAt = Date.now();
  await bob.waitForFunction(() => document.getElementById('status').textContent === 'You were removed from Ops.', null, { timeout: 5_000 });
  assert.ok(Date.now() - removedAt < 3_000, 'seen within the contract\'s 2 s (and the page\'s reaction)');
  assert.equal(await bob.getAttribute('#status', 'data-state'), 'ended');
  assert.equal(await bob.isDisabled('#message-input'), true);
  assert.equal(await bob.isVisible('#back-to-rooms'), true);
  assert.equal(await bob.isVisible('#leave-room'), false);
  await screenshot(bob, 'rooms-removed');

  // Nothing more is tried: no token, no socket.io request, no WebSocket for a while
  // (longer than the client's first reconnection delays of 1 s and 2 s).
  const attempts = [];
  bob.on('request', (r) => { if (/\/token$|\/socket\.io\//.test(r.url())) attempts.push(r.url()); });
  bob.on('websocket', (w) => attempts.push(w.url()));
  await bob.waitForTimeout(3_500);
  assert.deepEqual(attempts, []);
  assert.equal(await bob.textContent('#status'), 'You were removed from Ops.');

  // Gone from his dashboard, and the page is a 404 from now on.
  await roomLink(bobDashboard, 'Ops').waitFor({ state: 'detached', timeout: 10_000 });
  assert.match(await bobDashboard.textContent('#rooms-status'), /No longer in your rooms: Ops\./);
  const res = await bob.reload();
  assert.equal(res.status(), 404);
  assert.deepEqual(pageErrors(), []);
});

test('an announcement room refuses a member\'s message and keeps the text; a moderator posts; the owner renames and deletes it', async () => {
  const alice = await tab('alice');
  const room = await createRoom(alice, { name: 'News', topic: 'What is new', kind: 'public' });
  await alice.click('#settings-link');
  await alice.check('#settings-announce');
  await alice.click('#settings-save');
  await alice.waitForFunction(() => document.getElementById('room-notice').textContent === 'Settings saved.');
  await alice.locator('#room-posting').waitFor();

  // Bob finds it in the directory and joins it.
  const bob = await tab('bob');
  await bob.fill('#directory-search', 'new');
  await bob.getByRole('button', { name: 'Join News', exact: true }).click();
  await bob.getByRole('link', { name: 'Open News', exact: true }).waitFor();
  assert.equal(await bob.textContent('#directory-status'), 'You joined News.');
  await roomLink(bob, 'News').waitFor({ timeout: 10_000 });
  await screenshot(bob, 'rooms-directory-joined');
  await bob.getByRole('link', { name: 'Open News', exact: true }).click();
  await bob.waitForURL(`${lb.base}/chat/${room}`);
  await bob.waitForSelector('#status[data-state=connected]');
  await bob.locator('#posting-hint').waitFor();
  assert.match(await bob.getAttribute('#message-input', 'aria-describedby'), /posting-hint/);

  // His message is refused where it is stored, and what he typed stays in the box.
  await bob.fill('#message-input', 'Can I post here?');
  await bob.press('#message-input', 'Enter');
  await bob.waitForFunction(() => document.getElementById('send-error').textContent === 'You can\'t post in this room right now.');
  assert.equal(await bob.inputValue('#message-input'), 'Can I post here?');
  assert.equal(await bob.locator('#messages .message').count(), 0);
  await screenshot(bob, 'rooms-announcement-refused');
  await sendFromPage(alice, 'The office is closed on Friday');
  await waitForMessage(bob, 'The office is closed on Friday');

  // Made a moderator, he may post.
  await manage(alice, 'Bob', 'Make moderator');
  await until('Bob shown as a moderator', async () => (await person(alice, 'Bob').locator('.person-role').textContent()) === 'moderator');
  await bob.press('#message-input', 'Enter');
  await bob.waitForFunction(() => document.getElementById('message-input').value === '');
  await waitForMessage(alice, 'Can I post here?');

  // The owner renames it: the page and the title follow, and so does Bob's dashboard.
  await alice.fill('#settings-name', 'Announcements');
  await alice.click('#settings-save');
  await alice.waitForFunction(() => document.getElementById('room-name').textContent === 'Announcements');
  assert.equal(await alice.title(), 'Announcements · Chat');
  const bobDashboard = await tab('bob');
  await roomLink(bobDashboard, 'Announcements').waitFor();
  assert.deepEqual(await contrastProblems(alice), [], 'the owner\'s room page');
  await screenshot(alice, 'rooms-owner-settings');
  // At phone width nothing is wider than the screen, with the member tools open.
  await alice.setViewportSize({ width: 390, height: 844 });
  assert.ok(await alice.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the owner\'s room page fits a phone');
  await screenshot(alice, 'rooms-owner-phone');
  await alice.setViewportSize({ width: 1100, height: 800 });

  // Deleting asks first; then everyone in it is told.
  await alice.click('#delete-room');
  await alice.locator('#delete-confirm').waitFor();
  assert.equal(await alice.evaluate(() => document.activeElement.id), 'delete-question');
  await alice.click('#delete-no');
  assert.equal(await alice.isVisible('#delete-confirm'), false);
  await alice.click('#delete-room');
  await alice.click('#delete-yes');
  await alice.waitForURL(`${lb.base}/dashboard`);
  await bob.waitForFunction(() => document.getElementById('status').textContent === 'This room was deleted.', null, { timeout: 5_000 });
  await roomLink(bobDashboard, 'Announcements').waitFor({ state: 'detached', timeout: 10_000 });
  assert.deepEqual(pageErrors(), []);
});

test('the dashboard is labelled and meets WCAG AA contrast', async () => {
  const carol = await tab('carol');
  const unlabelled = await carol.evaluate(() => {
    const problems = [];
    for (const i of document.querySelectorAll('input, textarea, select')) {
      if (i.type === 'hidden') continue;
      if (i.labels.length === 0 && !i.getAttribute('aria-label')) problems.push(`input #${i.id}`);
    }
    for (const b of document.querySelectorAll('button, a')) {
      if (!b.textContent.trim() && !b.getAttribute('aria-label')) problems.push(`${b.tagName} ${b.className}`);
    }
    return problems;
  });
  assert.deepEqual(unlabelled, []);
  assert.deepEqual(await contrastProblems(carol), [], 'dashboard');
  await screenshot(carol, 'rooms-dashboard');
  await carol.setViewportSize({ width: 390, height: 844 });
  assert.ok(await carol.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'the dashboard fits a phone');
  await screenshot(carol, 'rooms-dashboard-phone');
});

test('in the single-process mode: a private room, a member added, and a direct conversation', async () => {
  const single = await startSingleProcess();
  try {
    const signIn = async (name) => {
      const t = await openPage(single.browser);
      await t.page.goto(`${single.base}/dashboard`);
      await t.page.waitForURL(/\/login/);
      await t.page.fill('#name', name);
      await t.page.click('button[type=submit]');
      await t.page.waitForURL(`${single.base}/dashboard`);
      return t;
    };
    const dee = await signIn('Dee');
    const eli = await signIn('Eli');
    await dee.page.fill('#create-name', 'Plans');
    await dee.page.check('#create-form input[name=kind][value=private]');
    await dee.page.click('#create-submit');
    await dee.page.waitForURL(/\/chat\/[A-Za-z0-9_-]+$/);
    await dee.page.waitForSelector('#status[data-state=connected]');
    await dee.page.fill('#add-member-search', 'El');
    await dee.page.getByRole('button', { name: 'Add Eli to the room', exact: true }).click();
    await person(dee.page, 'Eli').waitFor();
    await roomLink(eli.page, 'Plans').waitFor({ timeout: 10_000 });

    await eli.page.fill('#direct-search', 'De');
    await eli.page.getByRole('button', { name: 'Add Dee', exact: true }).click();
    await eli.page.click('#direct-start');
    await eli.page.waitForURL(/\/chat\/[A-Za-z0-9_-]+$/);
    await eli.page.waitForSelector('#status[data-state=connected]');
    assert.equal(await eli.page.textContent('#room-name'), 'Dee');
    await sendFromPage(eli.page, 'hello Dee');
    await dee.page.goto(`${single.base}/dashboard`);
    await roomLink(dee.page, 'Eli').click();
    await waitForMessage(dee.page, 'hello Dee');
    await sendFromPage(dee.page, 'hello Eli');
    await waitForMessage(eli.page, 'hello Eli');
    await screenshot(dee.page, 'rooms-single-process-direct');
    assert.deepEqual([...dee.errors, ...eli.errors], []);
  } finally {
    await single.stop();
  }
});
