// A real OpenID Connect provider (the `oidc-provider` package) for tests, on a free loopback port,
// configured exactly as the development provider of docker-compose (deploy/dev-idp/configuration.mjs).
//
// One confidential client is registered for the web service under test; PKCE is required.
// Its development login form lets a test sign in as any account id: the account's
// `name`, `preferred_username` and `email` come from `accounts` (or are made up from the id).
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';
import { freePort } from './net.mjs';
import { providerConfiguration } from '../../deploy/dev-idp/configuration.mjs';

/**
 * Starts a provider. Options:
 * - `publicUrl`: the web service's PUBLIC_URL (redirect URIs are built from it);
 * - `clients`: extra clients, each `{ client_id, client_secret }` (same redirect URIs);
 * - `accounts`: `{ [id]: { name, preferred_username, email, groups } }`; `groups` (optional, a list
 *   of strings) is issued as the `groups` claim with the profile scope's claims (userinfo, or
 *   the ID token too with `claimsInIdToken`); an account without it gets no `groups` claim;
 * - `claimsInIdToken`: put the profile claims in the ID token too (default: userinfo only,
 *   as a conforming provider does when an access token is issued).
 * Returns { issuer, port, clientId, clientSecret, provider, stop(), start() }.
 */
export async function startOidcProvider({
  publicUrl,
  clientId = 'chat-web-test',
  clientSecret = crypto.randomBytes(24).toString('base64url'),
  clients = [],
  accounts = {},
  claimsInIdToken = false,
  port: fixedPort,
} = {}) {
  const port = fixedPort ?? (await freePort());
  const issuer = `http://127.0.0.1:${port}`;
  const configuration = providerConfiguration({
    webPublicUrl: publicUrl,
    clients: [{ id: clientId, secret: clientSecret }, ...clients.map((c) => ({ id: c.client_id, secret: c.client_secret }))],
    profileOf: (id) => {
      const profile = accounts[id] ?? {};
      return {
        name: profile.name ?? `User ${id}`,
        preferred_username: profile.preferred_username ?? id,
        email: profile.email ?? `${id}@example.test`,
        ...(Array.isArray(profile.groups) ? { groups: [...profile.groups] } : {}),
      };
    },
    keyId: `test-${port}`,
    claimsInIdToken,
    sessionHours: 1,
  });
  // The groups claim rides with the profile scope, which chat-web asks for by default.
  configuration.claims = { ...configuration.claims, profile: [...configuration.claims.profile, 'groups'] };
  const provider = new Provider(issuer, configuration);
  // Quiet: errors the tests provoke on purpose are expected.
  provider.on('server_error', (_ctx, err) => {
    if (process.env.CHAT_TEST_LOGS) console.error('[oidc-provider]', err);
  });

  let server = null;
  const idp = {
    issuer,
    port,
    clientId,
    clientSecret,
    provider,
    async start() {
      server = http.createServer(provider.callback());
      await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', resolve);
      });
    },
    async stop() {
      if (!server) return;
      const s = server;
      server = null;
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    },
  };
  await idp.start();
  return idp;
}

/**
 * Signs in at the provider as `account`, starting from the provider's authorization URL
 * (the Location the web service's /login answered). Uses its own cookie jar `jar` for the
 * provider's cookies. Resolves with the URL the provider sends the browser back to.
 */
export async function loginAtProvider(jar, authorizationUrl, account) {
  let url = authorizationUrl;
  for (let hop = 0; hop < 10; hop += 1) {
    const res = await jar.fetch(url);
    if (res.status >= 300 && res.status < 400) {
      const next = new URL(res.headers.get('location'), url).toString();
      if (!next.startsWith(new URL(authorizationUrl).origin)) return next;
      url = next;
      continue;
    }
    const html = await res.text();
    if (res.status !== 200 || !html.includes('name="login"')) {
      throw new Error(`unexpected provider page ${res.status} at ${url}: ${html.slice(0, 500)}`);
    }
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    if (!action) throw new Error('no login form action');
    const post = await jar.fetch(new URL(action, url).toString(), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ prompt: 'login', login: account, password: 'x' }).toString(),
    });
    if (post.status < 300 || post.status >= 400) throw new Error(`login form answered ${post.status}`);
    url = new URL(post.headers.get('location'), url).toString();
  }
  throw new Error('too many redirects at the provider');
}
