//! Room tokens: `POST /api/rooms/{room}/token` mints one for the signed-in
//! user, and `GET /.well-known/jwks.json` publishes the public keys gateways
//! verify them with.
//!
//! The token endpoint is same-origin only: a request whose `Origin` is
//! missing, `null` or foreign, or whose `Sec-Fetch-Site` is not
//! `same-origin`, is refused before the session is looked at.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use chat_core::RoomClaims;
use chat_core::keys;
use serde::Serialize;

use crate::access::{self, Caller};
use crate::error::{ApiError, ApiErrorCode};
use crate::metrics_names;
use crate::session::{self, ApiUser};
use crate::state::AppState;

/// The token endpoint's answer.
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    /// The room token (JWT).
    pub token: String,
    /// Its expiry, seconds since the epoch.
    pub exp: u64,
    /// The http(s) origin to hand to `io()`.
    pub gateway_url: String,
}

/// Whether the request comes from a page of this site.
pub fn same_origin(headers: &HeaderMap, public_origin: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return false;
    }
    match headers.get(axum::http::header::ORIGIN) {
        Some(origin) => origin.as_bytes() == public_origin.as_bytes(),
        None => false,
    }
}

/// `POST /api/rooms/{room}/token`.
#[tracing::instrument(name = "mint room token", skip_all, fields(otel.kind = "internal"))]
pub async fn issue(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    user: Result<ApiUser, ApiError>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !same_origin(&headers, &state.config.public_origin()) {
        tracing::warn!(origin = ?headers.get("origin"), "token request from another origin refused");
        return Err(ApiError::new(ApiErrorCode::Forbidden));
    }
    let ApiUser(user) = user?;
    let caller = Caller {
        admin: state.config.is_admin(&user.groups),
        user,
    };
    // Only for a room the user may read; 404 for any other, whether it
    // exists or not.
    let seen = access::seen(&state, &caller, &room)
        .await
        .map_err(|e| match e.code() {
            ApiErrorCode::NotFound => ApiError::new(ApiErrorCode::RoomUnknown),
            _ => e,
        })?;
    let Caller { user, admin } = caller;
    if !body_is_empty_object(&body) {
        return Err(ApiError::new(ApiErrorCode::BodyMustBeEmpty));
    }
    let now = session::now();
    let exp = now + state.config.token_ttl.as_secs();
    let claims = RoomClaims {
        iss: state.config.token.issuer.clone(),
        aud: state.config.token.audience.clone(),
        sub: user.sub.clone(),
        name: user.name.clone(),
        room: seen.info.id.to_string(),
        iat: now,
        exp,
        jti: uuid::Uuid::new_v4().to_string(),
        sid: Some(user.sid.clone()),
        admin: admin && seen.info.kind != chat_core::access::RoomKind::Direct,
    };
    let token = state.signer.mint(&claims).map_err(|e| {
        tracing::error!(error = %e, "could not mint a room token");
        ApiError::new(ApiErrorCode::Internal)
    })?;
    metrics::counter!(metrics_names::ROOM_TOKENS).increment(1);
    let gateway_url = state
        .config
        .gateway_public_url
        .origin()
        .ascii_serialization();
    let mut response = axum::Json(TokenResponse {
        token,
        exp,
        gateway_url,
    })
    .into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// An empty body, or a JSON object with nothing in it.
fn body_is_empty_object(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    text.is_empty()
        || matches!(serde_json::from_str::<serde_json::Value>(text), Ok(serde_json::Value::Object(m)) if m.is_empty())
}

/// `GET /.well-known/jwks.json`.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let jwks = state.signer.jwks();
    let body =
        serde_json::to_string(&keys::published(&jwks)).unwrap_or_else(|_| "{\"keys\":[]}".into());
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn only_same_origin_requests_pass() {
        let me = "https://chat.example.com";
        assert!(same_origin(
            &headers(&[("origin", "https://chat.example.com")]),
            me
        ));
        assert!(same_origin(
            &headers(&[
                ("origin", "https://chat.example.com"),
                ("sec-fetch-site", "same-origin")
            ]),
            me
        ));
        assert!(!same_origin(&headers(&[("origin", "null")]), me));
        assert!(!same_origin(
            &headers(&[("origin", "https://evil.example")]),
            me
        ));
        assert!(!same_origin(&headers(&[]), me));
        assert!(!same_origin(
            &headers(&[
                ("origin", "https://chat.example.com"),
                ("sec-fetch-site", "cross-site")
            ]),
            me
        ));
    }

    #[test]
    fn bodies_may_be_empty_or_an_empty_object() {
        assert!(body_is_empty_object(b""));
        assert!(body_is_empty_object(b" {} "));
        assert!(!body_is_empty_object(b"{\"room\":\"x\"}"));
        assert!(!body_is_empty_object(b"[]"));
    }
}
