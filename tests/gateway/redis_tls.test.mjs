// Redis over TLS with an ACL user (deploy/README.md, "Redis: authentication and TLS"): both
// services take `rediss://user:password@host:port` and check the server's certificate against the
// roots in SSL_CERT_FILE (or the system store). A real redis-server with --tls-port and a CA made
// by the test with openssl; the gateways and chat-web connect to the TLS port only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { startCluster, startGateway } from '../support/gateway.mjs';
import { freePort, until } from '../support/net.mjs';
import { startService } from '../support/service.mjs';
import { startOidcProvider } from '../support/oidc.mjs';
import { generateKeyPair, tempFile } from '../support/keys.mjs';
import { makeTestCertificates } from '../support/tls.mjs';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../support/service.mjs';

// The permissions of the shipped ACL user (deploy/redis/users.acl.example), with this test's password.
const shippedRules = /^user chat on #[0-9a-f]+ (.+)$/m.exec(fs.readFileSync(path.join(repoRoot, 'deploy', 'redis', 'users.acl.example'), 'utf8'))[1].split(' ');

const USER = 'chat';
const PASSWORD = crypto.randomBytes(18).toString('base64url');
let cluster;
let tls;
let tlsPort;

/** `CLIENT LIST` of the test's Redis (over its plain loopback port), one object per connection. */
function clients() {
  const out = execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(cluster.redis.port), 'CLIENT', 'LIST'], { encoding: 'utf8' });
  return out.split('\n').filter(Boolean).map((line) => Object.fromEntries(line.split(' ').map((kv) => kv.split(/=(.*)/s).slice(0, 2))));
}

const url = (password = PASSWORD) => `rediss://${USER}:${password}@127.0.0.1:${tlsPort}`;

before(async () => {
  tls = makeTestCertificates('redis');
  tlsPort = await freePort();
  cluster = await startCluster({
    replicas: 0,
    redisArgs: [
      '--tls-port', tlsPort, '--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile,
      '--tls-ca-cert-file', tls.caFile, '--tls-auth-clients', 'no',
      '--user', USER, 'on', `>${PASSWORD}`, ...shippedRules,
    ],
  });
});
after(() => cluster?.stop());

test('gateways on rediss:// with an ACL user: a message sent on one replica is received on the other', async () => {
  const a = await startGateway(cluster, { REDIS_URL: url(), SSL_CERT_FILE: tls.caFile });
  const b = await startGateway(cluster, { REDIS_URL: url(), SSL_CERT_FILE: tls.caFile });
  for (const g of [a, b]) await until('gateway ready over TLS', async () => (await fetch(`${g.url}/readyz`)).ok);

  const ann = await cluster.join(a, { sub: 'ann' });
  const bob = await cluster.join(b, { sub: 'bob' });
  const ack = await ann.send('over TLS');
  assert.equal(ack.ok, true, JSON.stringify(ack));
  const got = await bob.wait('message received', (m) => m.id === ack.id);
  assert.equal(got.text, 'over TLS');

  // Every connection the gateways hold is the ACL user's, on the TLS port (none on the plain one).
  const ours = clients().filter((c) => c.user === USER);
  assert.ok(ours.length >= 4, `each gateway holds a command and a subscriber connection: ${ours.length}`);
  for (const c of ours) assert.equal(c.laddr, `127.0.0.1:${tlsPort}`);
  assert.ok(!clients().some((c) => c.user === 'default' && c.cmd !== 'client|list'), 'nothing connected as the default user');
});

test('a gateway that does not trust the Redis certificate (no SSL_CERT_FILE: system roots) never becomes ready', async () => {
  const g = await startGateway(cluster, { REDIS_URL: url() });
  await until('a certificate error in the log', () => /certificate|UnknownIssuer/i.test(g.logs()), { timeoutMs: 10_000 });
  assert.equal((await fetch(`${g.url}/readyz`)).status, 503);
  await g.stop('SIGKILL');
});

test('a gateway with a wrong Redis password never becomes ready, and the password is not logged', async () => {
  const wrong = 'not-the-password';
  const g = await startGateway(cluster, { REDIS_URL: url(wrong), SSL_CERT_FILE: tls.caFile });
  await until('an authentication error in the log', () => /WRONGPASS|invalid username-password/i.test(g.logs()), { timeoutMs: 10_000 });
  assert.equal((await fetch(`${g.url}/readyz`)).status, 503);
  assert.ok(!g.logs().includes(wrong), 'the password stays out of the log');
  await g.stop('SIGKILL');
});

test('chat-web on rediss:// with the ACL user is ready', async () => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const idp = await startOidcProvider({ publicUrl: base });
  const before = clients().filter((c) => c.user === USER).length;
  const web = await startService('chat-web', {
    WEB_ADDR: `127.0.0.1:${port}`,
    PUBLIC_URL: base,
    OIDC_ISSUER: idp.issuer,
    OIDC_CLIENT_ID: idp.clientId,
    OIDC_CLIENT_SECRET: idp.clientSecret,
    REDIS_URL: url(),
    SSL_CERT_FILE: tls.caFile,
    JWT_PRIVATE_KEY_FILE: tempFile('web.pem', generateKeyPair().privatePem),
  }, `${base}/healthz`);
  try {
    await until('chat-web ready over TLS', async () => (await fetch(`${base}/readyz`)).ok);
    const ours = clients().filter((c) => c.user === USER);
    assert.ok(ours.length > before, 'chat-web holds connections as the ACL user');
    for (const c of ours) assert.equal(c.laddr, `127.0.0.1:${tlsPort}`);
  } finally {
    await web.stop();
    await idp.stop();
  }
});
