// The one-command mode, as a newcomer tries it: start it, sign in through the development form
// in two browser windows, and chat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileSingleProcess, openPage, screenshot, sendFromPage, waitForMessage, memberNames, contrastProblems } from '../support/browser.mjs';

const single = await fileSingleProcess();
const { base, browser } = single;

async function signIn(name) {
  const tab = await openPage(browser);
  await tab.page.goto(`${base}/chat/General`);
  // Not signed in: sent to the development sign-in, which says what it is.
  await tab.page.waitForURL(/\/login/);
  assert.match(await tab.page.textContent('body'), /Development sign-in/);
  await tab.page.fill('#name', name);
  await tab.page.click('button[type=submit]');
  await tab.page.waitForURL(`${base}/chat/General`);
  await tab.page.waitForSelector('#status[data-state=connected]');
  return tab;
}

test('two browser windows sign in with a display name and chat in one process', async () => {
  const ann = await signIn('Ann');
  const bob = await signIn('Bob');
  await ann.page.waitForFunction(() => document.querySelectorAll('#members li').length === 2);
  assert.deepEqual((await memberNames(ann.page)).sort(), ['Ann (you)', 'Bob']);
  await sendFromPage(ann.page, 'hello from Ann');
  await waitForMessage(bob.page, 'hello from Ann');
  await sendFromPage(bob.page, 'hi Ann, Bob here');
  await waitForMessage(ann.page, 'hi Ann, Bob here');
  await screenshot(ann.page, 'single-process-room');
  // A room with a short history offers no "earlier messages".
  assert.equal(await ann.page.isVisible('#older'), false);

  // A refused send shows the ack's error: here, the per-user rate limit (a burst of 20).
  await ann.page.evaluate(() => {
    const input = document.getElementById('message-input');
    const form = document.getElementById('send-form');
    for (let i = 0; i < 30; i += 1) {
      input.value = `burst ${i}`;
      form.requestSubmit();
    }
  });
  await ann.page.waitForFunction(() => /too fast/.test(document.getElementById('send-error').textContent));
  await screenshot(ann.page, 'single-process-rate-limited');
  assert.deepEqual([...ann.errors, ...bob.errors], []);
  assert.match(single.app.logs(), /DEVELOPMENT SIGN-IN IS ON/);
});

test('every page meets WCAG AA colour contrast', async () => {
  const tab = await openPage(browser);
  await tab.page.goto(`${base}/`);
  assert.deepEqual(await contrastProblems(tab.page), [], 'home');
  await tab.page.goto(`${base}/login`);
  assert.deepEqual(await contrastProblems(tab.page), [], 'sign-in');
  await tab.page.fill('#name', 'Cy');
  await tab.page.click('button[type=submit]');
  await tab.page.waitForURL(`${base}/dashboard`);
  assert.deepEqual(await contrastProblems(tab.page), [], 'dashboard');
  await tab.page.goto(`${base}/chat/Music`);
  await tab.page.waitForSelector('#status[data-state=connected]');
  await sendFromPage(tab.page, 'contrast check');
  await waitForMessage(tab.page, 'contrast check');
  assert.deepEqual(await contrastProblems(tab.page), [], 'room');
  await tab.page.goto(`${base}/chat/Nowhere`);
  assert.deepEqual(await contrastProblems(tab.page), [], '404 page');
  await screenshot(tab.page, 'single-process-404');
  await tab.context.close();
});
