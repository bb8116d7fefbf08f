//! Browser sessions, kept in Redis through `tower-sessions` and
//! `tower-sessions-redis-store`.
//!
//! The cookie is `HttpOnly`, `SameSite=Lax` (so it comes back on the
//! redirect from the identity provider) and `Secure` when `PUBLIC_URL` is
//! https. Its id is cycled at login (no fixation). Nothing is stored before
//! a sign-in completes: the login in progress is a cookie of its own
//! ([`crate::login_cookie`]). `tower-sessions` only has
//! an idle expiry counted from the last write, so the session also stores
//! when the user logged in and when they were last seen, and both limits are
//! enforced here; `last_seen` is written at most once a minute.
//!
//! Key names: `tower-sessions-redis-store` stores each session under its bare
//! id (22 base64url characters) and has no prefix option, so session keys do
//! not live under `chat:session:`; nothing else in the schema has that shape.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use tower_sessions::SessionStore;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, Session, SessionManagerLayer};

use crate::config::Config;
use crate::error::{ApiError, ApiErrorCode, AppError};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "chat_session";
/// Where the signed-in user is kept in the session.
pub const USER_KEY: &str = "user";
/// How often `last_seen` is written back (each write extends the idle expiry).
pub const TOUCH_EVERY_S: u64 = 60;

/// The session layer over `store`: Redis in production (a client built with
/// a reconnect policy and command timeouts by `chat-store`), memory in the
/// single-process mode.
pub fn layer<S: SessionStore + Clone>(store: S, config: &Config) -> SessionManagerLayer<S> {
    let idle = time::Duration::try_from(config.session_idle).unwrap_or(time::Duration::HOUR);
    SessionManagerLayer::new(store)
        .with_name(COOKIE_NAME)
        .with_path("/")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(config.secure_cookies())
        .with_expiry(Expiry::OnInactivity(idle))
}

/// The signed-in user, as the session holds them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionUser {
    /// The identity provider's `sub`.
    pub sub: String,
    /// Display name (sanitized).
    pub name: String,
    /// Opaque id of this web session, put in room tokens and revoked at logout.
    pub sid: String,
    /// The CSRF token embedded in this session's forms.
    pub csrf: String,
    /// Login time, seconds since the epoch.
    pub login_at: u64,
    /// Last request, seconds since the epoch (to a minute).
    pub last_seen: u64,
    /// The ID token, for `id_token_hint` at logout.
    pub id_token: String,
    /// The identity provider's groups at sign-in (`OIDC_GROUPS_CLAIM`);
    /// none in a session signed in before groups were read.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// Signs `sub` in on `session` under a fresh session id (no fixation: any
/// id the browser had before, possibly planted, is worthless now).
pub async fn sign_in(
    session: &Session,
    sub: &str,
    name: &str,
    id_token: String,
    groups: Vec<String>,
) -> Result<SessionUser, AppError> {
    session.cycle_id().await?;
    let now = now();
    let user = SessionUser {
        sub: sub.to_owned(),
        name: name.to_owned(),
        sid: random_token(),
        csrf: random_token(),
        login_at: now,
        last_seen: now,
        id_token,
        groups,
    };
    session.insert(USER_KEY, &user).await?;
    session.save().await?;
    Ok(user)
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 32 random bytes from the OS, base64url: for sids and CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The signed-in user of `session`, if any, after enforcing the idle and
/// absolute limits (an expired session is destroyed).
pub async fn current_user(
    session: &Session,
    config: &Config,
    now: u64,
) -> Result<Option<SessionUser>, AppError> {
    let Some(mut user) = session.get::<SessionUser>(USER_KEY).await? else {
        return Ok(None);
    };
    let too_old = now
        >= user
            .login_at
            .saturating_add(config.session_max_age.as_secs());
    let idle = now >= user.last_seen.saturating_add(config.session_idle.as_secs());
    if too_old || idle {
        tracing::info!(sub = %user.sub, too_old, idle, "session expired");
        session.flush().await?;
        return Ok(None);
    }
    if now >= user.last_seen + TOUCH_EVERY_S {
        user.last_seen = now;
        session.insert(USER_KEY, &user).await?;
        session.save().await?;
    }
    Ok(Some(user))
}

/// The request's signed-in user, if any: what both extractors below read.
async fn signed_in<S>(parts: &mut Parts, state: &S) -> Result<Option<SessionUser>, AppError>
where
    S: Send + Sync,
    Arc<Config>: FromRef<S>,
{
    let config = Arc::<Config>::from_ref(state);
    let session = Session::from_request_parts(parts, state)
        .await
        .map_err(|_| AppError::Internal("session layer missing".into()))?;
    current_user(&session, &config, now()).await
}

/// A signed-in user, for pages: without one the browser goes to
/// `/login?next=<this page>`.
#[derive(Debug)]
pub struct PageUser(pub SessionUser);

/// Why a page could not get its user.
#[derive(Debug)]
pub enum PageRejection {
    /// Not signed in: go to this login URL.
    Login(String),
    /// The session could not be read.
    Error(AppError),
}

impl IntoResponse for PageRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Login(to) => Redirect::to(&to).into_response(),
            Self::Error(e) => e.into_response(),
        }
    }
}

impl<S> FromRequestParts<S> for PageUser
where
    S: Send + Sync,
    Arc<Config>: FromRef<S>,
{
    type Rejection = PageRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match signed_in(parts, state)
            .await
            .map_err(PageRejection::Error)?
        {
            Some(user) => Ok(Self(user)),
            None => {
                let uri = parts
                    .extensions
                    .get::<OriginalUri>()
                    .map(|u| u.0.clone())
                    .unwrap_or_else(|| parts.uri.clone());
                let here = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                Err(PageRejection::Login(format!(
                    "/login?next={}",
                    urlencode(here)
                )))
            }
        }
    }
}

/// A signed-in user, for the JSON API: without one the answer is 401 JSON.
#[derive(Debug)]
pub struct ApiUser(pub SessionUser);

impl<S> FromRequestParts<S> for ApiUser
where
    S: Send + Sync,
    Arc<Config>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match signed_in(parts, state).await? {
            Some(user) => Ok(Self(user)),
            None => Err(ApiError::new(ApiErrorCode::LoginRequired)),
        }
    }
}

/// What [`urlencode`] leaves as it is: letters, digits, `-`, `_`, `.`,
/// `~` (RFC 3986's unreserved characters) and `/`, so paths stay readable.
const KEPT_IN_NEXT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes everything but unreserved characters and `/`.
pub fn urlencode(text: &str) -> String {
    utf8_percent_encode(text, KEPT_IN_NEXT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn urlencode_keeps_paths_readable() {
        assert_eq!(
            urlencode("/chat/General?x=1&y"),
            "/chat/General%3Fx%3D1%26y"
        );
        assert_eq!(urlencode("/a~b c/é"), "/a~b%20c/%C3%A9");
    }
}
