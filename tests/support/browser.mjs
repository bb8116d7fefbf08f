// Debian's Chromium driven by playwright-core, with screenshots saved for a reviewer.
import fs from 'node:fs';
import { after } from 'node:test';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { repoRoot, startService } from './service.mjs';
import { freePort } from './net.mjs';

/** Where screenshots go (ignored by git; CI keeps the working tree). */
export const artifactsDir = path.join(repoRoot, 'tests', 'artifacts');

/**
 * The single-process mode (`chat-dev`, its development sign-in) on a free port and a browser for it.
 * Returns { base, app, browser, stop() }.
 */
export async function startSingleProcess() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const app = await startService('chat-dev', { CHAT_ADDR: `127.0.0.1:${port}` }, `${base}/healthz`);
  const browser = await launchBrowser();
  return {
    base,
    app,
    browser,
    async stop() {
      await browser.close();
      await app.stop();
    },
  };
}

/**
 * The single-process mode and its browser for every test of the calling file: started at once
 * (await it at the top of the file), stopped after the file's last test.
 */
export async function fileSingleProcess() {
  const single = await startSingleProcess();
  after(() => single.stop());
  return single;
}

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

/**
 * Text whose colour contrast with its background is below WCAG 2 AA (4.5:1, or 3:1 for large
 * text), for every visible element on the page that has text of its own. Returns [] when all pass.
 */
export async function contrastProblems(page) {
  return page.evaluate(() => {
    const parse = (c) => {
      const m = /rgba?\(([^)]+)\)/.exec(c);
      if (!m) return null;
      const [r, g, b, a = 1] = m[1].split(',').map((x) => Number(x.trim()));
      return { r, g, b, a };
    };
    const lum = ({ r, g, b }) => {
      const ch = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * ch(r) + 0.7152 * ch(g) + 0.0722 * ch(b);
    };
    const background = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const bg = parse(getComputedStyle(e).backgroundColor);
        if (bg && bg.a > 0) return bg;
      }
      return { r: 255, g: 255, b: 255, a: 1 };
    };
    const problems = [];
    for (const el of document.body.querySelectorAll('*')) {
      const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
      if (!own) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || style.display === 'none' || el.offsetParent === null && style.position !== 'fixed') continue;
      const fg = parse(style.color);
      const bg = background(el);
      const [l1, l2] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      const ratio = (l1 + 0.05) / (l2 + 0.05);
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) problems.push(`${el.tagName.toLowerCase()}.${el.className} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}:1`);
    }
    return problems;
  });
}
