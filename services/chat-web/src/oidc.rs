//! The identity provider, spoken to with OpenID Connect's Authorization Code
//! flow (with PKCE, `state` and `nonce`) through the `openidconnect` crate.
//!
//! Discovery is lazy and cached: the service starts while the provider is
//! away, and `/login` says so clearly until it is back. The provider's signing
//! keys come with discovery and `openidconnect` never refreshes them, so an
//! ID token signed with an unknown `kid` triggers one re-discovery, at most
//! once per [`REDISCOVER_MIN_INTERVAL`]. The HTTP client follows no redirects
//! (a discovery document must not be able to point us anywhere else).
//!
//! A provider that accepts connections and never answers must not hold a
//! user's request: every call (discovery, JWKS, token, userinfo) has a
//! connect and a total timeout of `OIDC_HTTP_TIMEOUT_S`, and all the calls
//! one request makes share one deadline of that length, so the user gets the
//! "cannot be reached" page within it.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use chat_core::{DisplayName, UserId};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken,
    EndSessionUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadataWithLogout,
    RedirectUrl, Scope, SignatureVerificationError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use url::Url;

use crate::config::Config;
use chat_telemetry::cause_chain;

/// Shortest time between two re-discoveries caused by an unknown signing key.
pub const REDISCOVER_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// How long discovered metadata is used before it is fetched again.
pub const METADATA_MAX_AGE: Duration = Duration::from_secs(3600);
/// How long a started login may take at the provider.
pub const LOGIN_MAX_AGE_S: u64 = 600;

/// The provider's discovery document, with its end-session endpoint.
pub type Metadata = ProviderMetadataWithLogout;
type OidcClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a login did not complete. Each says what the user can do.
#[derive(Debug, Error)]
pub enum LoginError {
    /// Discovery failed: the provider is down or misconfigured.
    #[error("identity provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// The provider answered the authorization request with an error.
    #[error("identity provider refused the sign-in: {0}")]
    ProviderRefused(String),
    /// No login was started in this browser session (or it was already used).
    #[error("no login in progress for this session")]
    NoPendingLogin,
    /// The login started too long ago.
    #[error("login started too long ago")]
    Expired,
    /// The callback's `state` is not the one this session sent.
    #[error("state does not match")]
    StateMismatch,
    /// The callback's `iss` is not the configured provider (mix-up attack).
    #[error("callback issuer {0:?} is not the configured provider")]
    IssuerMismatch(String),
    /// The callback has no `code`.
    #[error("callback without a code")]
    MissingCode,
    /// The provider refused to exchange the code.
    #[error("code exchange refused: {0}")]
    CodeRefused(String),
    /// The token endpoint could not be reached.
    #[error("code exchange failed: {0}")]
    CodeExchange(String),
    /// The token response had no ID token.
    #[error("token response without an ID token")]
    NoIdToken,
    /// The ID token did not verify (issuer, audience, expiry, signature, nonce, at_hash).
    #[error("ID token rejected: {0}")]
    IdToken(String),
}

impl LoginError {
    /// The HTTP status of the error page.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::ProviderUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::CodeExchange(_) | Self::NoIdToken => StatusCode::BAD_GATEWAY,
            Self::ProviderRefused(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The sentence shown on the error page.
    pub fn user_message(&self) -> String {
        match self {
            Self::ProviderUnavailable(_) => {
                "The sign-in service (identity provider) cannot be reached right now. Please try again in a few minutes.".into()
            }
            Self::ProviderRefused(code) => {
                format!("The identity provider did not sign you in ({code}). You can start again from the home page.")
            }
            Self::NoPendingLogin | Self::Expired => {
                "This sign-in link has expired or was already used. Please start again from the home page.".into()
            }
            Self::CodeExchange(_) | Self::NoIdToken => {
                "The identity provider could not complete the sign-in. Please try again.".into()
            }
            Self::StateMismatch
            | Self::IssuerMismatch(_)
            | Self::MissingCode
            | Self::CodeRefused(_)
            | Self::IdToken(_) => {
                "The sign-in answer could not be verified, so you were not signed in. Please start again from the home page.".into()
            }
        }
    }

    /// The `outcome` label of the logins counter.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::ProviderUnavailable(_) => "provider_unavailable",
            Self::ProviderRefused(_) => "provider_refused",
            Self::NoPendingLogin => "no_pending_login",
            Self::Expired => "expired",
            Self::StateMismatch => "state_mismatch",
            Self::IssuerMismatch(_) => "issuer_mismatch",
            Self::MissingCode => "missing_code",
            Self::CodeRefused(_) => "code_refused",
            Self::CodeExchange(_) => "code_exchange_failed",
            Self::NoIdToken => "no_id_token",
            Self::IdToken(_) => "id_token_invalid",
        }
    }
}

