// Debian's nginx running the load balancer rules the project ships (deploy/nginx/chat.conf and
// websocket-map.conf), with upstreams pointing at this test's processes on loopback.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killedOnExit } from './children.mjs';
import { repoRoot } from './service.mjs';
import { freePort, until } from './net.mjs';

/** Starts nginx on a free port in front of `gateways` (["127.0.0.1:port", …]) and `web`. */
export async function startNginx({ gateways, web, port: fixedPort }) {
  const port = fixedPort ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-nginx-'));
  const shipped = path.join(repoRoot, 'deploy', 'nginx');
  const conf = `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${shipped}/websocket-map.conf;
  upstream chat_gateway { least_conn; ${gateways.map((g) => `server ${g} max_fails=1 fail_timeout=2s;`).join(' ')} }
  upstream chat_web { server ${web}; }
  server {
    listen 127.0.0.1:${port};
    include ${shipped}/chat.conf;
  }
}`;
  const file = path.join(dir, 'nginx.conf');
  fs.writeFileSync(file, conf);
  const nginx = process.env.NGINX_PATH ?? (fs.existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx');
  const proc = killedOnExit(spawn(nginx, ['-c', file, '-p', dir], { stdio: ['ignore', 'pipe', 'pipe'] }));
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
