// A development OpenID Connect provider for docker-compose (never for production).
//
// It is the `oidc-provider` package with the configuration the tests use too
// (configuration.mjs): one confidential client (chat-web) with the web
// service's two redirect URIs, PKCE required, and the package's development
// login form, where any login name signs in (the password is not checked).
// The account's `name`, `preferred_username` and `email` are made up from the
// login name.
//
// Settings (environment):
//   ISSUER           the issuer URL, exactly as browsers and chat-web reach it
//                    (default http://idp.localhost:9000)
//   PORT             listen port (default 9000), on HOST (default 0.0.0.0)
//   WEB_PUBLIC_URL   chat-web's PUBLIC_URL (default http://localhost:8080)
//   CLIENT_ID, CLIENT_SECRET   the client chat-web uses
//                    (defaults chat-web, dev-only-not-secret)
//
// Signing and cookie keys are made at start: restarting the provider signs
// everybody out of it (chat-web sessions live on in Redis).
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';
import { providerConfiguration } from './configuration.mjs';

const env = (name, fallback) => (process.env[name] ?? '').trim() || fallback;
const issuer = env('ISSUER', 'http://idp.localhost:9000');
const port = Number(env('PORT', '9000'));
const host = env('HOST', '0.0.0.0');
const webPublicUrl = env('WEB_PUBLIC_URL', 'http://localhost:8080').replace(/\/+$/, '');
const clientId = env('CLIENT_ID', 'chat-web');
const clientSecret = env('CLIENT_SECRET', 'dev-only-not-secret');

const provider = new Provider(issuer, providerConfiguration({
  webPublicUrl,
  clients: [{ id: clientId, secret: clientSecret }],
  profileOf: (id) => ({ name: id, preferred_username: id, email: `${id}@example.test` }),
  keyId: `dev-${crypto.randomUUID()}`,
}));
provider.on('server_error', (_ctx, err) => console.error('[dev-idp] server error:', err));

const server = http.createServer(provider.callback());
server.listen(port, host, () => {
  console.log(`[dev-idp] issuer ${issuer} listening on ${host}:${port}; client ${clientId} → ${webPublicUrl}`);
});

const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
