// A development OpenID Connect provider for docker-compose (never for production).
//
// It is the `oidc-provider` package configured like tests/support/oidc.mjs:
// one confidential client (chat-web) with the web service's two redirect URIs,
// PKCE required, and the package's development login form, where any login
// name signs in (the password is not checked). The account's `name`,
// `preferred_username` and `email` are made up from the login name.
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

const env = (name, fallback) => (process.env[name] ?? '').trim() || fallback;
const issuer = env('ISSUER', 'http://idp.localhost:9000');
const port = Number(env('PORT', '9000'));
const host = env('HOST', '0.0.0.0');
const webPublicUrl = env('WEB_PUBLIC_URL', 'http://localhost:8080').replace(/\/+$/, '');
const clientId = env('CLIENT_ID', 'chat-web');
const clientSecret = env('CLIENT_SECRET', 'dev-only-not-secret');

const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: [`${webPublicUrl}/authorization-code/callback`],
      post_logout_redirect_uris: [`${webPublicUrl}/`],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [{ ...signingKey, kid: `dev-${crypto.randomUUID()}`, use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  features: {
    // The development login form: any login name, no password check.
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  // No consent screen: chat-web is first-party.
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
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          name: id,
          preferred_username: id,
          email: `${id}@example.test`,
          email_verified: true,
        };
      },
    };
  },
  ttl: { Session: 8 * 3600, Interaction: 600, Grant: 8 * 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
});
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
