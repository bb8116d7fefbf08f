// The single-process mode (`cargo run`) guards its Socket.IO endpoint exactly as the gateway does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService } from '../support/service.mjs';
import { connectClient } from '../support/gateway.mjs';
import { freePort } from '../support/net.mjs';

test('chat-dev refuses a connection from an Origin outside ALLOWED_ORIGINS', async (t) => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const app = await startService('chat-dev', { CHAT_ADDR: `127.0.0.1:${port}`, ALLOWED_ORIGINS: base }, `${base}/healthz`);
  t.after(() => app.stop('SIGKILL'));
  const foreign = connectClient(base, {}, { extraHeaders: { origin: 'https://evil.example' } });
  t.after(() => foreign.socket.close());
  // Refused before any Socket.IO packet: the WebSocket upgrade itself fails.
  assert.doesNotMatch(await foreign.refused, /token_/);
  const own = connectClient(base, {}, { extraHeaders: { origin: base } });
  t.after(() => own.socket.close());
  assert.equal(await own.refused, 'token_missing', 'past the Origin check, the token is what admits');
});
