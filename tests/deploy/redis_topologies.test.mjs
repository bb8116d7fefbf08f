// The Redis Cluster deployment (deploy/compose/redis-cluster.yml, deploy/gen-cluster-secrets.sh,
// deploy/redis/cluster-init.sh) and the Kubernetes overlay for a Redis run elsewhere
// (deploy/k8s/external-redis/), checked without a container engine: docker-compose config on
// the two files together, the nodes' own command line with the generated ACL file in six real
// redis-servers, the init script creating the cluster there, and kubernetes-validate.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, until } from '../support/net.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const bin = (name) => path.join(here, '.venv', 'bin', name);
const deploy = (...p) => path.join(repo, 'deploy', ...p);
const read = (file) => fs.readFileSync(file, 'utf8');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-deploy-redis-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs a command to completion; never throws. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, ...opts });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Parses YAML (PyYAML's safe loader) from a file. */
function yamlFile(file) {
  const r = run(bin('python'), [path.join(here, 'yaml_to_json.py'), file]);
  assert.equal(r.code, 0, r.out);
  return JSON.parse(r.out)[file];
}

before(() => {
  const r = run(path.join(here, 'setup.sh'), [], { timeout: 600_000 });
  assert.equal(r.code, 0, r.out);
});

// A project directory like the repository's, whose deploy/secrets/ the scripts fill.
const project = path.join(tmp, 'project');
const secrets = path.join(project, 'deploy', 'secrets');
before(() => {
  fs.mkdirSync(path.join(project, 'deploy'), { recursive: true });
  for (const e of fs.readdirSync(repo)) if (e !== 'deploy') fs.symlinkSync(path.join(repo, e), path.join(project, e));
  for (const e of fs.readdirSync(deploy())) if (e !== 'secrets') fs.symlinkSync(deploy(e), path.join(project, 'deploy', e));
  const r = run(deploy('gen-cluster-secrets.sh'), [], { env: { ...process.env, SECRETS_DIR: secrets } });
  assert.equal(r.code, 0, r.out);
});

describe('deploy/compose/redis-cluster.yml', () => {
  const files = ['-f', path.join(repo, 'docker-compose.yml'), '-f', deploy('compose', 'redis-cluster.yml')];
  const compose = (extra = []) => run(bin('docker-compose'), ['--project-directory', project, ...files, ...extra, 'config'], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME ?? tmp },
  });
  let config;
  before(() => {
    const r = compose();
    assert.equal(r.code, 0, r.out);
    const file = path.join(tmp, 'config.yml');
    fs.writeFileSync(file, r.out);
    config = yamlFile(file)[0];
  });
  const nodes = ['redis', 'redis-node-2', 'redis-node-3', 'redis-node-4', 'redis-node-5', 'redis-node-6'];

  test('docker-compose config accepts it over docker-compose.yml, and rejects a broken copy', () => {
    const broken = path.join(tmp, 'broken.yml');
    fs.writeFileSync(broken, read(deploy('compose', 'redis-cluster.yml')).replace('service_completed_successfully', 'service_done'));
    const r = run(bin('docker-compose'), ['--project-directory', project, '-f', path.join(repo, 'docker-compose.yml'), '-f', broken, 'config', '-q'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME ?? tmp },
    });
    assert.notEqual(r.code, 0);
    assert.match(r.out, /service_done/);
  });

  test('six cluster nodes with persistence, the ACL file, noeviction and a volume each', () => {
    const volumes = new Set();
    for (const name of nodes) {
      const s = config.services[name];
      assert.ok(s, name);
      const cmd = s.command.join(' ');
      assert.match(cmd, /^redis-server \/run\/secrets\/redis_replication_conf /);
      assert.match(cmd, /--cluster-enabled yes/);
      assert.match(cmd, /--appendonly yes/);
      assert.match(cmd, /--aclfile \/run\/secrets\/redis_cluster_acl/);
      assert.match(cmd, /--maxmemory \d+mb --maxmemory-policy noeviction/);
      assert.match(s.healthcheck.test.join(' '), /--user probe --pass probe ping/);
      const data = s.volumes.find((v) => (v.target ?? String(v).split(':')[1]) === '/data');
      volumes.add(data.source ?? String(data).split(':')[0]);
    }
    assert.equal(volumes.size, 6, 'one data volume per node');
  });

  test('the init service creates 3 primaries with a replica each, after all six are healthy', () => {
    const init = config.services['redis-cluster-init'];
    assert.deepEqual(init.command, nodes.map((n) => `${n}:6379`));
    assert.match(init.entrypoint.join(' '), /cluster-init\.sh$/);
    assert.match(read(deploy('redis', 'cluster-init.sh')), /--cluster create \$nodes --cluster-replicas 1 --cluster-yes/);
    for (const n of nodes) assert.equal(init.depends_on[n].condition, 'service_healthy', n);
    assert.equal(init.restart, 'no');
  });

  test('web and gateway use the cluster URL from the env file and start after the init', () => {
    const url = read(path.join(secrets, 'redis-cluster-url'));
    assert.match(url, /^redis-cluster:\/\/chat:[0-9a-f]{64}@redis:6379\?node=redis-node-2:6379&node=redis-node-3:6379&node=redis-node-4:6379&node=redis-node-5:6379&node=redis-node-6:6379$/);
    for (const name of ['web', 'gateway']) {
      const s = config.services[name];
      assert.equal(s.environment.REDIS_URL, url, `${name}: the cluster's URL wins over redis.env`);
      assert.equal(s.depends_on['redis-cluster-init'].condition, 'service_completed_successfully');
    }
    const file = read(deploy('compose', 'redis-cluster.yml'));
    assert.doesNotMatch(file, /[0-9a-f]{64}/, 'no password in the compose file');
    for (const s of ['redis_cluster_acl', 'redis_replication_conf', 'redis_admin_password']) {
      assert.match(config.secrets[s].file, /deploy\/secrets\//);
    }
  });

  test('shellcheck passes the scripts', () => {
    const r = run(bin('shellcheck'), [deploy('gen-cluster-secrets.sh'), deploy('redis', 'cluster-init.sh')]);
    assert.equal(r.code, 0, r.out);
  });

  test("the nodes' command line and ACL file in six real redis-servers; cluster-init.sh makes the cluster; chat works, anonymous does not", async (t) => {
    const procs = [];
    t.after(() => procs.forEach((p) => p.kill('SIGKILL')));
    const ports = [];
    for (const name of nodes) {
      const port = await freePort();
      const dir = fs.mkdtempSync(path.join(tmp, `${name}-`));
      // The compose command as written, with the secrets' paths of this machine and loopback ports.
      const args = config.services[name].command.slice(1).map((a) => a
        .replace('/run/secrets/redis_replication_conf', path.join(secrets, 'redis-replication.conf'))
        .replace('/run/secrets/redis_cluster_acl', path.join(secrets, 'redis-cluster-users.acl')));
      const proc = spawn('redis-server', [...args, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--cluster-port', String(await freePort())], { stdio: 'ignore' });
      procs.push(proc);
      ports.push(port);
    }
    const cli = (port, user, pass, ...args) => run('redis-cli', ['--no-auth-warning', '-p', String(port), ...(user ? ['--user', user, '--pass', pass] : []), ...args]);
    for (const port of ports) await until(`node on ${port}`, () => cli(port, 'probe', 'probe', 'ping').out.includes('PONG'));

    const adminFile = path.join(secrets, 'redis-admin-password');
    const init = () => run('sh', [deploy('redis', 'cluster-init.sh'), ...ports.map((p) => `127.0.0.1:${p}`)], { env: { ...process.env, REDIS_ADMIN_PASSWORD_FILE: adminFile } });
    const first = init();
    assert.equal(first.code, 0, first.out);
    assert.match(first.out, /the cluster is ok/);
    const again = init();
    assert.equal(again.code, 0, again.out);
    assert.match(again.out, /exists already/);

    const chat = read(path.join(secrets, 'redis-password'));
    // Replicas logged in to their primaries with the `replication` user.
    // A replica's first sync waits out the primary's diskless-sync delay; on a busy machine the
    // cluster's own agreement on who replicates whom can take longer still.
    await until('replicas in sync', () => ports.filter((p) => cli(p, 'admin', read(adminFile), 'info', 'replication').out.includes('master_link_status:up')).length === 3, { timeoutMs: 60_000 });
    // The services' user in cluster mode (-c follows redirects): keys in every slot, shard channels.
    for (const room of ['General', 'Sports', 'Music', 'a', 'b', 'c']) {
      assert.match(cli(ports[0], 'chat', chat, '-c', 'set', `chat:room:{${room}}:seq`, '1').out, /OK/);
    }
    assert.match(cli(ports[0], 'chat', chat, 'cluster', 'slots').out, /\d/);
    assert.match(cli(ports[0], 'chat', chat, '-c', 'spublish', 'chat:room:{General}:events', 'x').out, /^\d+/);
    assert.match(cli(ports[0], 'chat', chat, 'cluster', 'meet', '127.0.0.1', '1').out, /NOPERM/);
    assert.match(cli(ports[0], null, null, 'get', 'x').out, /NOAUTH|NOPERM/);
    assert.match(cli(ports[0], 'replication', read(path.join(secrets, 'redis-replication-password')), 'get', 'x').out, /NOPERM/);
  });
});

describe('deploy/k8s/external-redis', () => {
  const dir = deploy('k8s', 'external-redis');
  const validate = (files) => run(bin('kubernetes-validate'), ['--strict', '--quiet', ...files]);

  test('the overlay takes the base and deletes exactly its Redis (StatefulSet, Service, NetworkPolicy)', () => {
    const kz = yamlFile(path.join(dir, 'kustomization.yaml'))[0];
    assert.deepEqual(kz.resources, ['../', 'egress-redis.yaml']);
    const base = yamlFile(deploy('k8s', 'kustomization.yaml'))[0].resources.flatMap((f) => yamlFile(deploy('k8s', f)));
    const deleted = kz.patches.map((p) => yamlFile(path.join(dir, p.path))).flat();
    assert.deepEqual(deleted.map((d) => `${d.kind}/${d.metadata.name}`).sort(), ['NetworkPolicy/redis', 'Service/redis', 'StatefulSet/redis']);
    for (const d of deleted) {
      assert.equal(d.$patch, 'delete');
      assert.ok(base.some((o) => o.kind === d.kind && o.metadata.name === d.metadata.name), `${d.kind}/${d.metadata.name} is in the base`);
    }
    // Nothing else in the base mounts the Redis Secret's ACL file.
    const users = base.filter((o) => JSON.stringify(o).includes('users.acl'));
    assert.deepEqual(users.map((o) => `${o.kind}/${o.metadata.name}`), ['StatefulSet/redis']);
  });

  test('web and gateway may reach a Redis elsewhere on its ports, and nothing more than the base allows besides', () => {
    const file = path.join(dir, 'egress-redis.yaml');
    const r = validate([file]);
    assert.equal(r.code, 0, r.out);
    const [policy] = yamlFile(file);
    assert.equal(policy.kind, 'NetworkPolicy');
    assert.deepEqual(policy.spec.policyTypes, ['Egress']);
    const selected = policy.spec.podSelector.matchExpressions.find((e) => e.key === 'app.kubernetes.io/name' && e.operator === 'In').values;
    assert.deepEqual([...selected].sort(), ['chat-gateway', 'chat-web']);
    for (const rule of policy.spec.egress) {
      assert.deepEqual(rule.ports.map((p) => p.port).sort(), [26379, 6379, 6380]);
      assert.ok(rule.ports.every((p) => p.protocol === 'TCP'));
    }
  });

  test('the example Secret validates and shows the cluster and sentinel URL forms', () => {
    const file = path.join(dir, 'secret.example.yaml');
    const r = validate([file]);
    assert.equal(r.code, 0, r.out);
    const [secret] = yamlFile(file);
    assert.equal(secret.metadata.name, 'chat-redis');
    assert.match(secret.stringData['redis-url'], /^redis-cluster:\/\/chat:[^@]+@[^?]+:\d+\?node=/);
    const text = read(file);
    assert.match(text, /redis-sentinel:\/\/chat:[^@]+@[^?]+:26379\?node=[^&]+:26379&node=[^&]+:26379&sentinelServiceName=\w+/);
    assert.doesNotMatch(text, /[0-9a-f]{64}/, 'no real password');
  });
});
