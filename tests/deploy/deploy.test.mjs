// The deployment files (deploy/, docker-compose.yml), checked as far as a
// machine without a container engine allows: nginx -t on the balancer config,
// docker-compose (v1) `config` on the compose file, kubernetes-validate on the
// manifests (each file and a kustomize-style rendering), hadolint and
// shellcheck, the container healthcheck against a live HTTP server, the key
// script, the development OpenID Connect provider through a real login, and
// the invariants that matter (secrets never inline, probes, drain time).
// Each validator is also fed a broken copy once, to show it would catch one.
// Tools come from tests/deploy/setup.sh (run here, fast when done already).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CookieJar } from '../web/jar.mjs';
import { loginAtProvider } from '../support/oidc.mjs';
import { freePort } from '../support/net.mjs';
import { nginxBinary, writeNginxConfig } from '../support/nginx.mjs';
import { repoRoot as repo } from '../support/service.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const bin = (name) => path.join(here, '.venv', 'bin', name);
const deploy = (...p) => path.join(repo, 'deploy', ...p);
const read = (file) => fs.readFileSync(file, 'utf8');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-deploy-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs a command to completion; never throws. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000, ...opts });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Parses YAML files with PyYAML (safe loader): path → list of documents. */
function yamlDocs(...files) {
  const r = run(bin('python'), [path.join(here, 'yaml_to_json.py'), ...files]);
  assert.equal(r.code, 0, r.out);
  return JSON.parse(r.out);
}
const yamlDoc = (file) => yamlDocs(file)[file][0];

/** Writes `text` to a fresh file in the temporary directory. */
function scratch(name, text) {
  const file = path.join(tmp, `${crypto.randomUUID().slice(0, 8)}-${name}`);
  fs.writeFileSync(file, text);
  return file;
}

/** `text` with `from` replaced by `to`, failing if `from` is not there (a broken copy must really differ). */
function breakText(text, from, to) {
  assert.ok(text.includes(from), `broken copy: ${JSON.stringify(from)} not found`);
  return text.replace(from, to);
}

before(() => {
  const r = run(path.join(here, 'setup.sh'), [], { timeout: 600_000 });
  assert.equal(r.code, 0, `tests/deploy/setup.sh failed:\n${r.out}`);
});

// ---------------------------------------------------------------- nginx

describe('load balancer (nginx)', () => {
  const nginx = () => {
    const b = nginxBinary();
    assert.ok(b, 'nginx is installed (tests/deploy/setup.sh)');
    return b;
  };
  const nginxTest = (main) => run(nginx(), ['-t', '-p', path.dirname(main), '-c', main, '-e', path.join(path.dirname(main), 'error.log')]);

  test('chat.conf passes nginx -t inside a generated main config with loopback upstreams', () => {
    const dir = path.join(tmp, 'nginx-ok');
    const main = writeNginxConfig({ dir, listen: '127.0.0.1:18080', gateways: ['127.0.0.1:18081', '127.0.0.1:18082'], webs: ['127.0.0.1:18090'] });
    const r = nginxTest(main);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /syntax is ok/);
  });

  test('nginx -t rejects a broken copy of chat.conf', () => {
    const broken = scratch('chat.conf', breakText(read(deploy('nginx', 'chat.conf')), 'proxy_buffering off;', 'proxy_buffering off'));
    const main = writeNginxConfig({ dir: path.join(tmp, 'nginx-broken'), listen: '127.0.0.1:18080', gateways: ['127.0.0.1:18081'], webs: ['127.0.0.1:18090'], chatConf: broken });
    const r = nginxTest(main);
    assert.notEqual(r.code, 0, 'a missing semicolon must fail');
  });

  test('chat.conf needs its upstreams: without chat_gateway nginx -t fails', () => {
    const dir = path.join(tmp, 'nginx-no-upstream');
    const main = writeNginxConfig({ dir, listen: '127.0.0.1:18080', gateways: ['127.0.0.1:18081'], webs: ['127.0.0.1:18090'] });
    fs.writeFileSync(path.join(dir, 'upstreams.conf'), 'upstream chat_web { server 127.0.0.1:18090; }\n');
    const r = nginxTest(main);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /chat_gateway/);
  });

  test("compose's nginx.conf and upstreams.conf pass nginx -t (paths and service names mapped to this machine)", () => {
    const dir = path.join(tmp, 'nginx-compose');
    fs.mkdirSync(dir, { recursive: true });
    const upstreams = read(deploy('nginx', 'upstreams.conf'))
      .replace(/server gateway:8081/, 'server 127.0.0.1:18081')
      .replace(/server web:8080/, 'server 127.0.0.1:18090');
    assert.doesNotMatch(upstreams, /server (gateway|web):/, 'every upstream host was mapped');
    fs.writeFileSync(path.join(dir, 'upstreams.conf'), upstreams);
    const main = read(deploy('nginx', 'nginx.conf'))
      .replaceAll('/etc/nginx/chat/upstreams.conf', path.join(dir, 'upstreams.conf'))
      .replaceAll('/etc/nginx/chat/', `${deploy('nginx')}/`)
      .replace('pid /tmp/nginx.pid;', `pid ${dir}/nginx.pid;`)
      .replace('listen 80;', 'listen 127.0.0.1:18080;')
      // The container's stdout/stderr may be sockets here, which nginx cannot open.
      .replace('error_log /dev/stderr', `error_log ${dir}/error.log`)
      .replace('access_log /dev/stdout', `access_log ${dir}/access.log`)
      .replace('http {', `http {\n    client_body_temp_path ${dir}/cb; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;`);
    const file = path.join(dir, 'nginx.conf');
    fs.writeFileSync(file, main);
    const r = nginxTest(file);
    assert.equal(r.code, 0, r.out);
  });

  test('routing rules: /socket.io/ to the gateways as WebSocket, the rest to web, no listen of its own', () => {
    const conf = read(deploy('nginx', 'chat.conf')).replace(/#.*$/gm, '');
    assert.doesNotMatch(conf, /\blisten\b/, 'the including file chooses the port');
    assert.doesNotMatch(conf, /\bserver\s*\{/, 'server-level directives only');
    const block = (loc) => {
      const m = new RegExp(`location\\s+${loc.replace(/[/.*]/g, '\\$&')}\\s*\\{([^}]*)\\}`).exec(conf);
      assert.ok(m, `location ${loc}`);
      return m[1];
    };
    const sio = block('/socket.io/');
    assert.match(sio, /proxy_pass\s+http:\/\/chat_gateway;/, 'path kept: no URI after the upstream');
    assert.match(sio, /proxy_http_version\s+1\.1;/);
    assert.match(sio, /proxy_set_header\s+Upgrade\s+\$http_upgrade;/);
    assert.match(sio, /proxy_set_header\s+Connection\s+\$connection_upgrade;/);
    assert.match(sio, /proxy_buffering\s+off;/);
    const readTimeout = /proxy_read_timeout\s+(\d+)([smh]?);/.exec(sio);
    assert.ok(readTimeout, 'proxy_read_timeout set');
    const seconds = Number(readTimeout[1]) * { '': 1, s: 1, m: 60, h: 3600 }[readTimeout[2]];
    assert.ok(seconds >= 3600, `idle sockets live an hour (got ${seconds} s)`);
    const web = block('/');
    assert.match(web, /proxy_pass\s+http:\/\/chat_web;/);
    for (const b of [sio, web]) {
      assert.match(b, /proxy_set_header\s+X-Forwarded-For\s+\$proxy_add_x_forwarded_for;/);
      assert.match(b, /proxy_set_header\s+X-Forwarded-Proto\s+\$scheme;/);
      assert.match(b, /proxy_set_header\s+X-Forwarded-Host\s+\$http_host;/);
    }
    assert.match(block('= /metrics'), /return\s+404;/, 'metrics are not public');
    const map = read(deploy('nginx', 'websocket-map.conf'));
    assert.match(map, /map\s+\$http_upgrade\s+\$connection_upgrade\s*\{[^}]*default\s+upgrade;[^}]*''\s+'';/);
    const ups = read(deploy('nginx', 'upstreams.conf'));
    assert.match(ups, /upstream chat_gateway\s*\{[^}]*least_conn;[^}]*server gateway:8081/);
    assert.doesNotMatch(ups, /\b(ip_hash|hash|sticky)\b/, 'no sticky sessions');
    assert.match(ups, /upstream chat_web\s*\{[^}]*server web:8080/);
  });
});

