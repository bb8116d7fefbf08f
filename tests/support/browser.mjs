// Debian's Chromium driven by playwright-core, with screenshots saved for a reviewer.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { repoRoot } from './service.mjs';

/** Where screenshots go (ignored by git; CI keeps the working tree). */
export const artifactsDir = path.join(repoRoot, 'tests', 'artifacts');

/** Launches headless Chromium from the system package. */
export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}

/** A new browser context (its own cookies) and page, recording dialogs and page errors. */
export async function openPage(browser, { width = 1100, height = 800 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const dialogs = [];
  const errors = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => errors.push(e.message));
  return { context, page, dialogs, errors };
}

/** Saves a full-page screenshot as tests/artifacts/<name>.png and returns its path. */
export async function screenshot(page, name) {
  fs.mkdirSync(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Types `text` into the room page's message box and presses Enter. */
export async function sendFromPage(page, text) {
  await page.locator('#message-input:not([disabled])').waitFor({ timeout: 10_000 });
  await page.fill('#message-input', text);
  await page.press('#message-input', 'Enter');
  // Sent: the box is emptied when the ack says ok.
  await page.waitForFunction(() => document.getElementById('message-input').value === '', null, { timeout: 10_000 });
}

/** Waits until a message with exactly `text` is shown on `page`. */
export async function waitForMessage(page, text, timeout = 15_000) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll('#messages .message .text')].some((e) => e.textContent === t),
    text,
    { timeout },
  );
}

/** The member names shown on the room page. */
export async function memberNames(page) {
  return page.$$eval('#members li', (items) => items.map((i) => i.textContent));
}
