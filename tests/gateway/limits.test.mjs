// Bounded resources: the WebSocket message size and slow consumers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../support/gateway.mjs';

let cluster;
let gw;

before(async () => {
  cluster = await startCluster({
    replicas: 1,
    env: { RATE_LIMIT_BURST: '100000', RATE_LIMIT_PER_SECOND: '100000', SLOW_CONSUMER_MAX_PACKETS: '64' },
  });
  gw = cluster.gateways[0];
});
after(() => cluster?.stop());

test('a WebSocket message over 64 KiB closes the connection; the room carries on', async () => {
  const big = await cluster.join(gw, { sub: 'big' });
  const other = await cluster.join(gw, { sub: 'other' });
  big.socket.emit('message sent', 'x'.repeat(70 * 1024));
  const reason = await big.closed;
  assert.match(reason, /transport (close|error)/);
  const ack = await other.send('fine');
  assert.equal(ack.ok, true);
  assert.equal(other.all('message received').some((m) => m.text.length > 2000), false);
});

test('a client that stops reading is told slow_consumer and dropped, without slowing the others', async () => {
  const slow = await cluster.join(gw, { sub: 'slow', room: 'Music' });
  const fast = await cluster.join(gw, { sub: 'fast', room: 'Music' });
  const sender = await cluster.join(gw, { sub: 'sender', room: 'Music' });
  // Stop reading from the socket: the kernel buffers fill, then the server's queue.
  const raw = slow.socket.io.engine.transport.ws._socket;
  raw.pause();
  const text = 'y'.repeat(1990);
  const total = 4000;
  let last;
  for (let i = 0; i < total; i++) {
    last = await sender.send(`${i} ${text}`);
    assert.equal(last.ok, true, JSON.stringify(last));
  }
  await fast.wait('message received', (m) => m.id === last.id, 20_000);
  assert.equal(fast.all('message received').length, total, 'the fast reader got everything');
  raw.resume();
  const reason = await slow.closed;
  assert.ok(reason, 'the slow client was disconnected');
  const received = slow.all('message received').length;
  assert.ok(received < total, `the slow client was cut off (${received} of ${total})`);
  const ended = slow.all('session ended');
  if (ended.length) assert.deepEqual(ended, [{ reason: 'slow_consumer' }]);
  assert.equal(fast.socket.connected, true);
});