// ---------------------------------------------------------------- compose

describe('docker-compose.yml', () => {
  const composeFile = path.join(repo, 'docker-compose.yml');
  const compose = () => yamlDoc(composeFile);
  // A project directory like the repository's, whose deploy/secrets/ is made by gen-keys.sh there
  // (the compose file's env file and secrets must exist for `config`; the repository's stay untouched).
  const project = path.join(tmp, 'compose-project');
  before(() => {
    fs.mkdirSync(path.join(project, 'deploy'), { recursive: true });
    for (const e of fs.readdirSync(repo)) if (e !== 'deploy') fs.symlinkSync(path.join(repo, e), path.join(project, e));
    for (const e of fs.readdirSync(deploy())) if (e !== 'secrets') fs.symlinkSync(deploy(e), path.join(project, 'deploy', e));
    const r = run(deploy('gen-keys.sh'), [], { env: { ...process.env, SECRETS_DIR: path.join(project, 'deploy', 'secrets') } });
    assert.equal(r.code, 0, r.out);
  });
  const dockerCompose = (file) =>
    run(bin('docker-compose'), ['--project-directory', project, '-f', file, 'config', '-q'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME ?? tmp },
    });

  test('docker-compose config accepts it', () => {
    const r = dockerCompose(composeFile);
    assert.equal(r.code, 0, r.out);
  });

  test('docker-compose config rejects a broken copy', () => {
    const broken = scratch('compose.yml', breakText(read(composeFile), 'condition: service_healthy', 'condition: service_happy'));
    const r = dockerCompose(broken);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /service_happy/);
    const broken2 = scratch('compose.yml', breakText(read(composeFile), '      replicas: 3', '      replicas: three'));
    assert.notEqual(dockerCompose(broken2).code, 0);
  });

  test('the services, the gateway replicas, and one published entry point for web and /socket.io/', () => {
    const { services } = compose();
    for (const s of ['redis', 'idp', 'web', 'gateway', 'lb', 'otel-collector', 'jaeger']) assert.ok(services[s], s);
    assert.equal(services.gateway.deploy.replicas, 3);
    assert.equal(services.gateway.ports, undefined, 'replicas publish no host port');
    assert.equal(services.web.ports, undefined, 'web is reached through the balancer');
    assert.ok(services.lb.ports.some((p) => /(^|:)8080:80$/.test(String(p))), 'lb on 8080');
    assert.match(services.lb.image, /^nginx:1\.27/);
    assert.ok(services.lb.volumes.includes('./deploy/nginx:/etc/nginx/chat:ro'));
    assert.ok(services.lb.volumes.includes('./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro'));
    assert.equal(services.web.build.dockerfile, 'deploy/web.Dockerfile');
    assert.equal(services.gateway.build.dockerfile, 'deploy/gateway.Dockerfile');
    const web = services.web.environment;
    assert.equal(web.PUBLIC_URL, 'http://localhost:8080');
    assert.equal(web.GATEWAY_PUBLIC_URL, web.PUBLIC_URL, 'browsers reach /socket.io/ through the same balancer');
    assert.equal(services.gateway.environment.ALLOWED_ORIGINS, web.PUBLIC_URL);
    for (const s of ['web', 'gateway']) {
      assert.equal(services[s].environment.REDIS_URL, undefined, 'REDIS_URL (with the password) comes from the env file');
      assert.deepEqual(services[s].env_file, ['./deploy/secrets/redis.env']);
      // The services export OTLP over HTTP (the collector's 4318 receiver).
      assert.equal(services[s].environment.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://otel-collector:4318');
      assert.equal(services[s].environment.OTEL_EXPORTER_OTLP_PROTOCOL, 'http/protobuf');
      assert.ok(services[s].environment.OTEL_SERVICE_NAME);
    }
  });

  test('Redis requires a password (ACL file from a secret), has a maxmemory and never evicts; web and gateway log in', () => {
    const doc = compose();
    const args = doc.services.redis.command;
    const arg = (name) => args[args.indexOf(name) + 1];
    assert.equal(arg('--maxmemory-policy'), 'noeviction');
    assert.match(arg('--maxmemory'), /^\d+(mb|gb)$/);
    const acl = /^\/run\/secrets\/(.+)$/.exec(arg('--aclfile'));
    assert.ok(acl && doc.services.redis.secrets.includes(acl[1]), 'the ACL file is a compose secret');
    assert.equal(doc.secrets[acl[1]].file, './deploy/secrets/redis-users.acl');
    assert.equal(run('git', ['-C', repo, 'check-ignore', '-q', doc.secrets[acl[1]].file]).code, 0, 'git-ignored');
    assert.equal(run('git', ['-C', repo, 'check-ignore', '-q', 'deploy/secrets/redis.env']).code, 0, 'git-ignored');
    assert.match(doc.services.redis.healthcheck.test.join(' '), /--user probe .*ping/);
    // gen-keys.sh's env file names the ACL user and the password of the ACL file it wrote.
    const secrets = path.join(project, 'deploy', 'secrets');
    const password = read(path.join(secrets, 'redis-password'));
    assert.match(password, /^[0-9a-f]{64}$/);
    assert.equal(read(path.join(secrets, 'redis.env')), `REDIS_URL=redis://chat:${password}@redis:6379\n`);
    const hash = crypto.createHash('sha256').update(password).digest('hex');
    assert.match(read(path.join(secrets, 'redis-users.acl')), new RegExp(`^user chat on #${hash} `, 'm'));
    assert.doesNotMatch(read(path.join(secrets, 'redis-users.acl')), new RegExp(password), 'the ACL file holds only the hash');
  });

  test('Redis keeps history: append-only file on a named volume', () => {
    const { services, volumes } = compose();
    const cmd = services.redis.command.join(' ');
    assert.match(cmd, /--appendonly yes/);
    const mount = services.redis.volumes.find((v) => v.endsWith(':/data'));
    assert.ok(mount, 'a volume at /data');
    assert.ok(mount.split(':')[0] in volumes, 'a named volume');
  });

  test('the private key comes from a compose secret, never inline', () => {
    const doc = compose();
    const text = read(composeFile);
    assert.doesNotMatch(text, /BEGIN [A-Z ]*PRIVATE KEY/);
    const file = doc.services.web.environment.JWT_PRIVATE_KEY_FILE;
    const m = /^\/run\/secrets\/(.+)$/.exec(file);
    assert.ok(m, `JWT_PRIVATE_KEY_FILE points into /run/secrets (got ${file})`);
    assert.ok(doc.services.web.secrets.includes(m[1]));
    const secret = doc.secrets[m[1]];
    assert.ok(secret?.file?.startsWith('./deploy/secrets/'), 'a file made by deploy/gen-keys.sh');
    const ignored = run('git', ['-C', repo, 'check-ignore', '-q', secret.file]);
    assert.equal(ignored.code, 0, `${secret.file} is git-ignored`);
    // Every other secret-like value is a ${VAR:-dev default} for the development provider only.
    for (const [name, svc] of Object.entries(doc.services)) {
      for (const [k, v] of Object.entries(svc.environment ?? {})) {
        if (/SECRET|PASSWORD|PRIVATE_KEY(?!_FILE)/.test(k)) {
          assert.match(String(v), /^\$\{[A-Z_]+:-dev-only-[a-z-]+\}$/, `${name}.${k} is an overridable dev default`);
        }
      }
    }
  });

  test('gateways verify room tokens with the mounted public half of the key pair, never a JWKS over http', () => {
    // Every shipped compose file: the main one and the alternatives in deploy/compose/.
    const files = [composeFile, ...fs.readdirSync(deploy('compose')).filter((f) => /\.ya?ml$/.test(f)).map((f) => deploy('compose', f))];
    for (const file of files) {
      for (const [name, svc] of Object.entries(yamlDoc(file).services ?? {})) {
        const jwks = svc.environment?.JWKS_URL;
        assert.ok(jwks === undefined || !/^http:/i.test(jwks), `${path.basename(file)}: ${name} fetches no JWKS over http (${jwks})`);
      }
    }
    const doc = compose();
    const gateway = doc.services.gateway;
    assert.equal(gateway.environment.JWKS_URL, undefined, 'the gateways do not fetch keys at all');
    const file = gateway.environment.JWT_PUBLIC_KEY_FILE;
    const m = /^\/run\/secrets\/(.+)$/.exec(file ?? '');
    assert.ok(m, `JWT_PUBLIC_KEY_FILE is a compose secret (got ${file})`);
    assert.ok(gateway.secrets.includes(m[1]), 'mounted into the gateways');
    assert.equal(doc.secrets[m[1]].file, './deploy/secrets/jwt-public.pem', 'the public half gen-keys.sh writes');
    const privateSecret = /^\/run\/secrets\/(.+)$/.exec(doc.services.web.environment.JWT_PRIVATE_KEY_FILE)[1];
    assert.equal(path.dirname(doc.secrets[privateSecret].file), path.dirname(doc.secrets[m[1]].file), 'the same key pair');
    assert.ok(!gateway.secrets.includes(privateSecret), 'the gateways never get the private key');
    // The files gen-keys.sh made for this project are one pair.
    const secrets = path.join(project, 'deploy', 'secrets');
    const priv = crypto.createPrivateKey(read(path.join(secrets, 'jwt-private.pem')));
    const pub = crypto.createPublicKey(read(path.join(secrets, 'jwt-public.pem')));
    assert.ok(crypto.verify(null, Buffer.from('t'), pub, crypto.sign(null, Buffer.from('t'), priv)));
  });

  test('healthchecks gate start-up order; the gateway gets more than its drain to stop', () => {
    const { services } = compose();
    for (const [name, svc] of Object.entries(services)) {
      for (const [dep, cond] of Object.entries(svc.depends_on ?? {})) {
        assert.ok(services[dep], `${name} depends on a defined ${dep}`);
        if (cond.condition === 'service_healthy') assert.ok(services[dep].healthcheck, `${dep} has a healthcheck (${name} waits for it)`);
      }
    }
    assert.equal(services.web.depends_on.redis.condition, 'service_healthy');
    assert.equal(services.gateway.depends_on.web, undefined, 'gateways need nothing from web (their key is a file)');
    assert.deepEqual(Object.keys(services.lb.depends_on).sort(), ['gateway', 'web']);
    assert.deepEqual(services.web.healthcheck.test, ['CMD', '/usr/local/bin/healthcheck', 'WEB_ADDR', '8080', '/readyz']);
    assert.deepEqual(services.gateway.healthcheck.test, ['CMD', '/usr/local/bin/healthcheck', 'GATEWAY_ADDR', '8081', '/readyz']);
    const drain = Number(services.gateway.environment.DRAIN_TIMEOUT_S ?? 25);
    const grace = /^(\d+)s$/.exec(services.gateway.stop_grace_period);
    assert.ok(grace && Number(grace[1]) > drain, `stop_grace_period > ${drain}s`);
  });

  test('the OpenID Connect issuer is one string that browsers and web both reach', () => {
    const { services } = compose();
    const idp = services.idp;
    const web = services.web.environment;
    assert.equal(web.OIDC_ISSUER, idp.environment.ISSUER);
    const issuer = new URL(web.OIDC_ISSUER);
    assert.match(issuer.hostname, /\.localhost$/, 'browsers resolve *.localhost to this machine');
    assert.ok(idp.networks.default.aliases.includes(issuer.hostname), 'containers resolve it to the idp service');
    assert.ok(idp.ports.some((p) => String(p).endsWith(`${issuer.port}:${idp.environment.PORT}`)), 'published on the same port');
    assert.equal(idp.environment.WEB_PUBLIC_URL, web.PUBLIC_URL);
    assert.equal(idp.environment.CLIENT_ID, web.OIDC_CLIENT_ID);
    assert.equal(idp.environment.CLIENT_SECRET, web.OIDC_CLIENT_SECRET);
    assert.equal(idp.build.context, './deploy/dev-idp');
  });

  test('traces: OTLP into the collector, batched, out to Jaeger', () => {
    const { services } = compose();
    const col = services['otel-collector'];
    assert.ok(col.volumes.includes('./deploy/otel/collector.yaml:/etc/otelcol-contrib/config.yaml:ro'));
    const cfg = yamlDoc(deploy('otel', 'collector.yaml'));
    assert.match(cfg.receivers.otlp.protocols.grpc.endpoint, /:4317$/);
    assert.match(cfg.receivers.otlp.protocols.http.endpoint, /:4318$/);
    const traces = cfg.service.pipelines.traces;
    assert.deepEqual(traces.receivers, ['otlp']);
    assert.ok(traces.processors.includes('batch'));
    for (const [kind, names] of Object.entries({ receivers: 'receivers', processors: 'processors', exporters: 'exporters' })) {
      for (const pipeline of Object.values(cfg.service.pipelines)) {
        for (const n of pipeline[kind] ?? []) assert.ok(n in cfg[names], `${kind} ${n} is defined`);
      }
    }
    const jaegerExporter = traces.exporters.map((n) => cfg.exporters[n]).find((e) => e.endpoint === 'jaeger:4317');
    assert.ok(jaegerExporter, 'traces go to jaeger:4317');
    assert.equal(jaegerExporter.tls.insecure, true);
    assert.equal(services.jaeger.environment.COLLECTOR_OTLP_ENABLED, 'true');
    assert.ok(services.jaeger.ports.some((p) => String(p).endsWith('16686:16686')));
  });
});

