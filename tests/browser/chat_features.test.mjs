// What people expect of a chat, in the browser (single-process mode): typing, edit, delete,
// links, unread counts on the dashboard, the hidden tab's title, mentions, keyboard-only use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileSingleProcess, openPage, screenshot, sendFromPage, waitForMessage } from '../support/browser.mjs';

const { base, browser } = await fileSingleProcess();

async function signIn(name, room) {
  const tab = await openPage(browser);
  await tab.page.goto(`${base}/chat/${room}`);
  await tab.page.waitForURL(/\/login/);
  await tab.page.fill('#name', name);
  await tab.page.click('button[type=submit]');
  await tab.page.waitForURL(`${base}/chat/${room}`);
  await tab.page.waitForSelector('#status[data-state=connected]');
  return tab;
}

const messageLi = (page, text) => page.locator('#messages .message', { has: page.locator('.text', { hasText: text }) });

test('typing shows and clears; edit with Up arrow, Escape and Enter; delete; all with the keyboard', async () => {
  const ann = await signIn('Ann', 'Sports');
  const bob = await signIn('Bob', 'Sports');
  await ann.page.type('#message-input', 'hel');
  await bob.page.waitForFunction(() => document.getElementById('typing').textContent === 'Ann is typing…');
  await screenshot(bob.page, 'features-typing');
  await ann.page.fill('#message-input', 'helo wrld');
  await ann.page.press('#message-input', 'Enter');
  await waitForMessage(bob.page, 'helo wrld');
  assert.equal(await bob.page.textContent('#typing'), '', 'gone at once when her message arrives');

  // Up arrow in the empty box edits the last own message; Escape cancels.
  await ann.page.focus('#message-input');
  await ann.page.keyboard.press('ArrowUp');
  await ann.page.waitForSelector('.edit-input');
  await ann.page.keyboard.press('Escape');
  assert.equal(await ann.page.locator('.edit-input').count(), 0);
  assert.equal(await ann.page.evaluate(() => document.activeElement.id), 'message-input');
  await ann.page.keyboard.press('ArrowUp');
  await ann.page.fill('.edit-input', 'hello world');
  await ann.page.keyboard.press('Enter');
  await waitForMessage(bob.page, 'hello world');
  await bob.page.waitForSelector('#messages .message .edited');
  assert.equal(await messageLi(bob.page, 'hello world').locator('.edited').textContent(), 'edited');
  await screenshot(bob.page, 'features-edited');

  // Keyboard-only delete: Tab to the message's Delete button and press Enter.
  await sendFromPage(ann.page, 'oops, wrong room');
  await waitForMessage(bob.page, 'oops, wrong room');
  // One author within a few minutes: grouped under one heading, after one day separator.
  assert.match(await messageLi(bob.page, 'oops, wrong room').getAttribute('class'), /\bgrouped\b/);
  assert.equal(await bob.page.locator('#messages .day-separator').count(), 1);
  const del = messageLi(ann.page, 'oops, wrong room').locator('button.delete');
  await del.focus();
  await ann.page.keyboard.press('Enter');
  await bob.page.waitForFunction(() => ![...document.querySelectorAll('#messages .text')].some((e) => e.textContent === 'oops, wrong room'));
  await ann.page.waitForFunction(() => ![...document.querySelectorAll('#messages .text')].some((e) => e.textContent === 'oops, wrong room'));
  assert.equal(await bob.page.locator('#messages .message button.delete').count(), 0, 'no Delete on others\' messages');
  assert.deepEqual([...ann.errors, ...bob.errors], []);
});

test('two typists are named, three are "several"; the line clears 5 s after the last signal; new messages are announced', async () => {
  const [gus, hal, ivy, jo] = [await signIn('Gus', 'Music'), await signIn('Hal', 'Music'), await signIn('Ivy', 'Music'), await signIn('Jo', 'Music')];
  const typingIs = (text) => jo.page.waitForFunction((t) => document.getElementById('typing').textContent === t, text);
  await gus.page.type('#message-input', 'a');
  await typingIs('Gus is typing…');
  await hal.page.type('#message-input', 'b');
  await typingIs('Gus and Hal are typing…');
  await ivy.page.type('#message-input', 'c');
  await typingIs('Several people are typing…');
  const lastSignal = Date.now();
  await jo.page.waitForFunction(() => document.getElementById('typing').textContent === '', null, { timeout: 10_000 });
  assert.ok(Date.now() - lastSignal >= 4000, 'shown until about 5 s after the last signal');
  // Screen readers hear new messages and typing: both are polite live regions.
  assert.equal(await jo.page.getAttribute('#messages', 'aria-live'), 'polite');
  assert.equal(await jo.page.getAttribute('#typing', 'aria-live'), 'polite');
  assert.deepEqual([...gus.errors, ...hal.errors, ...ivy.errors, ...jo.errors], []);
});

