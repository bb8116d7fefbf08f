// Builds a small nginx main configuration around the shipped routing rules
// (deploy/nginx/chat.conf and websocket-map.conf) with upstreams on loopback
// ports, for `nginx -t` here and for end-to-end tests that run the balancer
// as a plain foreground process (`nginx -p DIR -c DIR/nginx.conf -e DIR/error.log
// -g 'daemon off;'`).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const nginxDir = path.join(repoRoot, 'deploy', 'nginx');

/** The nginx binary: on PATH, or Debian's /usr/sbin/nginx (not on a user's PATH). */
export function nginxBinary() {
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
 * - `chatConf`: the routing rules to include (default: the shipped chat.conf).
 * Everything nginx writes (pid, logs, temp files) stays inside `dir`.
 */
export function writeNginxConfig({ dir, listen, gateways, webs, chatConf = path.join(nginxDir, 'chat.conf') }) {
  fs.mkdirSync(dir, { recursive: true });
  const upstreams = path.join(dir, 'upstreams.conf');
  fs.writeFileSync(
    upstreams,
    [
      'upstream chat_gateway {',
      '    least_conn;',
      ...gateways.map((a) => `    server ${a} max_fails=1 fail_timeout=5s;`),
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