// ---------------------------------------------------------------- images

describe('Dockerfiles', () => {
  const dockerfiles = [deploy('gateway.Dockerfile'), deploy('web.Dockerfile'), deploy('dev-idp', 'Dockerfile')];
  const hadolint = (file) => run(bin('hadolint'), ['--no-color', '--config', deploy('hadolint.yaml'), file]);

  test('hadolint passes every Dockerfile', () => {
    for (const f of dockerfiles) {
      const r = hadolint(f);
      assert.equal(r.code, 0, `${f}:\n${r.out}`);
    }
  });

  test('hadolint rejects a broken copy', () => {
    const broken = scratch('Dockerfile', breakText(read(deploy('gateway.Dockerfile')), 'apt-get install -y --no-install-recommends', 'apt-get install'));
    assert.notEqual(hadolint(broken).code, 0);
  });

  const services = {
    gateway: { addrVar: 'GATEWAY_ADDR', config: 'services/chat-gateway/src/config.rs' },
    web: { addrVar: 'WEB_ADDR', config: 'services/chat-web/src/config.rs' },
  };
  for (const [svc, { addrVar, config }] of Object.entries(services)) {
    test(`${svc}.Dockerfile: two stages, cached release build, non-root, healthcheck, the service's port`, () => {
      const text = read(deploy(`${svc}.Dockerfile`));
      const pkg = `chat-${svc}`;
      const froms = [...text.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)].map((m) => m[1]);
      assert.deepEqual(froms, ['rust:1-bookworm', 'debian:bookworm-slim']);
      assert.match(text, new RegExp(`cargo build --release --locked -p ${pkg}\\b`));
      for (const cache of ['/usr/local/cargo/registry', '/usr/local/cargo/git', '/src/target']) {
        assert.match(text, new RegExp(`--mount=type=cache,target=${cache}[,\\s]`), `cache mount ${cache}`);
      }
      assert.match(text, new RegExp(`COPY --from=builder /usr/local/bin/${pkg} /usr/local/bin/${pkg}`));
      assert.match(text, new RegExp(`ENTRYPOINT \\["/usr/local/bin/${pkg}"\\]`));
      const runtime = text.slice(text.indexOf('FROM debian:bookworm-slim'));
      const installed = [...runtime.matchAll(/apt-get install ([^&\n]+)/g)].flatMap((m) => m[1].split(/\s+/).filter((w) => w && w !== '\\' && !w.startsWith('-')));
      assert.deepEqual(installed, ['ca-certificates'], 'ca-certificates only in the runtime image');
      assert.match(runtime, /useradd [^\n]*--uid 10001/);
      assert.match(runtime, /^USER 10001:10001$/m);
      assert.match(runtime, /^STOPSIGNAL SIGTERM$/m);
      assert.match(runtime, new RegExp(`HEALTHCHECK [^\\n]*\\n\\s*CMD \\["/usr/local/bin/healthcheck", "${addrVar}", "(\\d+)", "/healthz"\\]`));
      // The port the image exposes and probes is the service's default listen port.
      const src = read(path.join(repo, config));
      const port = svc === 'gateway' ? /\[0, 0, 0, 0\], (\d+)/.exec(src)[1] : /"0\.0\.0\.0:(\d+)"/.exec(src)[1];
      assert.match(runtime, new RegExp(`^EXPOSE ${port}$`, 'm'));
      assert.match(runtime, new RegExp(`"${addrVar}", "${port}"`));
      assert.match(runtime, new RegExp(`${addrVar}=0\\.0\\.0\\.0:${port}`));
      if (svc === 'web') {
        assert.match(runtime, /^COPY static \/app\/static$/m, 'the browser assets ship');
        assert.match(runtime, /STATIC_DIR=\/app\/static/);
      }
    });
  }

  test('every COPY source exists and is inside the build context (.dockerignore)', () => {
    const ignore = read(path.join(repo, '.dockerignore')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const p of ['.git', 'target', '**/node_modules', 'deploy/secrets']) assert.ok(ignore.includes(p), `.dockerignore has ${p}`);
    const ignored = (p) => ignore.some((i) => p === i || p.startsWith(`${i}/`) || (i === '**/node_modules' && p.split('/').includes('node_modules')));
    for (const [file, context] of [[deploy('gateway.Dockerfile'), repo], [deploy('web.Dockerfile'), repo], [deploy('dev-idp', 'Dockerfile'), deploy('dev-idp')]]) {
      for (const m of read(file).matchAll(/^COPY\s+(?!--from)(.+)$/gm)) {
        const parts = m[1].trim().split(/\s+/);
        for (const src of parts.slice(0, -1)) {
          if (src === '.') continue;
          assert.ok(fs.existsSync(path.join(context, src)), `${path.basename(file)}: COPY ${src} exists`);
          if (context === repo) assert.ok(!ignored(src), `${src} is not excluded by .dockerignore`);
        }
      }
    }
    // What cargo needs from the context is there: the workspace members and the askama templates.
    const members = read(path.join(repo, 'Cargo.toml')).match(/members\s*=\s*\[([^\]]*)\]/)[1];
    for (const m of members.matchAll(/"([^"]+)"/g)) assert.ok(!ignored(m[1]), `workspace member ${m[1]} is in the context`);
    assert.ok(!ignored('templates') && !ignored('static'));
  });

  test('the container healthcheck answers for a 200 only, on the port of the address variable', async () => {
    const script = deploy('docker', 'healthcheck.sh');
    let status = 200;
    const seen = [];
    const server = http.createServer((req, res) => {
      seen.push(req.url);
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end('x');
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address();
    const check = (env, ...args) =>
      new Promise((resolve) => {
        const p = spawn(script, args, { env: { PATH: process.env.PATH, ...env } });
        p.on('exit', (code) => resolve(code));
      });
    try {
      assert.equal(await check({ GATEWAY_ADDR: `0.0.0.0:${port}` }, 'GATEWAY_ADDR', '1'), 0);
      assert.equal(seen.at(-1), '/healthz');
      assert.equal(await check({ WEB_ADDR: `[::]:${port}` }, 'WEB_ADDR', '1', '/readyz'), 0);
      assert.equal(seen.at(-1), '/readyz');
      assert.equal(await check({}, 'WEB_ADDR', String(port)), 0, 'default port when the variable is unset');
      status = 503;
      assert.equal(await check({ WEB_ADDR: `0.0.0.0:${port}` }, 'WEB_ADDR', '1', '/readyz'), 1, '503 is unhealthy');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    assert.equal(await check({ WEB_ADDR: `0.0.0.0:${port}` }, 'WEB_ADDR', '1'), 1, 'nothing listening is unhealthy');
  });

  test('shellcheck passes the shell scripts', () => {
    const scripts = [deploy('docker', 'healthcheck.sh'), deploy('gen-keys.sh'), path.join(here, 'setup.sh')];
    const r = run(bin('shellcheck'), scripts);
    assert.equal(r.code, 0, r.out);
    const broken = scratch('broken.sh', breakText(read(deploy('gen-keys.sh')), 'mv "$tmp" "$private"', 'mv $tmp $private'));
    assert.notEqual(run(bin('shellcheck'), [broken]).code, 0, 'unquoted variables are caught');
  });
});

// ---------------------------------------------------------------- keys

describe('deploy/gen-keys.sh', () => {
  test('writes a PKCS#8 Ed25519 private key and its SPKI public half, readable by the container user, and keeps them', () => {
    const dir = path.join(tmp, 'secrets');
    const r = run(deploy('gen-keys.sh'), [], { env: { ...process.env, SECRETS_DIR: dir } });
    assert.equal(r.code, 0, r.out);
    const privPem = read(path.join(dir, 'jwt-private.pem'));
    const pubPem = read(path.join(dir, 'jwt-public.pem'));
    // A format check of the key gen-keys.sh just generated (no key is committed here); the
    // PEM label is assembled so that scans for committed private keys do not match this line.
    const pkcs8Label = ['PRIVATE', 'KEY'].join(' ');
    assert.match(privPem, new RegExp(`^-----BEGIN ${pkcs8Label}-----\n`), 'PKCS#8');
    assert.match(pubPem, /^-----BEGIN PUBLIC KEY-----\n/, 'SPKI');
    const priv = crypto.createPrivateKey(privPem);
    const pub = crypto.createPublicKey(pubPem);
    assert.equal(priv.asymmetricKeyType, 'ed25519');
    const sig = crypto.sign(null, Buffer.from('room token'), priv);
    assert.ok(crypto.verify(null, Buffer.from('room token'), pub, sig), 'the public half matches');
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(dir, 'jwt-private.pem')).mode & 0o004, 0o004, 'uid 10001 reads the bind-mounted file');
    assert.equal(run(deploy('gen-keys.sh'), [], { env: { ...process.env, SECRETS_DIR: dir } }).code, 0);
    assert.equal(read(path.join(dir, 'jwt-private.pem')), privPem, 'an existing key is kept');
    assert.equal(run(deploy('gen-keys.sh'), ['--force'], { env: { ...process.env, SECRETS_DIR: dir } }).code, 0);
    assert.notEqual(read(path.join(dir, 'jwt-private.pem')), privPem, '--force replaces it');
  });

  test('the public file holds the public half of every private key, and is kept when present (a key being rolled in)', () => {
    const dir = path.join(tmp, 'secrets-rotation');
    assert.equal(run(deploy('gen-keys.sh'), [], { env: { ...process.env, SECRETS_DIR: dir } }).code, 0);
    const second = crypto.generateKeyPairSync('ed25519');
    fs.appendFileSync(path.join(dir, 'jwt-private.pem'), second.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    fs.rmSync(path.join(dir, 'jwt-public.pem'));
    assert.equal(run(deploy('gen-keys.sh'), [], { env: { ...process.env, SECRETS_DIR: dir } }).code, 0);
    const blocks = read(path.join(dir, 'jwt-public.pem')).match(/-----BEGIN PUBLIC KEY-----[^-]+-----END PUBLIC KEY-----/g);
    assert.equal(blocks.length, 2, 'one public key per private key');
    assert.equal(crypto.createPublicKey(blocks[1]).export({ type: 'spki', format: 'pem' }), second.publicKey.export({ type: 'spki', format: 'pem' }));
    // A public file that also holds the next key (rotation step 1) survives another run.
    const next = crypto.generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' });
    fs.appendFileSync(path.join(dir, 'jwt-public.pem'), next);
    const withNext = read(path.join(dir, 'jwt-public.pem'));
    assert.equal(run(deploy('gen-keys.sh'), [], { env: { ...process.env, SECRETS_DIR: dir } }).code, 0);
    assert.equal(read(path.join(dir, 'jwt-public.pem')), withNext);
    // --force makes a new pair: the public file follows.
    assert.equal(run(deploy('gen-keys.sh'), ['--force'], { env: { ...process.env, SECRETS_DIR: dir } }).code, 0);
    const pub = crypto.createPublicKey(read(path.join(dir, 'jwt-public.pem')));
    const priv = crypto.createPrivateKey(read(path.join(dir, 'jwt-private.pem')));
    assert.ok(crypto.verify(null, Buffer.from('t'), pub, crypto.sign(null, Buffer.from('t'), priv)));
  });

  test("its Redis ACL file works in redis-server: nothing without the password, the URL's user can work, the probe only PINGs", async (t) => {
    const dir = path.join(tmp, 'acl-secrets');
    assert.equal(run(deploy('gen-keys.sh'), [], { env: { ...process.env, SECRETS_DIR: dir } }).code, 0);
    const url = new URL(read(path.join(dir, 'redis-url')));
    const port = await freePort();
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--aclfile', path.join(dir, 'redis-users.acl')], { stdio: 'ignore' });
    t.after(() => proc.kill('SIGKILL'));
    const cli = (...args) => run('redis-cli', ['-h', '127.0.0.1', '-p', String(port), '--no-auth-warning', ...args]).out.trim();
    const deadline = Date.now() + 10_000;
    while (!/NOAUTH|PONG/.test(cli('PING'))) {
      assert.ok(Date.now() < deadline, 'redis-server with the ACL file started');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(cli('PING'), /NOAUTH/, 'no anonymous access');
    assert.match(cli('SET', 'k', 'v'), /NOAUTH/);
    assert.match(cli('--user', url.username, '--pass', 'wrong', 'PING'), /WRONGPASS|AUTH failed/);
    const chat = (...a) => cli('--user', url.username, '--pass', url.password, ...a);
    assert.equal(chat('SET', 'k', 'v'), 'OK');
    assert.equal(chat('EVAL', "return redis.call('GET', KEYS[1])", '1', 'k'), 'v');
    assert.match(chat('FLUSHALL'), /NOPERM/, 'no @dangerous commands');
    assert.equal(cli('--user', 'probe', '--pass', 'probe', 'PING'), 'PONG');
    assert.match(cli('--user', 'probe', '--pass', 'probe', 'GET', 'k'), /NOPERM/);
  });

  test('deploy/secrets/ keeps only its .gitignore in git', () => {
    assert.equal(run('git', ['-C', repo, 'check-ignore', '-q', 'deploy/secrets/jwt-private.pem']).code, 0);
    assert.equal(run('git', ['-C', repo, 'check-ignore', '-q', 'deploy/secrets/jwt-public.pem']).code, 0);
    for (const f of ['redis-password', 'redis-users.acl', 'redis.env', 'redis-url']) {
      assert.equal(run('git', ['-C', repo, 'check-ignore', '-q', `deploy/secrets/${f}`]).code, 0, f);
    }
    assert.notEqual(run('git', ['-C', repo, 'check-ignore', '-q', 'deploy/secrets/.gitignore']).code, 0);
  });
});

// ---------------------------------------------------------------- development IdP

describe('deploy/dev-idp', () => {
  test('pins the oidc-provider the tests use, with a lock file', () => {
    const pkg = JSON.parse(read(deploy('dev-idp', 'package.json')));
    const lock = JSON.parse(read(deploy('dev-idp', 'package-lock.json')));
    const testsPkg = JSON.parse(read(path.join(repo, 'tests', 'package.json')));
    assert.equal(pkg.dependencies['oidc-provider'], '9.13.3');
    assert.equal(lock.packages['node_modules/oidc-provider'].version, '9.13.3');
    assert.equal(testsPkg.dependencies['oidc-provider'], pkg.dependencies['oidc-provider']);
    assert.match(read(deploy('dev-idp', 'Dockerfile')), /^FROM node:22-slim$/m);
    assert.match(read(deploy('dev-idp', 'Dockerfile')), /^COPY server\.js configuration\.mjs \.\/$/m, 'the image holds the shared configuration');
  });

  test('signs a user in through its login form and gives web a code, then tokens for its client secret', async (t) => {
    // Run server.js as shipped, with the tests' copy of the same oidc-provider.
    const dir = path.join(tmp, 'dev-idp');
    fs.mkdirSync(dir, { recursive: true });
    // The files the image copies (its Dockerfile's COPY lines).
    for (const file of ['server.js', 'configuration.mjs']) fs.copyFileSync(deploy('dev-idp', file), path.join(dir, file));
    fs.copyFileSync(deploy('dev-idp', 'package.json'), path.join(dir, 'package.json'));
    fs.symlinkSync(path.join(repo, 'tests', 'node_modules'), path.join(dir, 'node_modules'));
    const port = await freePort();
    const issuer = `http://127.0.0.1:${port}`;
    const webUrl = 'http://localhost:8080';
    const secret = 'test-secret';
    const child = spawn(process.execPath, ['server.js'], {
      cwd: dir,
      env: { PATH: process.env.PATH, ISSUER: issuer, PORT: String(port), HOST: '127.0.0.1', WEB_PUBLIC_URL: webUrl, CLIENT_ID: 'chat-web', CLIENT_SECRET: secret },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let logs = '';
    child.stdout.on('data', (d) => (logs += d));
    child.stderr.on('data', (d) => (logs += d));
    t.after(() => child.kill('SIGTERM'));

    let discovery = null;
    for (let i = 0; i < 100 && !discovery; i += 1) {
      try {
        const res = await fetch(`${issuer}/.well-known/openid-configuration`);
        if (res.ok) discovery = await res.json();
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(discovery, `the provider started:\n${logs}`);
    assert.equal(discovery.issuer, issuer);
    assert.ok(discovery.end_session_endpoint, 'RP-initiated logout');

    const verifier = crypto.randomBytes(32).toString('base64url');
    const authorize = (redirectUri) => {
      const u = new URL(discovery.authorization_endpoint);
      u.search = new URLSearchParams({
        client_id: 'chat-web',
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: 'openid profile email',
        state: 's1',
        nonce: 'n1',
        code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      }).toString();
      return u.toString();
    };
    // An unregistered redirect URI is refused.
    const foreign = await fetch(authorize('http://evil.example/authorization-code/callback'), { redirect: 'manual' });
    assert.equal(foreign.status, 400);

    const back = new URL(await loginAtProvider(new CookieJar(), authorize(`${webUrl}/authorization-code/callback`), 'alice'));
    assert.equal(`${back.origin}${back.pathname}`, `${webUrl}/authorization-code/callback`);
    assert.equal(back.searchParams.get('state'), 's1');
    const code = back.searchParams.get('code');
    assert.ok(code, `a code: ${back}`);

    const token = await fetch(discovery.token_endpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`chat-web:${secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: `${webUrl}/authorization-code/callback`, code_verifier: verifier }),
    });
    const body = await token.json();
    assert.equal(token.status, 200, JSON.stringify(body));
    const claims = JSON.parse(Buffer.from(body.id_token.split('.')[1], 'base64url').toString());
    assert.equal(claims.sub, 'alice');
    assert.equal(claims.iss, issuer);
    assert.equal(claims.aud, 'chat-web');
    const info = await (await fetch(discovery.userinfo_endpoint, { headers: { authorization: `Bearer ${body.access_token}` } })).json();
    assert.equal(info.name, 'alice');
    assert.equal(info.email, 'alice@example.test');
  });
});

// ---------------------------------------------------------------- Kubernetes

describe('deploy/k8s', () => {
  const k8s = (...p) => deploy('k8s', ...p);
  const kustomization = () => yamlDoc(k8s('kustomization.yaml'));
  const validate = (files) => run(bin('kubernetes-validate'), ['--strict', '--quiet', ...files]);

  /** Every object of the kustomization, as kustomize would render it (namespace, labels, images). */
  function render() {
    const kz = kustomization();
    const files = kz.resources.map((r) => k8s(r));
    const docs = yamlDocs(...files);
    const cluster = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass', 'IngressClass']);
    const out = [];
    for (const f of files) {
      for (const obj of docs[f]) {
        const o = structuredClone(obj);
        o._file = path.basename(f);
        if (kz.namespace && !cluster.has(o.kind)) o.metadata.namespace = kz.namespace;
        for (const l of kz.labels ?? []) Object.assign((o.metadata.labels ??= {}), l.pairs);
        const pod = o.spec?.template?.spec;
        for (const c of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
          const img = (kz.images ?? []).find((i) => i.name === c.image.split(':')[0]);
          if (img) c.image = `${img.newName ?? img.name}:${img.newTag}`;
        }
        out.push(o);
      }
    }
    return out;
  }
  const find = (objs, kind, name) => {
    const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
    assert.ok(o, `${kind}/${name}`);
    return o;
  };

  test('kubernetes-validate --strict passes every manifest and the example Secrets', () => {
    const files = [...kustomization().resources.map((r) => k8s(r)), k8s('secret.example.yaml')];
    for (const f of files) assert.ok(fs.existsSync(f), f);
    const r = validate(files);
    assert.equal(r.code, 0, r.out);
  });

  test('kubernetes-validate --strict passes the rendered kustomization', () => {
    const objs = render();
    const file = scratch('rendered.yaml', objs.map((o) => JSON.stringify({ ...o, _file: undefined })).join('\n---\n'));
    const r = validate([file]);
    assert.equal(r.code, 0, r.out);
    assert.ok(objs.every((o) => o.kind === 'Namespace' || o.metadata.namespace === 'chat'));
    assert.match(find(objs, 'Deployment', 'gateway').spec.template.spec.containers[0].image, /\/chat-gateway:[\w.-]+$/);
  });

  test('kubernetes-validate rejects broken copies', () => {
    const typo = scratch('gateway.yaml', breakText(read(k8s('gateway.yaml')), 'terminationGracePeriodSeconds: 40', 'terminationGracePeriodSecond: 40'));
    assert.notEqual(validate([typo]).code, 0, 'an unknown field');
    const type = scratch('hpa.yaml', breakText(read(k8s('gateway-hpa.yaml')), 'minReplicas: 3', 'minReplicas: three'));
    assert.notEqual(validate([type]).code, 0, 'a wrong type');
  });

  test('secrets are referenced by name, never inlined in the kustomization', () => {
    const kz = kustomization();
    assert.ok(!kz.resources.includes('secret.example.yaml'));
    assert.equal(kz.secretGenerator, undefined);
    const objs = render();
    assert.ok(!objs.some((o) => o.kind === 'Secret'), 'no Secret object is applied from git');
    for (const f of kz.resources) assert.doesNotMatch(read(k8s(f)), /BEGIN [A-Z ]*PRIVATE KEY/);
    const config = find(objs, 'ConfigMap', 'chat-config');
    for (const k of Object.keys(config.data)) assert.doesNotMatch(k, /SECRET|PASSWORD|PRIVATE|TOKEN/, `${k} belongs in a Secret`);
    // What the pods reference exists in the example Secrets, key for key.
    const examples = Object.fromEntries(yamlDocs(k8s('secret.example.yaml'))[k8s('secret.example.yaml')].map((s) => [s.metadata.name, Object.keys(s.stringData)]));
    const web = find(objs, 'Deployment', 'web').spec.template.spec;
    const gateway = find(objs, 'Deployment', 'gateway').spec.template.spec;
    const refs = [...web.containers, ...gateway.containers].flatMap((c) => (c.env ?? []).map((e) => e.valueFrom?.secretKeyRef).filter(Boolean));
    assert.ok(refs.length >= 2);
    for (const r of refs) assert.ok(examples[r.name]?.includes(r.key), `secret ${r.name} key ${r.key}`);
    const env = Object.fromEntries(web.containers[0].env.map((e) => [e.name, e]));
    assert.equal(env.OIDC_CLIENT_SECRET.valueFrom.secretKeyRef.name, 'chat-web-oidc');
    const keyFile = env.JWT_PRIVATE_KEY_FILE.value;
    const mount = web.containers[0].volumeMounts.find((m) => keyFile.startsWith(`${m.mountPath}/`));
    assert.ok(mount, 'the key file is on a mounted volume');
    const volume = web.volumes.find((v) => v.name === mount.name);
    assert.ok(volume.secret, 'a Secret volume');
    assert.ok(examples[volume.secret.secretName]);
    const item = volume.secret.items.find((i) => `${mount.mountPath}/${i.path}` === keyFile);
    assert.ok(item && examples[volume.secret.secretName].includes(item.key), 'the file is a key of the Secret');
  });

  test('pods: probes on /readyz and /healthz, non-root, read-only root, no privileges, resources', () => {
    const objs = render();
    for (const [name, port] of [['web', 8080], ['gateway', 8081]]) {
      const spec = find(objs, 'Deployment', name).spec.template.spec;
      assert.equal(spec.securityContext.runAsNonRoot, true);
      assert.equal(spec.securityContext.runAsUser, 10001);
      assert.equal(spec.securityContext.seccompProfile.type, 'RuntimeDefault');
      const [c] = spec.containers;
      assert.equal(c.readinessProbe.httpGet.path, '/readyz');
      assert.equal(c.livenessProbe.httpGet.path, '/healthz');
      const named = c.ports.find((p) => p.name === c.readinessProbe.httpGet.port);
      assert.equal(named?.containerPort, port);
      assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      assert.equal(c.securityContext.allowPrivilegeEscalation, false);
      assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
      assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
      const addrVar = name === 'web' ? 'WEB_ADDR' : 'GATEWAY_ADDR';
      assert.equal(c.env.find((e) => e.name === addrVar).value, `0.0.0.0:${port}`);
      // The Service reaches these pods on that port.
      const svc = find(objs, 'Service', name);
      for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(spec.containers && find(objs, 'Deployment', name).spec.template.metadata.labels[k], v);
      assert.ok(c.ports.some((p) => p.name === svc.spec.ports[0].targetPort));
    }
  });

  test('the gateway gets preStop + its 25 s drain + a margin before SIGKILL', () => {
    const objs = render();
    const spec = find(objs, 'Deployment', 'gateway').spec.template.spec;
    const config = find(objs, 'ConfigMap', 'chat-config');
    const drain = Number(config.data.DRAIN_TIMEOUT_S ?? 25);
    const preStop = spec.containers[0].lifecycle.preStop;
    const sleep = preStop.sleep?.seconds ?? Number(preStop.exec.command.at(-1));
    assert.ok(sleep >= 3 && sleep <= 10, `preStop sleeps a few seconds (${sleep})`);
    assert.ok(spec.terminationGracePeriodSeconds >= sleep + drain + 5, `${spec.terminationGracePeriodSeconds} >= ${sleep} + ${drain} + 5`);
  });

  test('the gateway scales (HPA) and is disrupted one pod at a time (PDB)', () => {
    const objs = render();
    const dep = find(objs, 'Deployment', 'gateway');
    const labels = dep.spec.template.metadata.labels;
    const hpa = find(objs, 'HorizontalPodAutoscaler', 'gateway');
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'gateway' });
    assert.ok(hpa.spec.minReplicas >= 2);
    assert.equal(dep.spec.replicas, undefined, 'the HPA owns the replica count');
    const pdb = find(objs, 'PodDisruptionBudget', 'gateway');
    for (const [k, v] of Object.entries(pdb.spec.selector.matchLabels)) assert.equal(labels[k], v);
    assert.ok(pdb.spec.maxUnavailable === 1 || pdb.spec.minAvailable >= 1);
  });

  test('the ingress sends /socket.io/ to the gateways with long timeouts and / to web', () => {
    const objs = render();
    const ing = find(objs, 'Ingress', 'chat');
    const a = ing.metadata.annotations;
    assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 3600);
    assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-send-timeout']) >= 3600);
    const paths = ing.spec.rules[0].http.paths;
    const backend = (p) => paths.find((x) => x.path === p)?.backend.service;
    assert.equal(backend('/socket.io/').name, 'gateway');
    assert.equal(backend('/').name, 'web');
    for (const p of paths) {
      const svc = find(objs, 'Service', p.backend.service.name);
      assert.ok(svc.spec.ports.some((sp) => sp.name === p.backend.service.port.name), `${p.path}: the service port exists`);
    }
    const host = ing.spec.rules[0].host;
    const config = find(objs, 'ConfigMap', 'chat-config').data;
    assert.equal(new URL(config.PUBLIC_URL).host, host, 'PUBLIC_URL is the ingress host');
    assert.equal(config.GATEWAY_PUBLIC_URL, config.PUBLIC_URL);
  });

  test('Redis: ACL file from Secret chat-redis, probes as the PING-only user, maxmemory with noeviction', () => {
    const objs = render();
    const pod = find(objs, 'StatefulSet', 'redis').spec.template.spec;
    const [c] = pod.containers;
    const arg = (name) => c.args[c.args.indexOf(name) + 1];
    assert.equal(arg('--maxmemory-policy'), 'noeviction');
    const mb = Number(/^(\d+)mb$/.exec(arg('--maxmemory'))?.[1]);
    const limitMi = Number(/^(\d+)Gi$/.exec(c.resources.limits.memory)?.[1]) * 1024;
    assert.ok(mb > 0 && mb <= 0.8 * limitMi, `maxmemory ${mb} MB leaves room under the ${limitMi} Mi limit`);
    const aclFile = arg('--aclfile');
    const mount = c.volumeMounts.find((m) => aclFile.startsWith(`${m.mountPath}/`));
    const volume = pod.volumes.find((v) => v.name === mount.name);
    assert.equal(volume.secret.secretName, 'chat-redis');
    const example = yamlDocs(k8s('secret.example.yaml'))[k8s('secret.example.yaml')].find((d) => d.metadata.name === 'chat-redis');
    const item = volume.secret.items.find((i) => `${mount.mountPath}/${i.path}` === aclFile);
    assert.ok(item && item.key in example.stringData);
    assert.match(example.stringData[item.key], /^user default off$/m);
    assert.match(c.readinessProbe.exec.command.join(' '), /--user probe .*ping/);
  });

  test('NetworkPolicies: Redis only from web and gateway; the HTTP ports only from the ingress controller and Prometheus', () => {
    const objs = render();
    const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
    const deny = policies.find((p) => Object.keys(p.spec.podSelector).length === 0);
    assert.deepEqual(deny?.spec.policyTypes, ['Ingress', 'Egress'], 'a default deny of ingress and egress');
    assert.equal(deny.spec.ingress, undefined);
    assert.equal(deny.spec.egress, undefined);
    const label = (kind, name) => find(objs, kind, name).spec.template.metadata.labels['app.kubernetes.io/name'];
    const policyFor = (kind, name) => {
      const p = policies.find((x) => x.spec.podSelector.matchLabels?.['app.kubernetes.io/name'] === label(kind, name));
      assert.ok(p, `a policy selects ${name}`);
      return p;
    };
    // Who a rule admits: { ns, pod } per peer (ns undefined = this namespace).
    const peers = (rule) => rule.from.map((f) => ({
      ns: f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'],
      pods: f.podSelector?.matchLabels?.['app.kubernetes.io/name'] ? [f.podSelector.matchLabels['app.kubernetes.io/name']]
        : f.podSelector?.matchExpressions?.find((e) => e.key === 'app.kubernetes.io/name' && e.operator === 'In')?.values,
    }));
    const redis = policyFor('StatefulSet', 'redis');
    assert.equal(redis.spec.ingress.length, 1);
    assert.deepEqual(peers(redis.spec.ingress[0]), [{ ns: undefined, pods: [label('Deployment', 'web'), label('Deployment', 'gateway')] }]);
    assert.deepEqual(redis.spec.ingress[0].ports.map((p) => p.port), ['redis']);
    for (const name of ['web', 'gateway']) {
      const rules = policyFor('Deployment', name).spec.ingress;
      const admitted = rules.flatMap(peers);
      for (const r of rules) assert.deepEqual(r.ports.map((p) => p.port), ['http'], `${name}: only its HTTP port`);
      assert.ok(admitted.some((a) => a.ns === 'ingress-nginx' && a.pods?.includes('ingress-nginx')), `${name}: the ingress controller`);
      assert.ok(admitted.some((a) => a.ns === 'monitoring' && a.pods?.includes('prometheus')), `${name}: Prometheus scrapes it`);
      for (const a of admitted) assert.ok(a.pods && a.ns, `${name}: every peer is a pod selector in a named namespace (nothing in-namespace calls it)`);
    }
  });

  test('every pod has egress policies: the gateway reaches Redis and DNS only, web also HTTPS outside the cluster, Redis DNS only', () => {
    const objs = render();
    const policies = objs.filter((o) => o.kind === 'NetworkPolicy');
    const selects = (policy, labels) => {
      const sel = policy.spec.podSelector;
      return Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v)
        && (sel.matchExpressions ?? []).every((e) => e.operator === 'In' && e.values.includes(labels[e.key]));
    };
    /** Every egress destination of the pods with `labels`, as strings: dns, pod:<name>:<port>, cidr:<cidr>:<port>. */
    const egressOf = (labels) => {
      const mine = policies.filter((p) => p.spec.policyTypes.includes('Egress') && selects(p, labels));
      assert.ok(mine.some((p) => Object.keys(p.spec.podSelector).length === 0), 'egress is denied by default');
      const own = mine.filter((p) => Object.keys(p.spec.podSelector).length > 0);
      assert.ok(own.length > 0, `a policy of its own lists the egress of ${labels['app.kubernetes.io/name']}`);
      const out = new Set();
      for (const rule of own.flatMap((p) => p.spec.egress ?? [])) {
        assert.ok(rule.to?.length > 0, 'no rule admits every destination');
        assert.ok(rule.ports?.length > 0, 'no rule admits every port');
        for (const to of rule.to) {
          for (const port of rule.ports) {
            if (to.podSelector?.matchLabels?.['k8s-app'] === 'kube-dns') {
              assert.equal(to.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'], 'kube-system');
              assert.equal(port.port, 53);
              out.add('dns');
            } else if (to.podSelector) {
              assert.equal(to.namespaceSelector, undefined, 'pods of this namespace');
              out.add(`pod:${to.podSelector.matchLabels['app.kubernetes.io/name']}:${port.port}`);
            } else if (to.ipBlock) {
              out.add(`cidr:${to.ipBlock.cidr}:${port.port}`);
              assert.ok(to.ipBlock.except?.includes('169.254.0.0/16') || to.ipBlock.cidr.includes(':'), 'never the cloud metadata service');
              if (to.ipBlock.cidr === '0.0.0.0/0') for (const r of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']) assert.ok(to.ipBlock.except.includes(r), `not into ${r}`);
            } else assert.fail(`an egress peer of an unknown kind: ${JSON.stringify(to)}`);
          }
        }
      }
      return [...out].sort();
    };
    const labelsOf = (kind, name) => find(objs, kind, name).spec.template.metadata.labels;
    const redisName = labelsOf('StatefulSet', 'redis')['app.kubernetes.io/name'];
    assert.deepEqual(egressOf(labelsOf('Deployment', 'gateway')), ['dns', `pod:${redisName}:6379`]);
    assert.deepEqual(egressOf(labelsOf('Deployment', 'web')), ['cidr:0.0.0.0/0:443', 'cidr:::/0:443', 'dns', `pod:${redisName}:6379`]);
    assert.deepEqual(egressOf(labelsOf('StatefulSet', 'redis')), ['dns']);
    // Every workload of the kustomization is covered.
    for (const w of objs.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind))) {
      assert.ok(egressOf(w.spec.template.metadata.labels).length > 0, `${w.kind}/${w.metadata.name} has egress rules`);
    }
  });

  test('the gateways verify room tokens with the public key mounted from Secret chat-web-jwt, never a JWKS over http', () => {
    const objs = render();
    const config = find(objs, 'ConfigMap', 'chat-config').data;
    assert.equal(config.JWKS_URL, undefined, 'no JWKS_URL in the shared settings');
    const examples = Object.fromEntries(yamlDocs(k8s('secret.example.yaml'))[k8s('secret.example.yaml')].map((s) => [s.metadata.name, Object.keys(s.stringData)]));
    const mountedFile = (spec, file) => {
      const [c] = spec.containers;
      const mount = c.volumeMounts.find((m) => file.startsWith(`${m.mountPath}/`));
      assert.ok(mount, `${file} is on a mounted volume`);
      const volume = spec.volumes.find((v) => v.name === mount.name);
      assert.ok(volume.secret, 'a Secret volume');
      const item = volume.secret.items.find((i) => `${mount.mountPath}/${i.path}` === file);
      assert.ok(item, `${file} is an item of the volume`);
      assert.ok(examples[volume.secret.secretName]?.includes(item.key), `${volume.secret.secretName} has key ${item.key}`);
      return { secret: volume.secret.secretName, key: item.key, items: volume.secret.items.map((i) => i.key) };
    };
    const gateway = find(objs, 'Deployment', 'gateway').spec.template.spec;
    const web = find(objs, 'Deployment', 'web').spec.template.spec;
    const gatewayEnv = Object.fromEntries(gateway.containers[0].env.map((e) => [e.name, e]));
    for (const c of [...gateway.containers, ...web.containers]) {
      for (const e of c.env ?? []) if (e.name === 'JWKS_URL') assert.doesNotMatch(e.value ?? '', /^http:/i, `${c.name}: no JWKS over http`);
    }
    assert.equal(gatewayEnv.JWKS_URL, undefined);
    const pub = mountedFile(gateway, gatewayEnv.JWT_PUBLIC_KEY_FILE.value);
    const webEnv = Object.fromEntries(web.containers[0].env.map((e) => [e.name, e]));
    const priv = mountedFile(web, webEnv.JWT_PRIVATE_KEY_FILE.value);
    assert.equal(pub.secret, priv.secret, 'the public key comes from the Secret that holds the key pair');
    assert.equal(pub.key, 'jwt-public.pem');
    assert.deepEqual(pub.items, ['jwt-public.pem'], 'the gateways never get the private key');
    assert.ok(!JSON.stringify(gateway).includes(priv.key), 'no reference to the private key in the gateway pod');
  });

  test('the ingress never serves /metrics: an Exact and a Prefix rule denied to every source address', () => {
    const objs = render();
    const block = objs.filter((o) => o.kind === 'Ingress').find((i) => i.spec.rules[0].http.paths.some((p) => p.path === '/metrics'));
    assert.ok(block, 'an Ingress for /metrics');
    assert.equal(block.spec.rules[0].host, find(objs, 'Ingress', 'chat').spec.rules[0].host, 'the same host');
    assert.equal(block.spec.ingressClassName, find(objs, 'Ingress', 'chat').spec.ingressClassName);
    const paths = Object.fromEntries(block.spec.rules[0].http.paths.map((p) => [p.path, p.pathType]));
    assert.deepEqual(paths, { '/metrics': 'Exact', '/metrics/': 'Prefix' });
    const ranges = block.metadata.annotations['nginx.ingress.kubernetes.io/denylist-source-range'].split(',').map((r) => r.trim());
    assert.ok(ranges.includes('0.0.0.0/0') && ranges.includes('::/0'), 'every IPv4 and IPv6 client is denied');
    assert.ok(!find(objs, 'Ingress', 'chat').spec.rules[0].http.paths.some((p) => p.path.startsWith('/metrics')));
  });

  test('in-cluster addresses point at real Services; Redis persists to a volume claim', () => {
    const objs = render();
    const config = find(objs, 'ConfigMap', 'chat-config').data;
    const svcPort = (url) => {
      const u = new URL(url);
      const svc = find(objs, 'Service', u.hostname);
      assert.ok(svc.spec.ports.some((p) => p.port === Number(u.port)), `${url}: port`);
    };
    assert.equal(config.REDIS_URL, undefined, 'REDIS_URL carries a password: it is in Secret chat-redis');
    const redisUrl = yamlDocs(k8s('secret.example.yaml'))[k8s('secret.example.yaml')].find((d) => d.metadata.name === 'chat-redis').stringData['redis-url'];
    assert.equal(new URL(redisUrl).username, 'chat');
    svcPort(redisUrl);
    for (const name of ['web', 'gateway']) {
      const env = find(objs, 'Deployment', name).spec.template.spec.containers[0].env;
      assert.deepEqual(env.find((e) => e.name === 'REDIS_URL').valueFrom.secretKeyRef, { name: 'chat-redis', key: 'redis-url' }, name);
    }
    const redis = find(objs, 'StatefulSet', 'redis');
    assert.match(redis.spec.template.spec.containers[0].args.join(' '), /--appendonly yes/);
    const claim = redis.spec.volumeClaimTemplates[0].metadata.name;
    assert.ok(redis.spec.template.spec.containers[0].volumeMounts.some((m) => m.name === claim && m.mountPath === '/data'));
  });
});
