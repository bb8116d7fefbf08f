//! The development sign-in: a form that asks only for a display name. It is
//! labelled as such on the page and in the log, exists only in this crate,
//! and is only mounted while `OIDC_ISSUER` is unset and the process listens
//! on loopback.

use axum::Form;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chat_core::DisplayName;
use chat_core::user::is_spoofing;
use chat_web::AppState;
use chat_web::login::local_path;
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

fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

fn page(next: &str, problem: Option<&str>) -> Html<String> {
    let problem = problem
        .map(|p| format!(r#"<p class="error" role="alert">{}</p>"#, escape(p)))
        .unwrap_or_default();
    Html(format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Development sign-in</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<main class="page narrow">
<p class="banner warning" role="note"><strong>Development sign-in.</strong> No password, no identity provider: anyone who can reach this machine's loopback can pick any name. Set <code>OIDC_ISSUER</code> to use a real identity provider.</p>
<h1>Sign in</h1>
{problem}
<form method="post" action="/login" class="stack">
<label for="name">Display name</label>
<input id="name" name="name" maxlength="64" required autofocus autocomplete="nickname">
<input type="hidden" name="next" value="{next}">
<button type="submit">Sign in</button>
</form>
</main>
</body>
</html>"#,
        next = escape(next),
    ))
}

/// `GET /login`.
pub async fn form(Query(query): Query<FormQuery>) -> Html<String> {
    let next = query
        .next
        .as_deref()
        .and_then(local_path)
        .unwrap_or("/dashboard");
    page(next, None)
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
    let next = local_path(&form.next).unwrap_or("/dashboard").to_owned();
    // Without characters that would let the name pass for another's.
    let cleaned: String = form.name.chars().filter(|c| !is_spoofing(*c)).collect();
    let Ok(name) = DisplayName::parse(cleaned.trim()) else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            page(&next, Some("Pick a name of 1 to 64 characters.")),
        )
            .into_response();
    };
    if let Err(e) = state.limits.spend_sign_in(client) {
        return e.into_response();
    }
    let sub = format!("dev:{}", name.as_str());
    match session::sign_in(&session, &sub, name.as_str(), String::new()).await {
        Ok(_) => {
            tracing::warn!(%sub, "signed in through the development sign-in");
            Redirect::to(&next).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_escapes_what_it_echoes() {
        let Html(body) = page("/chat/x\"><script>", Some("<b>"));
        assert!(!body.contains("<script>"));
        assert!(body.contains("&quot;&gt;&lt;script&gt;"));
        assert!(body.contains("&lt;b&gt;"));
        assert!(body.contains("Development sign-in"));
    }
}
