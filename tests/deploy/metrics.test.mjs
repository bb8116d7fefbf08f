// /metrics is not reachable through the shipped nginx rules (deploy/nginx/chat.conf), in any
// spelling nginx or a backend would treat as /metrics. A real gateway (which serves /metrics) is
// behind the balancer as both upstreams; each request is sent raw, exactly as written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startCluster } from '../support/gateway.mjs';
import { startNginx } from '../support/nginx.mjs';

let cluster;
let lb;
before(async () => {
  cluster = await startCluster({ replicas: 1 });
  const upstream = `127.0.0.1:${cluster.gateways[0].port}`;
  lb = await startNginx({ gateways: [upstream], web: upstream });
});
after(async () => {
  await lb?.stop();
  await cluster?.stop();
});

/** GET with the request target sent byte for byte (no URL normalization by the client). */
function rawGet(port, target) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const isMetrics = (body) => /^# (TYPE|HELP) /m.test(body) || /chat_gateway_/.test(body);

test('the gateway itself serves /metrics (so the balancer checks below mean something)', async () => {
  await cluster.join(cluster.gateways[0], { sub: 'ann' });
  const direct = await rawGet(cluster.gateways[0].port, '/metrics');
  assert.equal(direct.status, 200);
  assert.ok(isMetrics(direct.body));
});

for (const target of [
  '/metrics', '/metrics?x', '/metrics?format=prometheus', '/metrics/', '/metrics/x', '//metrics', '///metrics',
  '/%6detrics', '/%6Detrics', '/%2fmetrics', '/./metrics', '/x/../metrics', '/socket.io/../metrics',
  '/socket.io/%2e%2e/metrics', '/metrics/.', '/metrics%2f', '/metrics#x',
]) {
  test(`nginx does not serve metrics for ${target}`, async () => {
    const res = await rawGet(lb.port, target);
    assert.ok(!isMetrics(res.body), `${target} → ${res.status} with metrics`);
    assert.notEqual(res.status, 200, `${target} → 200`);
  });
}
