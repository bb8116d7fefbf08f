// Rooms people make (contract v2.0): chat-web's room API with the real identity provider issuing a
// groups claim, and two real gateways that enforce what the API changed. Each kind of room; a
// private room that never leaks; direct conversations that are made once; groups and
// administrators; each role's rights and refusals; announcement rooms and mutes refused where
// messages are stored; removal and deletion ending connections on both replicas, also after a
// dropped subscription; the audit trail; the configured rooms untouched.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, CookieJar, login, fetchToken, until } from './stack.mjs';
import { startService } from '../support/service.mjs';
import { connectClient } from '../support/gateway.mjs';
import { freePort } from '../support/net.mjs';

const ACCOUNTS = {
  alice: { name: 'Alice Liddell', groups: ['eng'] },
  bob: { name: 'Bob Builder', groups: [] },
  carol: { name: 'Carol Admin', groups: ['admins'] },
  dave: { name: 'Dave Engineer', groups: ['eng'] },
  erin: { name: 'Erin Member', groups: [] },
};

let stack;
const gateways = [];
const clients = [];
const jars = {};

before(async () => {
  const ports = [await freePort(), await freePort()];
  stack = await startStack({
    idp: { accounts: ACCOUNTS, claimsInIdToken: true },
    env: { GATEWAY_PUBLIC_URL: `http://127.0.0.1:${ports[0]}`, ADMIN_GROUPS: 'admins' },
  });
  for (const port of ports) {
    const url = `http://127.0.0.1:${port}`;
    const service = await startService('chat-gateway', {
      GATEWAY_ADDR: `127.0.0.1:${port}`,
      REDIS_URL: stack.redis.url,
      JWKS_URL: `${stack.base}/.well-known/jwks.json`,
    }, `${url}/healthz`);
    gateways.push({ ...service, url });
  }
  // Everyone signs in once: only people who signed in before can be added.
  for (const account of Object.keys(ACCOUNTS)) {
    jars[account] = new CookieJar();
    await login(jars[account], stack.base, account);
  }
});
after(async () => {
  for (const c of clients) c.socket.close();
  for (const g of gateways) await g.stop('SIGKILL');
  await stack?.stop();
});

