// `read` and `welcome.unread`: one read marker per user per room, shared by all their devices.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FAST_RATES, fileCluster } from '../support/gateway.mjs';

const cluster = await fileCluster({ replicas: 2, env: FAST_RATES });
const [a, b] = cluster.gateways;

const read = (c, id) => c.ask('read', { id });

test('unread counts follow one marker per user, across two devices on two replicas', async () => {
  const room = 'Music';
  const ann = await cluster.join(a, { sub: 'ann', room });
  const phone = await cluster.join(a, { sub: 'bob', room });
  assert.equal((await phone.welcome).unread, 0, 'never read: 0');
  const ids = [];
  for (const t of ['1', '2', '3']) ids.push((await ann.send(t)).id);
  assert.deepEqual(await read(phone, ids[0]), { ok: true });
  const laptop = await cluster.join(b, { sub: 'bob', room });
  assert.equal((await laptop.welcome).unread, 2, 'the phone\'s marker counts on the laptop');
  assert.deepEqual(await read(laptop, ids[2]), { ok: true });
  assert.deepEqual(await read(phone, ids[1]), { ok: true }, 'an older read is accepted…');
  const tablet = await cluster.join(b, { sub: 'bob', room });
  assert.equal((await tablet.welcome).unread, 0, '…and moves nothing back');
  await ann.send('4');
  const again = await cluster.join(a, { sub: 'bob', room });
  assert.equal((await again.welcome).unread, 1);
  const other = await cluster.join(a, { sub: 'bob', room: 'Sports' });
  assert.equal((await other.welcome).unread, 0, 'per room');
});

test('a bad read is invalid', async () => {
  const c = await cluster.join(a, { sub: 'cy', room: 'General' });
  for (const bad of [{ id: 'x' }, {}, 'id', 5]) assert.deepEqual(await c.ask('read', bad), { ok: false, error: 'invalid' });
});
