// The one OpenID Connect provider configuration of this project: the development provider of
// docker-compose (server.js) and the tests' provider (tests/support/oidc.mjs) both use it, so
// what the tests prove is what an operator's first `docker compose up` runs.
//
// Confidential clients (chat-web) with the web service's two redirect URIs, PKCE required, the
// `oidc-provider` package's development login form (any login name signs in, no password), no
// consent screen (chat-web is first-party), and RP-initiated logout.
import crypto from 'node:crypto';

/**
 * The `new Provider(issuer, configuration)` configuration:
 * - `webPublicUrl`: chat-web's PUBLIC_URL, whence the redirect URIs;
 * - `clients`: `[{ id, secret }]`, each with those redirect URIs;
 * - `profileOf(id)`: the account's `{ name, preferred_username, email }`;
 * - `keyId`: the `kid` of the signing key made at start;
 * - `claimsInIdToken`: also put the profile claims in the ID token (default: userinfo only, as a
 *   conforming provider does when it issues an access token);
 * - `sessionHours`: how long a session at the provider lasts.
 */
export function providerConfiguration({ webPublicUrl, clients, profileOf, keyId, claimsInIdToken = false, sessionHours = 8 }) {
  const signingKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const hours = sessionHours * 3600;
  return {
    clients: clients.map(({ id, secret }) => ({
      client_id: id,
      client_secret: secret,
      redirect_uris: [`${webPublicUrl}/authorization-code/callback`],
      post_logout_redirect_uris: [`${webPublicUrl}/`],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    jwks: { keys: [{ ...signingKey, kid: keyId, use: 'sig', alg: 'RS256' }] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    conformIdTokenClaims: !claimsInIdToken,
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
      const profile = profileOf(id);
      return {
        accountId: id,
        async claims() {
          return { sub: id, ...profile, email_verified: true };
        },
      };
    },
    ttl: { Session: hours, Interaction: 600, Grant: hours, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
  };
}
