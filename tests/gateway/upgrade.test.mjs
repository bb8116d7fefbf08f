// A rolling upgrade (docs/UPGRADES.md): a replica of the release before this one (its gateway built
// from this repository's history, tests/support/previous.mjs) and a replica of this tree share one
// Redis. Messages and presence cross between them; whichever one is SIGKILLed, its users'
// `user exited` comes from the other's sweep within 15 s, once: the old replica dies beside a new
// one (the upgrade goes on), then the new one beside an old one (a rollback).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startGateway } from '../support/gateway.mjs';
import { previousGateway } from '../support/previous.mjs';

const previous = previousGateway();

/** `ack` was stored and reached `reader`. */
async function delivered(ack, reader) {
  assert.equal(ack.ok, true, JSON.stringify(ack));
  await reader.wait('message received', (m) => m.id === ack.id);
}

/**
 * An observer on `survivor` and users on `doomed` talk and see each other; `doomed` is SIGKILLed;
 * its user's exit comes within 15 s, once, and a user who moved to `survivor` never exits.
 */
async function survives(cluster, { doomed, survivor }) {
  const observer = await cluster.join(survivor, { sub: 'observer', name: 'Observer' });
  const victim = await cluster.join(doomed, { sub: 'victim', name: 'Victim' });
  const mover = await cluster.join(doomed, { sub: 'mover', name: 'Mover' });
  await observer.wait('user entered', (u) => u.id === 'mover');
  assert.deepEqual((await mover.welcome).members.map((m) => m.id).sort(), ['mover', 'observer', 'victim']);
  await victim.wait('user entered', (u) => u.id === 'mover');

  // Messages cross both ways, in order, once.
  await delivered(await victim.send('from the doomed replica'), observer);
  await delivered(await observer.send('from the surviving replica'), victim);
  const late = await cluster.join(survivor, { sub: 'late', name: 'Late' });
  assert.deepEqual((await late.welcome).members.map((m) => m.id).sort(), ['late', 'mover', 'observer', 'victim']);
  await victim.wait('user entered', (u) => u.id === 'late');

  const killedAt = Date.now();
  await doomed.stop('SIGKILL');
  await mover.closed;
  // The mover's client reconnects to the surviving replica at once.
  await cluster.join(survivor, { sub: 'mover', name: 'Mover' });
  const exited = await observer.wait('user exited', (u) => u.id === 'victim', 15_000);
  const elapsed = Date.now() - killedAt;
  assert.deepEqual(exited, { id: 'victim', name: 'Victim' });
  assert.ok(elapsed <= 15_000, `user exited after ${elapsed} ms`);
  // The sweep that released the victim released the mover's old connection too (the mover was
  // back by then): nobody else exited, and the room goes on.
  await delivered(await late.send('after the kill'), observer);
  assert.deepEqual(observer.all('user exited').map((u) => u.id), ['victim'], 'one exit, of the victim only');
  assert.deepEqual(late.all('user exited').map((u) => u.id), ['victim']);
  const fresh = await cluster.join(survivor, { sub: 'fresh' });
  assert.deepEqual((await fresh.welcome).members.map((m) => m.id).sort(), ['fresh', 'late', 'mover', 'observer']);
}

test('upgrade: an old replica SIGKILLed beside a new one: its users exit through the new one\'s sweep', async (t) => {
  const cluster = await startCluster({ replicas: 0 });
  t.after(() => cluster.stop());
  const doomed = await startGateway(cluster, {}, { bin: previous });
  const survivor = await startGateway(cluster);
  await survives(cluster, { doomed, survivor });
});

test('rollback: a new replica SIGKILLed beside an old one: its users exit through the old one\'s sweep', async (t) => {
  const cluster = await startCluster({ replicas: 0 });
  t.after(() => cluster.stop());
  const survivor = await startGateway(cluster, {}, { bin: previous });
  const doomed = await startGateway(cluster);
  await survives(cluster, { doomed, survivor });
});
