// Traffic for fault tests: clients that keep talking the way people do (a message refused
// `unavailable` is sent again, as a user presses Send again), and the checks that nothing a
// client was told is stored went missing or was stored twice.
import assert from 'node:assert/strict';
import { until } from './net.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Each of `senders` ({ name, client }) sends numbered texts (`<name> <n>`) one after another
 * until `stop()`, sending a text acked `unavailable` again (after `retryMs`) until it is acked ok.
 * `stop()` lets each sender finish the text it is on (acked ok, or `finishMs` passed), then
 * resolves with every ack: [{ from, text, ack, ms, at }] (`ack` is `{ ok: false, error:
 * 'no_ack' }` when none came within the client's timeout).
 */
export function keepSending(senders, { pauseMs = 25, retryMs = 50, finishMs = 20_000 } = {}) {
  let running = true;
  let finishBy = Infinity;
  const acks = [];
  const talk = async ({ name, client }) => {
    for (let n = 0; running; n++) {
      const text = `${name} ${n}`;
      for (;;) {
        const t0 = Date.now();
        const ack = await client.send(text).catch(() => ({ ok: false, error: 'no_ack' }));
        acks.push({ from: name, text, ack, ms: Date.now() - t0, at: Date.now() });
        if (ack.ok || ack.error !== 'unavailable' || Date.now() > finishBy) break;
        await sleep(retryMs);
      }
      await sleep(pauseMs);
    }
  };
  const all = Promise.all(senders.map(talk));
  return {
    acks,
    /** The acks `ok` so far. */
    ok: () => acks.filter((x) => x.ack.ok),
    async stop() {
      running = false;
      finishBy = Date.now() + finishMs;
      await all;
      return acks;
    },
  };
}

/** Every message a client can page back through (the room keeps its last 1000), oldest first. */
export async function wholeHistory(client) {
  const all = [];
  let before = `${Date.now() + 3_600_000}-0`;
  for (;;) {
    // Right after a fault a read may still be answered `unavailable`: ask again, as a client would.
    const page = await until('a history page', async () => {
      const answer = await client.ask('history', { before, limit: 100 });
      assert.ok(answer.ok || answer.error === 'unavailable', JSON.stringify(answer));
      return answer.ok && answer;
    }, { timeoutMs: 10_000, everyMs: 500 });
    all.unshift(...page.messages);
    if (page.messages.length < 100) return all;
    before = page.messages[0].id;
  }
}

/**
 * The room's history against the acks of `keepSending`: every text acked ok is stored under the id
 * of its ack, every text acked (ok or not) is stored at most once, and every text was finally acked
 * ok (nothing left half-sent). `reader` is a client in the room.
 */
export async function assertStoredOnce(acks, reader) {
  const history = await wholeHistory(reader);
  const sent = new Set(acks.map((x) => x.text));
  const stored = history.filter((m) => sent.has(m.text));
  const counts = new Map();
  for (const m of stored) counts.set(m.text, (counts.get(m.text) ?? 0) + 1);
  const twice = [...counts].filter(([, n]) => n > 1).map(([text, n]) => `${text} ×${n}`);
  assert.deepEqual(twice, [], 'no text stored twice');
  const byId = new Map(history.map((m) => [m.id, m.text]));
  const ok = acks.filter((x) => x.ack.ok);
  assert.deepEqual(ok.filter((x) => byId.get(x.ack.id) !== x.text).map((x) => x.text), [], 'every text acked ok is stored under its id');
  const unfinished = [...sent].filter((text) => !ok.some((x) => x.text === text));
  assert.deepEqual(unfinished, [], 'every text was finally acked ok');
  return history;
}

/** `watcher` (a client in the room) received every message acked ok, and each once. */
export async function assertDeliveredOnce(acks, watcher) {
  const ok = acks.filter((x) => x.ack.ok);
  const ids = new Set(ok.map((x) => x.ack.id));
  await until('every acked message delivered', () => watcher.all('message received').filter((m) => ids.has(m.id)).length >= ids.size, { timeoutMs: 10_000 })
    .catch(() => {});
  const got = watcher.all('message received').map((m) => m.id);
  assert.equal(new Set(got).size, got.length, 'nothing delivered twice');
  assert.deepEqual(ok.filter((x) => !got.includes(x.ack.id)).map((x) => x.text), [], 'every message acked ok was delivered');
}

/**
 * Polls `GET /readyz` of each of `gateways` every `everyMs` until `stop()`, which resolves with
 * the answers that were not 200: [{ url, status, at }].
 */
export function watchReadiness(gateways, { everyMs = 100 } = {}) {
  let running = true;
  const bad = [];
  const poll = async (g) => {
    while (running) {
      const status = await fetch(`${g.url}/readyz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status, () => 'no answer');
      if (status !== 200) bad.push({ url: g.url, status, at: Date.now() });
      await sleep(everyMs);
    }
  };
  const all = Promise.all(gateways.map(poll));
  return {
    async stop() {
      running = false;
      await all;
      return bad;
    },
  };
}
