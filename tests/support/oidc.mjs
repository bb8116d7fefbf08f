// A real OpenID Connect provider (the `oidc-provider` package) for tests, on a free loopback port.
//
// One confidential client is registered for the web service under test; PKCE is required.
// Its development login form lets a test sign in as any account id: the account's
// `name`, `preferred_username` and `email` come from `accounts` (or are made up from the id).
import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';
import { freePort } from './net.mjs';

/**
 * Starts a provider. Options:
 * - `publicUrl`: the web service's PUBLIC_URL (redirect URIs are built from it);
 * - `clients`: extra clients, each `{ client_id, client_secret }` (same redirect URIs);
 * - `accounts`: `{ [id]: { name, preferred_username, email } }`;
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
  const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const client = (id, secret) => ({
    client_id: id,
    client_secret: secret,
    redirect_uris: [`${publicUrl}/authorization-code/callback`],
    post_logout_redirect_uris: [`${publicUrl}/`],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  });
  const provider = new Provider(issuer, {
    clients: [client(clientId, clientSecret), ...clients.map((c) => client(c.client_id, c.client_secret))],
    jwks: { keys: [{ ...signingKey, kid: `test-${port}`, use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    conformIdTokenClaims: !claimsInIdToken,
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    // No consent screen: the test client is first-party.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid profile email');
      grant.addOIDCClaims(['name', 'preferred_username', 'email', 'email_verified']);
      await grant.save();
      return grant;
    },
    async findAccount(_ctx, id) {
      const profile = accounts[id] ?? {};
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            name: profile.name ?? `User ${id}`,
            preferred_username: profile.preferred_username ?? id,
            email: profile.email ?? `${id}@example.test`,
            email_verified: true,
          };
        },
      };
    },
    ttl: { Session: 3600, Interaction: 600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
  });
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
