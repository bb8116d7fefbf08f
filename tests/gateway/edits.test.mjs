// `message edit` / `message delete`: author only, stored so that welcome, history, `since`
// recovery and every replica agree; `message edited` / `message deleted` events; a deletion
// wins over a later edit; an edit never arrives before its message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAST_RATES, fileCluster, startGateway } from '../support/gateway.mjs';

const cluster = await fileCluster({ replicas: 2, env: FAST_RATES });
const [a, b] = cluster.gateways;

const edit = (c, id, text) => c.ask('message edit', { id, text });
const del = (c, id) => c.ask('message delete', { id });
/** The index of the first event `name` of client `c` about message `id`. */
const at = (c, name, id) => c.events.findIndex((e) => e.name === name && e.payload.id === id);

test('only the author edits and deletes; every replica, welcome and history agree', async () => {
  const room = 'Sports';
  const ann = await cluster.join(a, { sub: 'ann', name: 'Ann', room });
  const bob = await cluster.join(b, { sub: 'bob', name: 'Bob', room });
  const { id } = await ann.send('helo');
  const { id: other } = await bob.send('bob was here');
  assert.deepEqual(await edit(bob, id, 'mine now'), { ok: false, error: 'forbidden' });
  assert.deepEqual(await del(bob, id), { ok: false, error: 'forbidden' });
  assert.deepEqual(await edit(ann, '1-0', 'x'), { ok: false, error: 'not_found' });
  assert.deepEqual(await del(ann, '1-0'), { ok: false, error: 'not_found' });
  assert.deepEqual(await edit(ann, id, '   '), { ok: false, error: 'empty' });
  assert.deepEqual(await edit(ann, id, 'x'.repeat(2001)), { ok: false, error: 'too_long' });
  for (const bad of [{ id, text: 5 }, { id: 'nope', text: 'x' }, 'text', null]) {
    assert.deepEqual(await ann.ask('message edit', bad), { ok: false, error: 'invalid' });
  }
  for (const bad of [{ id: 'nope' }, {}, 42]) {
    assert.deepEqual(await ann.ask('message delete', bad), { ok: false, error: 'invalid' });
  }
  assert.deepEqual(await edit(ann, id, 'hello'), { ok: true });
  for (const c of [ann, bob]) {
    const e = await c.wait('message edited', (e) => e.id === id);
    assert.deepEqual(Object.keys(e).sort(), ['edited_ts', 'id', 'room', 'text']);
    assert.equal(e.text, 'hello');
    assert.equal(e.room, room);
    assert.ok(Math.abs(e.edited_ts - Date.now()) < 10_000);
    assert.equal(c.all('message edited').length, 1, 'refused changes were not delivered');
  }
  const edited = (await bob.wait('message edited')).edited_ts;
  const late = await cluster.join(b, { sub: 'cy', room });
  const [m] = (await late.welcome).history;
  assert.deepEqual(m, { id, room, user: { id: 'ann', name: 'Ann' }, text: 'hello', ts: Number(id.split('-')[0]), edited_ts: edited });
  assert.deepEqual((await late.welcome).changes, [], 'no since, no changes');

  assert.deepEqual(await del(ann, id), { ok: true });
  for (const c of [ann, bob, late]) assert.deepEqual(await c.wait('message deleted'), { id, room });
  assert.deepEqual(await edit(ann, id, 'back?'), { ok: false, error: 'not_found' });
  assert.deepEqual(await del(ann, id), { ok: false, error: 'not_found' });
  const later = await cluster.join(a, { sub: 'di', room });
  assert.deepEqual((await later.welcome).history.map((m) => m.id), [other]);
  const page = await later.ask('history', { before: '99999999999999-0', limit: 10 });
  assert.deepEqual(page.messages.map((m) => m.id), [other]);
});

test('a reconnect with since gets the edits and deletions it missed in welcome.changes', async () => {
  const room = 'Music';
  const ann = await cluster.join(a, { sub: 'eve', name: 'Eve', room });
  const m1 = (await ann.send('one')).id;
  const m2 = (await ann.send('two')).id;
  const reader = await cluster.join(b, { sub: 'fay', room });
  reader.socket.close();
  assert.deepEqual(await edit(ann, m1, 'one, edited'), { ok: true });
  assert.deepEqual(await del(ann, m2), { ok: true });
  const m3 = (await ann.send('three')).id;
  assert.deepEqual(await edit(ann, m3, 'three, edited'), { ok: true });
  const back = await cluster.join(a, { sub: 'fay', room, since: m2 });
  const w = await back.welcome;
  assert.equal(w.recovered, true);
  assert.deepEqual(w.history.map((m) => [m.id, m.text]), [[m3, 'three, edited']]);
  assert.equal(w.changes.length, 2);
  assert.deepEqual(w.changes[0], { id: m1, text: 'one, edited', edited_ts: w.changes[0].edited_ts });
  assert.ok(w.changes[0].edited_ts >= Number(m1.split('-')[0]));
  assert.deepEqual(w.changes[1], { id: m2, deleted: true });
});

