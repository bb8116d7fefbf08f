// One message's trace crosses replicas: a real OTLP receiver gets the spans of the sending replica
// and of the replica that delivered the message to a member connected there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startGateway } from '../support/gateway.mjs';
import { startOtlpReceiver } from '../support/otlp.mjs';
import { until } from '../support/net.mjs';

let cluster;
let otlp;

before(async () => {
  otlp = await startOtlpReceiver();
  cluster = await startCluster({ replicas: 0 });
  const env = (name) => ({
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_SERVICE_NAME: 'chat-gateway',
    OTEL_RESOURCE_ATTRIBUTES: `service.instance.id=${name}`,
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_TRACES_SAMPLER: 'always_on',
    LOG_FORMAT: 'json',
  });
  await startGateway(cluster, env('replica-a'));
  await startGateway(cluster, env('replica-b'));
});
after(async () => {
  await cluster?.stop();
  await otlp?.stop();
});

test('a message sent through replica A to a member on replica B is one trace across both', async () => {
  const [a, b] = cluster.gateways;
  const token = cluster.token({ sub: 'sender', room: 'General' });
  const sender = cluster.client(a, { token });
  await sender.welcome;
  const reader = await cluster.join(b, { sub: 'reader', room: 'General' });
  const refused = cluster.client(a, { token: 'not-a-token' });
  assert.equal(await refused.refused, 'token_invalid');

  const ack = await sender.send('traced hello');
  assert.equal(ack.ok, true);
  await reader.wait('message received', (m) => m.id === ack.id);

  const sent = await until('the "message sent" span', () =>
    otlp.spans().find((s) => s.name === 'message sent' && s.attrs['message.id'] === ack.id), { timeoutMs: 10_000 });
  assert.equal(sent.resource['service.instance.id'], 'replica-a');
  assert.equal(sent.attrs.outcome, 'ok');
  // Every replica that delivered it did so inside the same trace.
  const deliveries = await until('delivery spans on both replicas', () => {
    const found = otlp.spans().filter((s) => s.name === 'deliver message' && s.attrs['message.id'] === ack.id);
    const replicas = new Set(found.map((s) => s.resource['service.instance.id']));
    return replicas.has('replica-a') && replicas.has('replica-b') ? found : null;
  }, { timeoutMs: 10_000 });
  for (const d of deliveries) assert.equal(d.traceId, sent.traceId, 'delivery joins the sender\'s trace');
  const onB = deliveries.find((d) => d.resource['service.instance.id'] === 'replica-b');
  assert.equal(Number(onB.attrs.recipients), 1);
  // The Redis script that stored and published it is a child of the send.
  const redis = otlp.spans().filter((s) => s.traceId === sent.traceId && s.name === 'send message');
  assert.ok(redis.some((s) => s.parentSpanId === sent.spanId), 'the Redis call sits under the send');

  // Handshakes are traced, refused ones with their code.
  const handshakes = otlp.spans().filter((s) => s.name === 'handshake');
  assert.ok(handshakes.some((s) => s.attrs.outcome === 'ok' && s.attrs.room === 'General'));
  const refusedSpan = await until('the refused handshake span', () => otlp.spans().find((s) => s.name === 'handshake' && s.attrs.outcome === 'token_invalid'));

  // JSON logs carry the trace id of the span they were written in.
  const lines = a.logs().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  assert.ok(lines.length > 0, 'LOG_FORMAT=json writes JSON lines');
  const refusal = lines.find((l) => l.fields?.message === 'handshake refused');
  assert.ok(refusal, 'the refusal is logged');
  assert.equal(refusal.fields.code, 'token_invalid');
  assert.equal(refusal.span?.trace_id, refusedSpan.traceId, 'the log line names the trace');

  // No span carries a token.
  const everything = JSON.stringify(otlp.spans());
  assert.equal(everything.includes(token), false, 'a token leaked into a span');
  assert.equal(everything.includes(token.split('.')[2]), false, 'a token signature leaked into a span');
});

test('a send whose ack deadline passes while Redis is stalled ends its span as unavailable', async (t) => {
  // Redis stops answering (SIGSTOP) without closing its connection; the ack deadline
  // (ACK_TIMEOUT_MS) passes long before the Redis command's own timeout would. The second
  // send waits behind the first, so its deadline passes before its turn comes.
  const late = await startGateway(cluster, {
    OTEL_EXPORTER_OTLP_ENDPOINT: otlp.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_SERVICE_NAME: 'chat-gateway',
    OTEL_RESOURCE_ATTRIBUTES: 'service.instance.id=replica-late',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_TRACES_SAMPLER: 'always_on',
    ACK_TIMEOUT_MS: '500',
    REDIS_COMMAND_TIMEOUT_MS: '10000',
  });
  const sender = await cluster.join(late, { sub: 'late-sender', room: 'General' });
  cluster.redis.proc.kill('SIGSTOP');
  try {
    const acks = await Promise.all([sender.send('into a stalled Redis'), sender.send('and behind it')]);
    assert.deepEqual(acks, [{ ok: false, error: 'unavailable' }, { ok: false, error: 'unavailable' }]);
  } finally {
    cluster.redis.proc.kill('SIGCONT');
  }
  const spans = await until('both late "message sent" spans', () => {
    const found = otlp.spans().filter((s) => s.name === 'message sent' && s.resource['service.instance.id'] === 'replica-late');
    return found.length >= 2 ? found : null;
  }, { timeoutMs: 10_000 });
  assert.deepEqual(spans.map((s) => s.attrs.outcome), ['unavailable', 'unavailable']);
});