/// What a started login must remember until the callback: sealed in a
/// cookie of the browser that started it ([`crate::login_cookie`]), used once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` sent to the provider.
    pub nonce: String,
    /// The PKCE verifier whose challenge was sent.
    pub pkce_verifier: String,
    /// The local path to return to.
    pub next: String,
    /// When the login started, seconds since the epoch.
    pub started_at: u64,
}

/// Who signed in.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The provider's stable `sub`.
    pub sub: UserId,
    /// A display name from the ID token or userinfo, sanitized.
    pub name: DisplayName,
    /// The raw ID token, kept for `id_token_hint` at logout.
    pub id_token: String,
    /// The user's groups (`OIDC_GROUPS_CLAIM`, from the ID token or else
    /// userinfo); none when the provider sends no such claim.
    pub groups: Vec<String>,
}

struct Discovered {
    metadata: Arc<Metadata>,
    at: Instant,
}

/// The configured identity provider.
pub struct IdentityProvider {
    http: reqwest::Client,
    timeout: Duration,
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect: RedirectUrl,
    scopes: Vec<String>,
    groups_claim: String,
    cached: RwLock<Option<Discovered>>,
    discovering: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("issuer", &self.issuer.as_str())
            .finish_non_exhaustive()
    }
}

impl IdentityProvider {
    /// A provider from the settings. Nothing is fetched yet.
    pub fn new(config: &Config) -> Result<Self, String> {
        let oidc = config.oidc().map_err(|e| e.to_string())?;
        let timeout = config.oidc_http_timeout;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| format!("could not build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            timeout,
            issuer: IssuerUrl::new(oidc.issuer.clone())
                .map_err(|e| format!("OIDC_ISSUER is invalid: {e}"))?,
            client_id: ClientId::new(oidc.client_id.clone()),
            client_secret: ClientSecret::new(oidc.client_secret.clone()),
            redirect: RedirectUrl::new(config.redirect_uri())
                .map_err(|e| format!("PUBLIC_URL is invalid: {e}"))?,
            scopes: oidc.scopes.clone(),
            groups_claim: config.groups_claim.clone(),
            cached: RwLock::new(None),
            discovering: tokio::sync::Mutex::new(()),
        })
    }

    /// The configured issuer URL.
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// When the provider calls of a request that starts now must be done.
    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + self.timeout
    }

    /// Runs `call` (to the provider's `what`) unless `deadline` passes first,
    /// in which case the provider counts as unreachable.
    async fn before<T>(
        &self,
        deadline: tokio::time::Instant,
        what: &str,
        call: impl Future<Output = Result<T, LoginError>>,
    ) -> Result<T, LoginError> {
        tokio::time::timeout_at(deadline, call)
            .await
            .unwrap_or_else(|_| {
                Err(LoginError::ProviderUnavailable(format!(
                    "no answer from {what} within {} s (OIDC_HTTP_TIMEOUT_S)",
                    self.timeout.as_secs()
                )))
            })
    }

    fn cached(&self) -> Option<(Arc<Metadata>, Instant)> {
        let guard = self.cached.read().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().map(|d| (d.metadata.clone(), d.at))
    }

    /// The cached metadata if any, without fetching.
    pub fn cached_metadata(&self) -> Option<Arc<Metadata>> {
        self.cached().map(|(m, _)| m)
    }

    /// The provider's metadata: cached, or discovered now (before `deadline`).
    pub async fn metadata(
        &self,
        deadline: tokio::time::Instant,
    ) -> Result<Arc<Metadata>, LoginError> {
        match self.cached() {
            Some((metadata, at)) if at.elapsed() < METADATA_MAX_AGE => Ok(metadata),
            stale => match self
                .before(deadline, "discovery", self.discover(|_| true))
                .await
            {
                Ok(fresh) => Ok(fresh),
                // Keep working on old metadata while the provider is briefly away.
                Err(e) => stale.map(|(m, _)| m).ok_or(e),
            },
        }
    }

    /// Fetches the discovery document (and with it the signing keys) if
    /// `wanted` says the cached copy, discovered at the given instant, should
    /// be replaced. One discovery at a time.
    async fn discover(
        &self,
        wanted: impl Fn(Instant) -> bool,
    ) -> Result<Arc<Metadata>, LoginError> {
        let _one_at_a_time = self.discovering.lock().await;
        if let Some((metadata, at)) = self.cached()
            && !wanted(at)
        {
            return Ok(metadata);
        }
        let metadata = Metadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| LoginError::ProviderUnavailable(cause_chain(&e)))?;
        let metadata = Arc::new(metadata);
        tracing::info!(
            issuer = self.issuer.as_str(),
            "discovered the identity provider"
        );
        *self.cached.write().unwrap_or_else(|p| p.into_inner()) = Some(Discovered {
            metadata: metadata.clone(),
            at: Instant::now(),
        });
        Ok(metadata)
    }

    fn client(&self, metadata: &Metadata) -> OidcClient {
        CoreClient::from_provider_metadata(
            metadata.clone(),
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Starts a login: the provider URL to send the browser to, and what the
    /// session must remember until the callback.
    pub async fn begin(&self, next: String, now: u64) -> Result<(Url, PendingLogin), LoginError> {
        let deadline = self.deadline();
        let metadata = self.metadata(deadline).await?;
        let client = self.client(&metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        let pending = PendingLogin {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            next,
            started_at: now,
        };
        Ok((url, pending))
    }

    /// Checks the callback's `iss` parameter (RFC 9207) when the provider sends one.
    pub fn check_callback_issuer(&self, iss: Option<&str>) -> Result<(), LoginError> {
        match iss {
            Some(iss) if iss != self.issuer.as_str() => {
                Err(LoginError::IssuerMismatch(iss.to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// Completes a login: exchanges `code` (with the PKCE verifier), verifies
    /// the ID token and finds a display name.
    pub async fn finish(
        &self,
        pending: &PendingLogin,
        code: String,
    ) -> Result<Identity, LoginError> {
        let deadline = self.deadline();
        let metadata = self.metadata(deadline).await?;
        let mut client = self.client(&metadata);
        let exchange = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| LoginError::CodeExchange(cause_chain(&e)))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
        let response: CoreTokenResponse = self
            .before(deadline, "the token endpoint", async {
                exchange
                    .request_async(&self.http)
                    .await
                    .map_err(token_error)
            })
            .await?;
        let id_token = response.id_token().ok_or(LoginError::NoIdToken)?;
        let nonce = Nonce::new(pending.nonce.clone());

        let claims = match verify(&client, id_token, &nonce, response.access_token()) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys since we discovered it.
                tracing::info!(
                    "ID token signed with an unknown key; discovering the provider again"
                );
                let fresh = self
                    .before(
                        deadline,
                        "discovery",
                        self.discover(|at| at.elapsed() >= REDISCOVER_MIN_INTERVAL),
                    )
                    .await?;
                client = self.client(&fresh);
                verify(&client, id_token, &nonce, response.access_token())
            }
            other => other,
        }
        .map_err(|e| LoginError::IdToken(cause_chain(&e)))?;

        let sub = UserId::parse(claims.subject().as_str())
            .map_err(|e| LoginError::IdToken(e.to_string()))?;
        let mut names = Names::from_id_token(&claims);
        if names.name.is_none() && names.username.is_none() {
            let user_info = self.user_info(&client, &response, &claims);
            match tokio::time::timeout_at(deadline, user_info)
                .await
                .unwrap_or_else(|_| Err("no answer in time".into()))
            {
                Ok(info) => names = names.or(Names::from_user_info(&info)),
                Err(e) => {
                    tracing::warn!(error = %e, "userinfo failed; using the ID token's claims only")
                }
            }
        }
        let raw = names
            .name
            .clone()
            .or(names.username.clone())
            .or(names.email.clone())
            .unwrap_or_default();
        let fallback = names
            .username
            .or(names.email)
            .unwrap_or_else(|| sub.as_str().to_owned());
        let id_token = id_token.to_string();
        // The ID token was verified above: its payload's claims are the
        // provider's word. Where it lists no groups, userinfo may.
        let mut groups = groups_in(&token_payload(&id_token), &self.groups_claim);
        if groups.is_none()
            && let Some(endpoint) = metadata.userinfo_endpoint()
        {
            let info = self.raw_user_info(endpoint.url().clone(), response.access_token());
            match tokio::time::timeout_at(deadline, info).await {
                Ok(Ok(info)) => groups = groups_in(&info, &self.groups_claim),
                Ok(Err(e)) => tracing::warn!(error = %e, "userinfo for groups failed"),
                Err(_) => tracing::warn!("userinfo for groups: no answer in time"),
            }
        }
        Ok(Identity {
            name: DisplayName::sanitize(&raw, &fallback),
            sub,
            id_token,
            groups: groups.unwrap_or_default(),
        })
    }

    /// Userinfo's claims as JSON.
    async fn raw_user_info(
        &self,
        endpoint: url::Url,
        token: &openidconnect::AccessToken,
    ) -> Result<serde_json::Value, String> {
        let response = self
            .http
            .get(endpoint)
            .bearer_auth(token.secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| cause_chain(&e))?
            .error_for_status()
            .map_err(|e| cause_chain(&e))?;
        response.json().await.map_err(|e| cause_chain(&e))
    }

    async fn user_info(
        &self,
        client: &OidcClient,
        response: &CoreTokenResponse,
        claims: &CoreIdTokenClaims,
    ) -> Result<CoreUserInfoClaims, String> {
        let request = client
            .user_info(
                response.access_token().clone(),
                Some(claims.subject().clone()),
            )
            .map_err(|e| e.to_string())?;
        request
            .request_async(&self.http)
            .await
            .map_err(|e| cause_chain(&e))
    }

    /// Where to send the browser at logout: the provider's end-session
    /// endpoint with `id_token_hint` and `post_logout_redirect_uri`, or `None`
    /// when the provider has none (or cannot be reached).
    pub async fn end_session_url(
        &self,
        id_token: Option<&str>,
        post_logout_redirect_uri: &str,
    ) -> Option<Url> {
        let metadata = match self.metadata(self.deadline()).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "no provider logout: discovery failed");
                return None;
            }
        };
        let endpoint: EndSessionUrl = metadata
            .additional_metadata()
            .end_session_endpoint
            .clone()?;
        let mut request =
            openidconnect::LogoutRequest::from(endpoint).set_client_id(self.client_id.clone());
        if let Ok(uri) =
            openidconnect::PostLogoutRedirectUrl::new(post_logout_redirect_uri.to_owned())
        {
            request = request.set_post_logout_redirect_uri(uri);
        }
        if let Some(token) = id_token.and_then(|t| t.parse::<CoreIdToken>().ok()) {
            request = request.set_id_token_hint(&token);
        }
        Some(request.http_get_url())
    }
}

/// What a failed code exchange means: refused by the provider, the provider
/// unreachable (no connection, no answer in time), or a broken answer.
fn token_error(
    error: openidconnect::RequestTokenError<
        openidconnect::HttpClientError<reqwest::Error>,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> LoginError {
    use openidconnect::{HttpClientError, RequestTokenError};
    match error {
        RequestTokenError::ServerResponse(r) => LoginError::CodeRefused(r.to_string()),
        RequestTokenError::Request(HttpClientError::Reqwest(e))
            if e.is_timeout() || e.is_connect() =>
        {
            LoginError::ProviderUnavailable(format!("token endpoint: {}", cause_chain(&*e)))
        }
        other => LoginError::CodeExchange(cause_chain(&other)),
    }
}

/// Verifies the ID token's signature, issuer, audience, expiry and nonce, and
/// its `at_hash` when present.
fn verify(
    client: &OidcClient,
    id_token: &CoreIdToken,
    nonce: &Nonce,
    access_token: &openidconnect::AccessToken,
) -> Result<CoreIdTokenClaims, ClaimsVerificationError> {
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, nonce)?.clone();
    if let Some(expected) = claims.access_token_hash() {
        let alg = id_token
            .signing_alg()
            .map_err(ClaimsVerificationError::SignatureVerification)?;
        let key = id_token
            .signing_key(&verifier)
            .map_err(ClaimsVerificationError::SignatureVerification)?;
        let actual = AccessTokenHash::from_token(access_token, alg, key)
            .map_err(|e| ClaimsVerificationError::Other(format!("at_hash: {e}")))?;
        if actual != *expected {
            return Err(ClaimsVerificationError::Other(
                "at_hash does not match the access token".into(),
            ));
        }
    }
    Ok(claims)
}

#[derive(Default)]
struct Names {
    name: Option<String>,
    username: Option<String>,
    email: Option<String>,
}

/// The names a set of claims gives: ID token and UserInfo claims have the
/// same accessors but no common type.
macro_rules! names_of {
    ($claims:expr) => {
        Names {
            name: $claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
            username: $claims.preferred_username().map(|u| u.as_str().to_owned()),
            email: $claims.email().map(|e| e.as_str().to_owned()),
        }
    };
}

impl Names {
    fn from_id_token(claims: &CoreIdTokenClaims) -> Self {
        names_of!(claims)
    }

    fn from_user_info(claims: &CoreUserInfoClaims) -> Self {
        names_of!(claims)
    }

    fn or(self, other: Self) -> Self {
        Self {
            name: self.name.or(other.name),
            username: self.username.or(other.username),
            email: self.email.or(other.email),
        }
    }
}

/// The claims of a (verified) JWT, as JSON; `null` when it cannot be read.
fn token_payload(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    jwt.split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The groups `claim` lists in `claims`: a list of strings, or one string.
/// `None` when the claim is absent.
fn groups_in(claims: &serde_json::Value, claim: &str) -> Option<Vec<String>> {
    let groups = match claims.get(claim)? {
        serde_json::Value::String(one) => vec![one.clone()],
        serde_json::Value::Array(many) => many
            .iter()
            .filter_map(|g| g.as_str().map(str::to_owned))
            .collect(),
        _ => return None,
    };
    Some(groups)
}

#[cfg(test)]
mod groups_tests {
    use super::*;

    #[test]
    fn groups_come_as_a_list_or_one_string_and_only_from_their_claim() {
        let claims = serde_json::json!({ "groups": ["eng", 3, "ops"], "team": "design" });
        assert_eq!(
            groups_in(&claims, "groups"),
            Some(vec!["eng".into(), "ops".into()])
        );
        assert_eq!(groups_in(&claims, "team"), Some(vec!["design".into()]));
        assert_eq!(groups_in(&claims, "roles"), None);
        use base64::Engine as _;
        let payload =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"groups":["a"]}"#);
        let read = token_payload(&format!("h.{payload}.s"));
        assert_eq!(groups_in(&read, "groups"), Some(vec!["a".into()]));
        assert_eq!(token_payload("garbage"), serde_json::Value::Null);
    }
}