test('an edit or deletion after a replica was SIGKILLed reaches every replica, old and new', async () => {
  const room = 'General';
  const doomed = await startGateway(cluster);
  const ann = await cluster.join(doomed, { sub: 'gus', name: 'Gus', room });
  const watcher = await cluster.join(b, { sub: 'hal', room });
  const { id } = await ann.send('before the crash');
  const { id: gone } = await ann.send('to be deleted');
  await watcher.wait('message received', (m) => m.id === gone);
  await doomed.stop('SIGKILL');
  const again = await cluster.join(a, { sub: 'gus', name: 'Gus', room });
  assert.deepEqual(await edit(again, id, 'after the crash'), { ok: true });
  assert.deepEqual(await del(again, gone), { ok: true });
  await watcher.wait('message edited', (e) => e.id === id && e.text === 'after the crash');
  await watcher.wait('message deleted', (e) => e.id === gone);
  const fresh = await startGateway(cluster);
  const late = await cluster.join(fresh, { sub: 'ivy', room });
  const texts = (await late.welcome).history.filter((m) => m.user.id === 'gus').map((m) => m.text);
  assert.deepEqual(texts, ['after the crash']);
});

test('delete racing edit from two replicas: the deletion wins, and no edit comes before its message', async () => {
  const room = 'Sports';
  const tab1 = await cluster.join(a, { sub: 'jo', name: 'Jo', room });
  const tab2 = await cluster.join(b, { sub: 'jo', name: 'Jo', room });
  const watchers = [await cluster.join(a, { sub: 'kim', room }), await cluster.join(b, { sub: 'lu', room })];
  const rounds = 20;
  const results = await Promise.all(Array.from({ length: rounds }, async (_, i) => {
    // Sent and edited back to back through one connection: the edit is queued behind the send.
    const sent = tab1.send(`m${i}`);
    const { id } = await sent;
    const [deleted, edited] = await Promise.all([del(tab1, id), edit(tab2, id, `m${i} edited`)]);
    return { id, deleted, edited };
  }));
  for (const { id, deleted, edited } of results) {
    assert.deepEqual(deleted, { ok: true });
    assert.ok(edited.ok === true || edited.error === 'not_found', JSON.stringify(edited));
    for (const w of watchers) {
      await w.wait('message deleted', (e) => e.id === id);
      const received = at(w, 'message received', id);
      const editedAt = at(w, 'message edited', id);
      const deletedAt = at(w, 'message deleted', id);
      assert.ok(received >= 0 && received < deletedAt);
      if (editedAt >= 0) assert.ok(received < editedAt && editedAt < deletedAt, 'edit between message and deletion');
      assert.equal(edited.ok ? 1 : 0, w.all('message edited').filter((e) => e.id === id).length);
    }
  }
  const late = await cluster.join(a, { sub: 'mo', room });
  assert.equal((await late.welcome).history.filter((m) => m.user.id === 'jo').length, 0, 'every one deleted');
});

test('edits and deletions made while a replica\'s subscription was down reach its clients when it reads the gap back', async () => {
  const room = 'Music';
  const sender = await cluster.join(a, { sub: 'nan', room });
  const reader = await cluster.join(b, { sub: 'oz', room });
  const { id: old } = await sender.send('before the gap');
  const { id: doomed } = await sender.send('deleted in the gap');
  await reader.wait('message received', (m) => m.id === doomed);
  // Commands keep working while every subscriber connection is cut.
  await cluster.redis.command('CLIENT KILL TYPE pubsub');
  assert.deepEqual(await edit(sender, old, 'edited in the gap'), { ok: true });
  assert.deepEqual(await del(sender, doomed), { ok: true });
  const { id: fresh } = await sender.send('sent in the gap');
  assert.deepEqual(await edit(sender, fresh, 'sent and edited in the gap'), { ok: true });
  await reader.wait('message edited', (e) => e.id === old && e.text === 'edited in the gap');
  await reader.wait('message deleted', (e) => e.id === doomed);
  const m = await reader.wait('message received', (m) => m.id === fresh);
  const final = reader.all('message edited').filter((e) => e.id === fresh).at(-1)?.text ?? m.text;
  assert.equal(final, 'sent and edited in the gap');
});
