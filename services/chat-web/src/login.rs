//! `GET /login` and the OIDC redirect URI `GET /authorization-code/callback`.
//!
//! `/login` remembers a [`PendingLogin`] in the (pre-login) session and sends
//! the browser to the provider. The callback uses it once: it checks `state`
//! (in constant time), the age of the login and the `iss` parameter, lets
//! [`IdentityProvider::finish`] exchange the code and verify the ID token,
//! then cycles the session id and stores the user. Any failure shows an error
//! page and leaves no signed-in session behind.
//!
//! The pre-login session expires [`LOGIN_MAX_AGE_S`] after `/login`; the
//! signed-in one gets the normal idle expiry. Both routes spend the login
//! budget of [`crate::rate_limit`] first.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::{Expiry, Session};

use crate::error::AppError;
use crate::oidc::{LOGIN_MAX_AGE_S, LoginError, PendingLogin};
use crate::session::{self, LOGIN_KEY, SessionUser, USER_KEY};
use crate::startup::AppState;

/// Where a login without `next` ends up.
pub const DEFAULT_NEXT: &str = "/dashboard";

/// `?next=`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// `next` if it is a path on this site, else `None`: no scheme, no host, no
/// `//` or backslash tricks, no control characters.
pub fn local_path(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 1024
        && !next.chars().any(|c| c.is_control() || c.is_whitespace())
        && !next.to_ascii_lowercase().contains("%5c");
    ok.then_some(next)
}

/// The OIDC sign-in routes: `/login` and the redirect URI.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/login", axum::routing::get(start))
        .route("/authorization-code/callback", axum::routing::get(callback))
}

/// `GET /login`: sends the browser to the identity provider.
pub async fn start(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let next = query
        .next
        .as_deref()
        .and_then(local_path)
        .unwrap_or(DEFAULT_NEXT)
        .to_owned();
    if session::current_user(&session, &state.config, session::now())
        .await?
        .is_some()
    {
        return Ok(Redirect::to(&next).into_response());
    }
    let (url, pending) = state
        .provider()?
        .begin(next, session::now())
        .await
        .inspect_err(|e| count(e.outcome()))?;
    // A pending login lives only as long as it may take (an anonymous flood
    // of /login leaves keys that expire within minutes, not the session idle
    // time). The callback's request gets the layer's normal expiry again.
    session.set_expiry(Some(Expiry::OnInactivity(time::Duration::seconds(
        LOGIN_MAX_AGE_S as i64,
    ))));
    session.insert(LOGIN_KEY, &pending).await?;
    // Save now, so a Redis failure shows the 503 page instead of an empty 500.
    session.save().await?;
    Ok(Redirect::to(url.as_str()).into_response())
}

/// What the provider sends back.
#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// `GET /authorization-code/callback`: completes the login.
#[tracing::instrument(name = "login callback", skip_all, fields(otel.kind = "internal"))]
pub async fn callback(
    State(state): State<AppState>,
    session: Session,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, AppError> {
    match complete(&state, &session, query).await {
        Ok((next, user)) => {
            count("success");
            tracing::info!(sub = %user.sub, "signed in");
            Ok(Redirect::to(&next).into_response())
        }
        Err(e) => {
            count(match &e {
                AppError::Login(l) => l.outcome(),
                _ => "error",
            });
            // Leave nothing behind unless someone was already signed in here.
            if matches!(session.get::<SessionUser>(USER_KEY).await, Ok(None))
                && let Err(flush) = session.flush().await
            {
                tracing::warn!(error = %flush, "could not discard the failed login's session");
            }
            Err(e)
        }
    }
}

async fn complete(
    state: &AppState,
    session: &Session,
    query: CallbackQuery,
) -> Result<(String, SessionUser), AppError> {
    let pending: PendingLogin = session
        .remove(LOGIN_KEY)
        .await?
        .ok_or(LoginError::NoPendingLogin)?;
    let returned = query.state.unwrap_or_default();
    if !session::constant_time_eq(returned.as_bytes(), pending.state.as_bytes()) {
        return Err(LoginError::StateMismatch.into());
    }
    if let Some(error) = query.error {
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(LoginError::ProviderRefused(code).into());
    }
    let now = session::now();
    if now > pending.started_at + LOGIN_MAX_AGE_S {
        return Err(LoginError::Expired.into());
    }
    let idp = state.provider()?;
    idp.check_callback_issuer(query.iss.as_deref())?;
    let code = query
        .code
        .filter(|c| !c.is_empty())
        .ok_or(LoginError::MissingCode)?;
    let identity = idp.finish(&pending, code).await?;
    let user = session::sign_in(
        session,
        identity.sub.as_str(),
        identity.name.as_str(),
        identity.id_token,
    )
    .await?;
    Ok((pending.next, user))
}

fn count(outcome: &'static str) {
    metrics::counter!("chat_web_logins_total", "outcome" => outcome).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        for good in ["/", "/dashboard", "/chat/General?x=1"] {
            assert_eq!(local_path(good), Some(good));
        }
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "/\\evil.example",
            "\\\\evil",
            "evil",
            "",
            "/%5Cevil",
            "/a\nb",
            "/ /evil",
            "javascript:alert(1)",
        ] {
            assert_eq!(local_path(bad), None, "{bad:?}");
        }
    }
}
