//! `POST /logout`: checks the form's CSRF token, revokes the session's `sid`
//! (gateways close its sockets; its tokens stop working), destroys the
//! session and sends the browser to the provider's end-session endpoint.

use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;
use tower_sessions::Session;

use crate::error::AppError;
use crate::metrics_names;
use crate::session;
use crate::state::AppState;

/// The logout form.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<LogoutForm>,
) -> Result<Response, AppError> {
    let Some(user) = session::current_user(&session, &state.config, session::now()).await? else {
        return Ok(Redirect::to("/").into_response());
    };
    if !bool::from(form.csrf.as_bytes().ct_eq(user.csrf.as_bytes())) {
        return Err(AppError::Forbidden(
            "the form's security token is missing or stale; reload the page and try again",
        ));
    }
    // Revoke first: if Redis is away the user sees 503 and is still signed in,
    // rather than signed out here while their sockets live on.
    state
        .store
        .revoke_session(&user.sid, state.config.revocation_ttl())
        .await?;
    session.flush().await?;
    metrics::counter!(metrics_names::LOGOUTS).increment(1);
    tracing::info!(sub = %user.sub, "signed out");
    let to = match &state.idp {
        Some(idp) => idp
            .end_session_url(
                Some(&user.id_token),
                &state.config.post_logout_redirect_uri(),
            )
            .await
            .map(|u| u.to_string()),
        None => None,
    }
    .unwrap_or_else(|| "/".into());
    Ok(Redirect::to(&to).into_response())
}
