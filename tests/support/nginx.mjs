// The one nginx configuration builder of the tests: a small main configuration around the load
// balancer rules the project ships (deploy/nginx/chat.conf and websocket-map.conf), with upstreams
// on loopback ports. `nginx -t` checks it (tests/deploy), and `startNginx` runs Debian's nginx with
// it in front of a test's own processes.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killedOnExit } from './children.mjs';
import { repoRoot } from './service.mjs';
import { freePort, until } from './net.mjs';

/** The shipped nginx rules. */
export const nginxDir = path.join(repoRoot, 'deploy', 'nginx');

/** The nginx binary: $NGINX_PATH, on PATH, or Debian's /usr/sbin/nginx (not on a user's PATH). */
export function nginxBinary() {
  if (process.env.NGINX_PATH) return process.env.NGINX_PATH;
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    const candidate = path.join(dir || '.', 'nginx');
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // next
    }
  }
  return null;
}

/**
 * Writes `dir`/nginx.conf and `dir`/upstreams.conf and returns the main file's path.
 * - `listen`: a port number or `host:port` for the server block;
 * - `gateways`, `webs`: lists of `host:port` for `chat_gateway` and `chat_web`;
 * - `failTimeoutS`: how long a gateway that failed is left out (`fail_timeout`);
 * - `chatConf`: the routing rules to include (default: the shipped chat.conf).
 * Everything nginx writes (pid, logs, temp files) stays inside `dir`; run it with
 * `-g 'daemon off;'` to keep it in the foreground.
 */
export function writeNginxConfig({ dir, listen, gateways, webs, failTimeoutS = 5, chatConf = path.join(nginxDir, 'chat.conf') }) {
  fs.mkdirSync(dir, { recursive: true });
  const upstreams = path.join(dir, 'upstreams.conf');
  fs.writeFileSync(
    upstreams,
    [
      'upstream chat_gateway {',
      '    least_conn;',
      ...gateways.map((a) => `    server ${a} max_fails=1 fail_timeout=${failTimeoutS}s;`),
      '}',
      'upstream chat_web {',
      ...webs.map((a) => `    server ${a};`),
      '}',
      '',
    ].join('\n'),
  );
  const main = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    main,
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    include ${path.join(nginxDir, 'websocket-map.conf')};
    include ${upstreams};
    server {
        listen ${listen};
        include ${chatConf};
    }
}
`,
  );
  return main;
}

/** Starts nginx on a free port in front of `gateways` (["127.0.0.1:port", …]) and `web`. */
export async function startNginx({ gateways, web, port: fixedPort }) {
  const port = fixedPort ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-nginx-'));
  const file = writeNginxConfig({ dir, listen: `127.0.0.1:${port}`, gateways, webs: [web], failTimeoutS: 2 });
  const proc = killedOnExit(spawn(nginxBinary() ?? 'nginx', ['-c', file, '-p', dir, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((r) => proc.once('exit', r));
  const base = `http://127.0.0.1:${port}`;
  await until(`nginx on ${port}`, async () => {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${output}`);
    return (await fetch(`${base}/healthz`)).ok;
  });
  return {
    base,
    port,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}
