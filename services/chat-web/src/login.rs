//! `GET /login` and the OIDC redirect URI `GET /authorization-code/callback`.
//!
//! `/login` puts a [`PendingLogin`] in a sealed cookie of its own
//! ([`crate::login_cookie`]) and sends the browser to the provider: it
//! writes nothing to Redis and has no per-address budget, so no flood of it
//! can lock anyone out. The callback opens the cookie its `state` names
//! (comparing `state` in constant time), checks the login's age and the
//! `iss` parameter, and only then spends the client address's sign-in
//! budget ([`crate::rate_limit`]) on what costs something: the code
//! exchange at the provider ([`IdentityProvider::finish`]) and a Redis
//! session under a fresh id. Whatever the outcome the cookie is used up;
//! any failure shows an error page and leaves no signed-in session behind.
//!
//! [`IdentityProvider::finish`]: crate::oidc::IdentityProvider::finish

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::{HeaderValue, SET_COOKIE};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::error::AppError;
use crate::login_cookie::LoginCookieError;
use crate::metrics_names;
use crate::oidc::{LOGIN_MAX_AGE_S, LoginError, PendingLogin};
use crate::rate_limit::Client;
use crate::session::{self, SessionUser, USER_KEY};
use crate::state::AppState;

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

/// `GET /login`: sends the browser to the identity provider, with the
/// login's cookie.
pub async fn start(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
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
    let now = session::now();
    let (url, pending) = state
        .provider()?
        .begin(next, now)
        .await
        .inspect_err(|e| count(e.outcome()))?;
    let cookies = state
        .login_cookies
        .remember(&pending, &headers, now)
        .map_err(cookie_error)?;
    Ok(with_cookies(
        Redirect::to(url.as_str()).into_response(),
        cookies,
    ))
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
    client: Client,
    session: Session,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let returned = query.state.clone().unwrap_or_default();
    let found = state.login_cookies.find(&headers, &returned);
    // Used up whatever happens next: this login's cookie if the browser had
    // it, else (a state that names none of its logins) all of them.
    let used_up = match &found {
        Ok(_) => state.login_cookies.forget(&returned).map(|c| vec![c]),
        Err(_) => state.login_cookies.forget_all(&headers),
    }
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not expire the pending login cookies");
        Vec::new()
    });
    let outcome = match found {
        Ok(pending) => complete(&state, client, &session, pending, query).await,
        Err(e) => Err(e.into()),
    };
    let response = match outcome {
        Ok((next, user)) => {
            count("success");
            tracing::info!(sub = %user.sub, "signed in");
            Redirect::to(&next).into_response()
        }
        Err(e) => {
            count(match &e {
                AppError::Login(l) => l.outcome(),
                AppError::RateLimited { .. } => "rate_limited",
                _ => "error",
            });
            // Leave nothing behind unless someone was already signed in here.
            if matches!(session.get::<SessionUser>(USER_KEY).await, Ok(None))
                && let Err(flush) = session.flush().await
            {
                tracing::warn!(error = %flush, "could not discard the failed login's session");
            }
            e.into_response()
        }
    };
    with_cookies(response, used_up)
}

async fn complete(
    state: &AppState,
    client: Client,
    session: &Session,
    pending: PendingLogin,
    query: CallbackQuery,
) -> Result<(String, SessionUser), AppError> {
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
    // Only a callback of a real login started in this browser gets this far:
    // from here on a sign-in costs the provider and Redis something.
    state.limits.spend_sign_in(client)?;
    let identity = idp.finish(&pending, code).await?;
    let user = session::sign_in(
        session,
        identity.sub.as_str(),
        identity.name.as_str(),
        identity.id_token,
        identity.groups,
    )
    .await?;
    crate::access::signed_in(state, &user).await;
    Ok((pending.next, user))
}

/// `response` with `cookies` appended as `Set-Cookie` headers.
fn with_cookies(mut response: Response, cookies: Vec<HeaderValue>) -> Response {
    for cookie in cookies {
        response.headers_mut().append(SET_COOKIE, cookie);
    }
    response
}

fn cookie_error(e: LoginCookieError) -> AppError {
    AppError::Internal(e.to_string())
}

fn count(outcome: &'static str) {
    metrics::counter!(metrics_names::LOGINS, "outcome" => outcome).increment(1);
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