/** A JSON call to the API as the user's page would make it; resolves with { status, body }. */
async function api(account, method, path, body) {
  const headers = { 'content-type': 'application/json' };
  if (method !== 'GET') headers.origin = stack.base;
  const res = await jars[account].fetch(`${stack.base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function create(account, body) {
  const made = await api(account, 'POST', '/api/rooms', body);
  assert.equal(made.status, 201, JSON.stringify(made.body));
  return made.body;
}

/** Opens a connection to `room` as `account` through gateway `g` (0 or 1). */
async function connect(account, room, g = 0) {
  const res = await fetchToken(jars[account], stack.base, room);
  assert.equal(res.status, 200, `${account}'s token for ${room}`);
  const { token } = await res.json();
  const client = connectClient(gateways[g].url, { token });
  clients.push(client);
  return { client, token };
}

const listed = async (account) => (await api(account, 'GET', '/api/rooms')).body.rooms;

test('each kind of room is made; a private room never shows to a non-member', async () => {
  const pub = await create('alice', { name: 'Town hall', topic: 'Everyone', kind: 'public' });
  assert.deepEqual(
    { name: pub.name, topic: pub.topic, kind: pub.kind, role: pub.role },
    { name: 'Town hall', topic: 'Everyone', kind: 'public', role: 'owner' },
  );
  assert.match(pub.room, /^[A-Za-z0-9_-]{1,64}$/);
  const priv = await create('alice', { name: 'Secret plans', kind: 'private' });

  // Bob sees the public room in the directory, never the private one.
  const directory = (await api('bob', 'GET', '/api/rooms/directory?q=')).body.rooms.map((r) => r.room);
  assert.ok(directory.includes(pub.room));
  assert.ok(!directory.includes(priv.room));
  const searched = (await api('bob', 'GET', '/api/rooms/directory?q=TOWN')).body.rooms.map((r) => r.name);
  assert.deepEqual(searched, ['Town hall']);
  // Not in his list, no page, no token, no details: 404 every time, as for a room that never was.
  assert.ok(!(await listed('bob')).some((r) => r.room === priv.room));
  assert.equal((await jars.bob.fetch(`${stack.base}/chat/${priv.room}`)).status, 404);
  assert.equal((await fetchToken(jars.bob, stack.base, priv.room)).status, 404);
  assert.equal((await fetchToken(jars.bob, stack.base, 'NeverMade')).status, 404);
  assert.equal((await api('bob', 'GET', `/api/rooms/${priv.room}`)).status, 404);
  assert.equal((await api('bob', 'GET', '/api/rooms/NeverMade')).status, 404);
  assert.equal((await api('bob', 'POST', `/api/rooms/${priv.room}/join`)).status, 404);
  // The owner sees both in her list; the page opens.
  const mine = await listed('alice');
  assert.equal(mine.find((r) => r.room === priv.room)?.role, 'owner');
  assert.equal(mine.find((r) => r.room === priv.room)?.kind, 'private');
  assert.equal((await jars.alice.fetch(`${stack.base}/chat/${priv.room}`)).status, 200);

  // Joining a public room puts it in the list, as member.
  assert.equal((await api('bob', 'POST', `/api/rooms/${pub.room}/join`)).status, 200);
  assert.equal((await listed('bob')).find((r) => r.room === pub.room)?.role, 'member');

  // Bad requests are refused with a clear code.
  assert.equal((await api('alice', 'POST', '/api/rooms', { name: '', kind: 'public' })).status, 400);
  assert.equal((await api('alice', 'POST', '/api/rooms', { name: 'x'.repeat(81), kind: 'public' })).status, 400);
  assert.equal((await api('alice', 'POST', '/api/rooms', { name: 'x', kind: 'direct' })).status, 400);
  assert.equal((await api('alice', 'POST', '/api/rooms', { name: 'x', kind: 'secret' })).status, 400);
  // A foreign origin and no session are refused.
  const foreign = await jars.alice.fetch(`${stack.base}/api/rooms`, {
    method: 'POST', headers: { origin: 'http://evil.test', 'content-type': 'application/json' }, body: '{"name":"x","kind":"public"}',
  });
  assert.equal(foreign.status, 403);
  const anonymous = await new CookieJar().fetch(`${stack.base}/api/rooms`);
  assert.equal(anonymous.status, 401);
  assert.deepEqual(await anonymous.json(), { error: 'login_required' });
});

test('a direct conversation is made once for the same people, from either side', async () => {
  const first = await api('alice', 'POST', '/api/rooms/direct', { users: ['bob'] });
  assert.equal(first.status, 201);
  assert.equal(first.body.kind, 'direct');
  assert.equal(first.body.name, 'Bob Builder', 'named after the other person');
  const again = await api('bob', 'POST', '/api/rooms/direct', { users: ['alice', 'bob'] });
  assert.equal(again.status, 200);
  assert.equal(again.body.room, first.body.room);
  assert.equal(again.body.name, 'Alice Liddell');
  const three = await api('alice', 'POST', '/api/rooms/direct', { users: ['bob', 'dave'] });
  assert.equal(three.status, 201);
  assert.notEqual(three.body.room, first.body.room);
  // Both have it in their list; a third person sees nothing of it.
  assert.ok((await listed('bob')).some((r) => r.room === first.body.room && r.kind === 'direct'));
  assert.equal((await fetchToken(jars.dave, stack.base, first.body.room)).status, 404);
  // Its members are fixed, and someone who never signed in is not a person to talk to.
  assert.equal((await api('alice', 'PUT', `/api/rooms/${first.body.room}/members/dave`, {})).status, 403);
  assert.equal((await api('alice', 'POST', `/api/rooms/${first.body.room}/leave`)).status, 403);
  assert.equal((await api('alice', 'POST', '/api/rooms/direct', { users: ['nobody-ever'] })).status, 400);
  assert.equal((await api('alice', 'POST', '/api/rooms/direct', { users: [] })).status, 400);
  // A message goes both ways.
  const a = await connect('alice', first.body.room, 0);
  const b = await connect('bob', first.body.room, 1);
  await a.client.welcome;
  await b.client.welcome;
  assert.equal((await a.client.send('hi bob')).ok, true);
  await b.client.wait('message received', (m) => m.text === 'hi bob');
  // People are found by the start of their name.
  const found = (await api('alice', 'GET', '/api/users?q=bo')).body.users;
  assert.deepEqual(found, [{ id: 'bob', name: 'Bob Builder' }]);
});

test('groups bind rooms, and administrators act as owner everywhere but direct rooms', async () => {
  // Alice is in eng; bob is not; carol is an administrator.
  assert.equal((await api('bob', 'POST', '/api/rooms', { name: 'Eng only', kind: 'public', groups: ['eng'] })).status, 403);
  const eng = await create('alice', { name: 'Eng corner', kind: 'public', groups: ['eng'] });
  assert.equal((await api('dave', 'GET', `/api/rooms/${eng.room}`)).status, 200);
  assert.equal((await api('bob', 'GET', `/api/rooms/${eng.room}`)).status, 404);
  assert.ok(!(await api('bob', 'GET', '/api/rooms/directory')).body.rooms.some((r) => r.room === eng.room));
  assert.equal((await fetchToken(jars.bob, stack.base, eng.room)).status, 404);
  // Nobody adds bob to a room his groups do not allow.
  assert.equal((await api('alice', 'PUT', `/api/rooms/${eng.room}/members/bob`, {})).status, 403);

  // The administrator sees a private room she is not in and may change it, and binds rooms to any group.
  const priv = await create('alice', { name: 'Eng private', kind: 'private' });
  const seen = await api('carol', 'GET', `/api/rooms/${priv.room}`);
  assert.equal(seen.status, 200);
  assert.equal((await api('carol', 'PATCH', `/api/rooms/${priv.room}`, { topic: 'set by an admin' })).status, 200);
  assert.equal((await api('alice', 'GET', `/api/rooms/${priv.room}`)).body.topic, 'set by an admin');
  assert.equal((await api('carol', 'POST', '/api/rooms', { name: 'Ops', kind: 'public', groups: ['ops'] })).status, 201);
  const direct = (await api('alice', 'POST', '/api/rooms/direct', { users: ['dave'] })).body.room;
  assert.equal((await api('carol', 'GET', `/api/rooms/${direct}`)).status, 404, 'not in direct conversations');
});

test('a user who lost a group loses its rooms at their next sign-in: list, token and open connections', async () => {
  const eng = await create('alice', { name: 'Eng lounge', kind: 'public', groups: ['eng'] });
  const secret = await create('alice', { name: 'Eng secret', kind: 'private', groups: ['eng'] });
  assert.equal((await api('alice', 'PUT', `/api/rooms/${secret.room}/members/dave`, {})).status, 204);
  assert.equal((await api('dave', 'POST', `/api/rooms/${eng.room}/join`)).status, 200);
  const lounge = await connect('dave', eng.room, 0);
  const hidden = await connect('dave', secret.room, 1);
  await Promise.all([lounge.client.welcome, hidden.client.welcome]);
  // The provider drops dave from eng; he signs in again (another tab).
  ACCOUNTS.dave.groups = [];
  try {
    const signedInAt = Date.now();
    const again = new CookieJar();
    await login(again, stack.base, 'dave');
    for (const { client } of [lounge, hidden]) {
      assert.deepEqual(await client.wait('session ended', () => true, 2000), { reason: 'removed' });
    }
    assert.ok(Date.now() - signedInAt < 5000);
    jars.dave = again;
    const rooms = (await listed('dave')).map((r) => r.room);
    assert.ok(!rooms.includes(eng.room) && !rooms.includes(secret.room));
    assert.equal((await fetchToken(jars.dave, stack.base, eng.room)).status, 404);
    assert.equal((await fetchToken(jars.dave, stack.base, secret.room)).status, 404);
    const old = connectClient(gateways[0].url, { token: lounge.token });
    clients.push(old);
    assert.equal(await old.refused, 'token_revoked');
  } finally {
    ACCOUNTS.dave.groups = ['eng'];
    jars.dave = new CookieJar();
    await login(jars.dave, stack.base, 'dave');
  }
});

test('each role has its rights and its refusals; announcement rooms and mutes refuse where the message is stored', async () => {
  const room = (await create('alice', { name: 'Design', kind: 'private' })).room;
  for (const who of ['bob', 'dave', 'erin']) {
    assert.equal((await api('alice', 'PUT', `/api/rooms/${room}/members/${who}`, {})).status, 204);
  }
  // A member adds nobody and sets no role; an owner makes a moderator.
  assert.equal((await api('bob', 'PUT', `/api/rooms/${room}/members/carol`, {})).status, 403);
  assert.equal((await api('bob', 'PUT', `/api/rooms/${room}/members/dave`, { role: 'owner' })).status, 403);
  assert.equal((await api('alice', 'PUT', `/api/rooms/${room}/members/dave`, { role: 'moderator' })).status, 204);
  // The moderator mutes and removes members, never an owner, and changes no setting.
  assert.equal((await api('dave', 'DELETE', `/api/rooms/${room}/members/alice`)).status, 403);
  assert.equal((await api('dave', 'PUT', `/api/rooms/${room}/mutes/alice`, { until: Date.now() + 60_000 })).status, 403);
  assert.equal((await api('dave', 'PATCH', `/api/rooms/${room}`, { name: 'Mine now' })).status, 403);
  assert.equal((await api('alice', 'POST', `/api/rooms/${room}/leave`)).status, 409, 'the last owner hands over first');
  const people = (await api('bob', 'GET', `/api/rooms/${room}`)).body.people;
  assert.deepEqual(people.map((p) => [p.id, p.role]).sort(), [['alice', 'owner'], ['bob', 'member'], ['dave', 'moderator'], ['erin', 'member']]);
  assert.equal(people.find((p) => p.id === 'bob').name, 'Bob Builder');

  const bob = await connect('bob', room, 0);
  const dave = await connect('dave', room, 1);
  await bob.client.welcome;
  await dave.client.welcome;
  const said = await bob.client.send('from a member');
  assert.equal(said.ok, true);
  // An announcement room: a member's message is refused, a moderator's goes through.
  assert.equal((await api('alice', 'PATCH', `/api/rooms/${room}`, { posting: 'moderators' })).status, 200);
  assert.deepEqual(await bob.client.send('not now'), { ok: false, error: 'forbidden' });
  assert.equal((await dave.client.send('announcement')).ok, true);
  assert.equal((await api('alice', 'PATCH', `/api/rooms/${room}`, { posting: 'everyone' })).status, 200);
  assert.equal((await bob.client.send('back')).ok, true);
  // A mute refuses his messages until it is lifted.
  assert.equal((await api('dave', 'PUT', `/api/rooms/${room}/mutes/bob`, { until: Date.now() + 60_000 })).status, 204);
  assert.deepEqual(await bob.client.send('muted'), { ok: false, error: 'forbidden' });
  assert.equal((await api('dave', 'DELETE', `/api/rooms/${room}/mutes/bob`)).status, 204);
  assert.equal((await bob.client.send('unmuted')).ok, true);
  // The moderator deletes anyone's message; a member only their own.
  assert.deepEqual(await dave.client.ask('message delete', { id: said.id }), { ok: true });
  await bob.client.wait('message deleted', (d) => d.id === said.id);
  const announcement = dave.client.all('message received').find((m) => m.text === 'announcement');
  assert.deepEqual(await bob.client.ask('message delete', { id: announcement.id }), { ok: false, error: 'forbidden' });

  // The audit trail: owners and moderators read it, newest first; members may not.
  assert.equal((await api('bob', 'GET', `/api/rooms/${room}/audit`)).status, 403);
  const audit = await api('dave', 'GET', `/api/rooms/${room}/audit`);
  assert.equal(audit.status, 200);
  const actions = audit.body.entries.map((e) => e.action);
  assert.deepEqual(actions, [
    'message_deleted', 'unmuted', 'muted', 'room_updated', 'room_updated', 'role_changed',
    'member_added', 'member_added', 'member_added', 'room_created',
  ]);
  const deleted = audit.body.entries[0];
  assert.deepEqual({ actor: deleted.actor, target: deleted.target, detail: deleted.detail }, { actor: 'dave', target: 'bob', detail: { id: said.id } });
  assert.ok(Math.abs(deleted.ts - Date.now()) < 60_000);
  assert.equal(audit.body.entries.at(-1).target, null);
  const older = await api('dave', 'GET', `/api/rooms/${room}/audit?before=${audit.body.entries[5].ts}`);
  assert.ok(older.body.entries.every((e) => e.ts < audit.body.entries[5].ts));
});

test('a removed member\'s connections end on both replicas within 2 s, and their tokens and page are refused', async () => {
  const room = (await create('alice', { name: 'Launch', kind: 'private' })).room;
  assert.equal((await api('alice', 'PUT', `/api/rooms/${room}/members/bob`, {})).status, 204);
  assert.ok((await listed('bob')).some((r) => r.room === room));
  const one = await connect('bob', room, 0);
  const two = await connect('bob', room, 1);
  const stays = await connect('alice', room, 1);
  await Promise.all([one.client.welcome, two.client.welcome, stays.client.welcome]);
  const removedAt = Date.now();
  assert.equal((await api('alice', 'DELETE', `/api/rooms/${room}/members/bob`)).status, 204);
  for (const { client } of [one, two]) {
    assert.deepEqual(await client.wait('session ended', () => true, 2000), { reason: 'removed' });
    await client.closed;
  }
  assert.ok(Date.now() - removedAt < 2000);
  assert.deepEqual(stays.client.all('session ended'), []);
  // The old token is refused by every replica; no new token, no page, not in the list.
  for (const g of [0, 1]) {
    const again = connectClient(gateways[g].url, { token: one.token });
    clients.push(again);
    assert.equal(await again.refused, 'token_revoked');
  }
  assert.equal((await fetchToken(jars.bob, stack.base, room)).status, 404);
  assert.equal((await jars.bob.fetch(`${stack.base}/chat/${room}`)).status, 404);
  assert.ok(!(await listed('bob')).some((r) => r.room === room));
  // Leaving does the same to one's own connections.
  assert.equal((await api('alice', 'PUT', `/api/rooms/${room}/members/erin`, {})).status, 204);
  const erin = await connect('erin', room, 0);
  await erin.client.welcome;
  assert.equal((await api('erin', 'POST', `/api/rooms/${room}/leave`)).status, 204);
  assert.deepEqual(await erin.client.wait('session ended', () => true, 2000), { reason: 'removed' });
});

test('a removal missed while a replica\'s subscription was down still ends the connection once it is back', async () => {
  const room = (await create('alice', { name: 'Gap', kind: 'private' })).room;
  assert.equal((await api('alice', 'PUT', `/api/rooms/${room}/members/dave`, {})).status, 204);
  const dave = await connect('dave', room, 0);
  const alice = await connect('alice', room, 0);
  await Promise.all([dave.client.welcome, alice.client.welcome]);
  // Cut the subscriptions, and record the removal as the store does, without the news.
  const killed = stack.redis.commandAll
    ? (await stack.redis.commandAll('CLIENT KILL TYPE pubsub')).reduce((a, b) => a + Number(b), 0)
    : await stack.redis.command('CLIENT KILL TYPE pubsub');
  assert.ok(killed > 0, `subscribers cut: ${killed}`);
  await stack.redis.command(`HDEL chat:room:{${room}}:members dave`);
  await stack.redis.command(`HSET chat:room:{${room}}:removed dave ${Date.now()}`);
  const cutAt = Date.now();
  assert.deepEqual(await dave.client.wait('session ended', () => true, 15_000), { reason: 'removed' });
  assert.ok(Date.now() - cutAt < 15_000);
  assert.deepEqual(alice.client.all('session ended'), []);
  assert.equal(alice.client.socket.connected, true);
});

test('deleting a room closes every connection to it and forgets it', async () => {
  const room = (await create('alice', { name: 'Short lived', kind: 'public' })).room;
  const a = await connect('alice', room, 0);
  const b = await connect('bob', room, 1);
  await Promise.all([a.client.welcome, b.client.welcome]);
  assert.equal((await b.client.send('before the end')).ok, true);
  assert.equal((await api('bob', 'DELETE', `/api/rooms/${room}`)).status, 403);
  assert.equal((await api('alice', 'DELETE', `/api/rooms/${room}`)).status, 204);
  for (const { client } of [a, b]) {
    assert.deepEqual(await client.wait('session ended', () => true, 2000), { reason: 'room_closed' });
  }
  const again = connectClient(gateways[0].url, { token: a.token });
  clients.push(again);
  assert.equal(await again.refused, 'room_unknown');
  assert.equal((await api('alice', 'GET', `/api/rooms/${room}`)).status, 404);
  assert.ok(!(await api('bob', 'GET', '/api/rooms/directory')).body.rooms.some((r) => r.room === room));
  assert.ok(!(await listed('alice')).some((r) => r.room === room));
  assert.equal(await stack.redis.command(`EXISTS chat:room:{${room}}:history`), 0);
});

test('the configured rooms stay as they were: in everyone\'s list, open to all, never deleted', async () => {
  const rooms = await listed('erin');
  for (const name of ['General', 'Sports', 'Music']) {
    const entry = rooms.find((r) => r.room === name);
    assert.deepEqual({ name: entry.name, kind: entry.kind, role: entry.role }, { name, kind: 'public', role: null });
  }
  const general = await connect('erin', 'General', 0);
  assert.equal((await general.client.welcome).room, 'General');
  assert.equal((await general.client.send('hello General')).ok, true);
  assert.equal((await api('erin', 'POST', '/api/rooms/General/join')).status, 200);
  assert.equal((await listed('erin')).find((r) => r.room === 'General').role, 'member');
  assert.equal((await api('erin', 'POST', '/api/rooms/General/leave')).status, 204);
  assert.equal((await listed('erin')).find((r) => r.room === 'General').role, null);
  assert.equal(general.client.socket.connected, true, 'leaving a configured room only drops the role');
  assert.equal((await api('carol', 'DELETE', '/api/rooms/General')).status, 403);
  await until('presence of erin in General', async () =>
    (await listed('alice')).find((r) => r.room === 'General').members >= 1);
});
