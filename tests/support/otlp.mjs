// A real OTLP/HTTP receiver (JSON encoding) on loopback: it collects every span the services export.
import http from 'node:http';
import { freePort } from './net.mjs';

/** Starts the receiver. Returns { endpoint, spans(), stop() }; each span has its resource attributes in `resource`. */
export async function startOtlpReceiver() {
  const port = await freePort();
  const spans = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces') {
        try {
          const doc = JSON.parse(body);
          for (const rs of doc.resourceSpans ?? []) {
            const resource = attributes(rs.resource?.attributes);
            for (const ss of rs.scopeSpans ?? []) {
              for (const span of ss.spans ?? []) spans.push({ ...span, attrs: attributes(span.attributes), resource });
            }
          }
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{}');
        } catch (e) {
          res.writeHead(400);
          res.end(String(e));
        }
        return;
      }
      res.writeHead(404);
      res.end();
    });
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans: () => spans,
    stop: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }),
  };
}

/** OTLP key/value list → plain object. */
export function attributes(list = []) {
  const out = {};
  for (const { key, value } of list) {
    out[key] = value?.stringValue ?? value?.intValue ?? value?.boolValue ?? value?.doubleValue ?? JSON.stringify(value);
  }
  return out;
}
