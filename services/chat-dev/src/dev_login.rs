//! The development sign-in: a form that asks only for a display name. It is
//! labelled as such on the page and in the log, exists only in this crate,
//! and is only mounted while `OIDC_ISSUER` is unset and the process listens
//! on loopback. The form's page is an askama template rendered by
//! `chat-web` ([`dev_sign_in_page`]), the one crate that uses askama; the
//! routes that show it and act on it are this crate's alone.

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chat_core::DisplayName;
use chat_core::user::is_spoofing;
use chat_web::AppState;
use chat_web::login::{DEFAULT_NEXT, local_path};
use chat_web::pages::dev_sign_in_page;
use chat_web::rate_limit::Client;
use chat_web::session;
use serde::Deserialize;
use tower_sessions::Session;

/// `GET /login` shows the form; `POST /login` signs in.
pub fn routes() -> Router<AppState> {
    Router::new().route("/login", get(form).post(sign_in))
}

/// The query of `GET /login`.
#[derive(Debug, Deserialize)]
pub struct FormQuery {
    next: Option<String>,
}

/// The posted form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    name: String,
    #[serde(default)]
    next: String,
}

/// `GET /login`.
pub async fn form(Query(query): Query<FormQuery>) -> Response {
    let next = query
        .next
        .as_deref()
        .and_then(local_path)
        .unwrap_or(DEFAULT_NEXT);
    dev_sign_in_page(next, None)
}

/// `POST /login`: same-origin only (no login CSRF), within the client's
/// sign-in budget, then a session for `dev:<name>` under a fresh id.
pub async fn sign_in(
    State(state): State<AppState>,
    client: Client,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if origin != Some(state.config.public_origin().as_str()) {
        return (
            StatusCode::FORBIDDEN,
            "sign-in must come from this site's own form",
        )
            .into_response();
    }
    let next = local_path(&form.next).unwrap_or(DEFAULT_NEXT).to_owned();
    // Without characters that would let the name pass for another's.
    let cleaned: String = form.name.chars().filter(|c| !is_spoofing(*c)).collect();
    let Ok(name) = DisplayName::parse(cleaned.trim()) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            dev_sign_in_page(&next, Some("Pick a name of 1 to 64 characters.")),
        )
            .into_response();
    };
    if let Err(e) = state.limits.spend_sign_in(client) {
        return e.into_response();
    }
    let sub = format!("dev:{}", name.as_str());
    match session::sign_in(&session, &sub, name.as_str(), String::new(), Vec::new()).await {
        Ok(user) => {
            chat_web::access::signed_in(&state, &user).await;
            tracing::warn!(%sub, "signed in through the development sign-in");
            Redirect::to(&next).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_form_escapes_what_it_echoes() {
        let response = dev_sign_in_page("/chat/x\"><script>", Some("<b>"));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&body);
        assert!(!body.contains("<script>"));
        assert!(!body.contains("<b>"));
        assert!(body.contains(r#"value="/chat/x&#34;&#62;&#60;script&#62;""#));
        assert!(body.contains("&#60;b&#62;"));
        assert!(body.contains("Development sign-in"));
    }
}