test('http(s) links become safe links; javascript: and data: stay text; mentions are highlighted', async () => {
  const cy = await signIn('Cy', 'Music');
  const di = await signIn('Di', 'Music');
  const text = 'see https://example.com/a?b=1, javascript:alert(1) and data:text/html,<b>x</b> @Di';
  await sendFromPage(cy.page, text);
  await waitForMessage(di.page, text);
  const links = await di.page.$$eval('#messages .message .text a', (as) => as.map((a) => ({ href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent })));
  assert.deepEqual(links, [{ href: 'https://example.com/a?b=1', rel: 'noopener noreferrer nofollow', target: '_blank', text: 'https://example.com/a?b=1' }]);
  assert.equal(await di.page.locator('#messages b').count(), 0, 'no HTML from a message');
  assert.equal(await messageLi(di.page, 'javascript:alert(1)').getAttribute('class'), 'message mention');
  assert.doesNotMatch(await messageLi(cy.page, 'javascript:alert(1)').getAttribute('class'), /mention/);
  await screenshot(di.page, 'features-links-mention');

  // With permission, a mention in a hidden tab raises a desktop notification.
  await di.page.evaluate(() => {
    window.shownNotifications = [];
    window.Notification = class {
      static permission = 'granted';
      constructor(title, options) { window.shownNotifications.push({ title, body: options.body }); }
    };
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
  });
  await sendFromPage(cy.page, 'no mention here');
  await sendFromPage(cy.page, 'ping @di, are you there?');
  await di.page.waitForFunction(() => window.shownNotifications.length > 0);
  assert.deepEqual(await di.page.evaluate(() => window.shownNotifications), [{ title: 'Cy mentioned you in Music', body: 'ping @di, are you there?' }]);
});

test('the dashboard\'s unread count goes up while away and down after reading; a hidden tab counts in its title', async () => {
  const eve = await signIn('Eve', 'General');
  const fay = await signIn('Fay', 'General');
  await sendFromPage(fay.page, 'first');
  await waitForMessage(eve.page, 'first');
  // Eve saw it (read), then goes to the dashboard.
  await eve.page.goto(`${base}/dashboard`);
  const unread = () => eve.page.getAttribute('.unread-count[data-room=General]', 'data-unread');
  assert.equal(await unread(), '0');
  await sendFromPage(fay.page, 'second');
  await sendFromPage(fay.page, 'third');
  await eve.page.waitForFunction(() => document.querySelector('.unread-count[data-room=General]').dataset.unread === '2', null, { timeout: 15_000 });
  assert.equal(await eve.page.textContent('.unread-count[data-room=General]'), '2 unread');
  await screenshot(eve.page, 'features-dashboard-unread');
  await eve.page.click('a.room-link:text("General")');
  await waitForMessage(eve.page, 'third');
  await eve.page.waitForSelector('.new-divider');
  assert.equal(await eve.page.locator('.new-divider + .message .text').textContent(), 'second', 'where she left off');
  assert.equal(await eve.page.locator('.new-divider + .message').getAttribute('class'), 'message', 'a new group starts after the divider');
  await screenshot(eve.page, 'features-new-messages');
  await eve.page.goto(`${base}/dashboard`);
  assert.equal(await unread(), '0', 'read once seen');

  // A hidden tab counts new messages in its title and clears it when shown again.
  await fay.page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  const eveRoom = await openPage(browser);
  await eveRoom.context.addCookies(await eve.context.cookies());
  await eveRoom.page.goto(`${base}/chat/General`);
  await sendFromPage(eveRoom.page, 'are you there?');
  await sendFromPage(eveRoom.page, 'hello?');
  await fay.page.waitForFunction(() => document.title === '(2) General · Chat');
  await fay.page.evaluate(() => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => false });
    document.dispatchEvent(new Event('visibilitychange'));
  });
  await fay.page.waitForFunction(() => document.title === 'General · Chat');
  assert.deepEqual([...eve.errors, ...fay.errors, ...eveRoom.errors], []);
});
