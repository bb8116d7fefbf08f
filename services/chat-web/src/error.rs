//! The errors handlers answer with. [`AppError`] is what can go wrong while
//! serving a request: an HTML route shows it as a plain page that says what
//! went wrong and what to do, logs the whole cause chain, and never leaks
//! internals into the page. A JSON route answers with an [`ApiError`]
//! instead: `{ "error": code }`, the code one of [`ApiErrorCode`] (the web
//! service API's codes, one enum with `as_str()` as the gateway's are).

use chat_telemetry::cause_chain;

use askama::Template;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, HeaderValue, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};
use thiserror::Error;

use crate::html::HtmlTemplate;
use crate::oidc::LoginError;

/// What can go wrong while serving a request.
#[derive(Debug, Error)]
pub enum AppError {
    /// No such page or room.
    #[error("not found")]
    NotFound,
    /// The session store (Redis) could not be used.
    #[error("session store unavailable")]
    Sessions(#[from] tower_sessions::session::Error),
    /// Redis could not be used for something else (presence, revocation).
    #[error("redis unavailable")]
    Store(#[from] chat_store::StoreError),
    /// The sign-in did not complete.
    #[error("sign-in failed")]
    Login(#[from] LoginError),
    /// The request is not allowed (bad CSRF token, foreign origin).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request is malformed.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// Too many requests from this client address.
    #[error("rate limited: retry after {retry_after_s} s")]
    RateLimited {
        /// When the next request will be allowed, in seconds (`Retry-After`).
        retry_after_s: u64,
    },
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// The HTTP status this error answers with: its code's, or for a
    /// failed sign-in the one that failure calls for.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Login(e) => e.status(),
            other => other.api_code().status(),
        }
    }

    /// Its code, for JSON answers.
    pub fn api_code(&self) -> ApiErrorCode {
        match self {
            Self::NotFound => ApiErrorCode::NotFound,
            Self::Sessions(_) | Self::Store(_) => ApiErrorCode::Unavailable,
            Self::Login(_) => ApiErrorCode::LoginFailed,
            Self::Forbidden(_) => ApiErrorCode::Forbidden,
            Self::BadRequest(_) => ApiErrorCode::BadRequest,
            Self::RateLimited { .. } => ApiErrorCode::RateLimited,
            Self::Internal(_) => ApiErrorCode::Internal,
        }
    }

    /// The page's heading and the sentence shown to the user.
    pub fn user_message(&self) -> (&'static str, String) {
        match self {
            Self::NotFound => ("Not found", "There is no such page or room here.".into()),
            Self::Sessions(_) | Self::Store(_) => (
                "Temporarily unavailable",
                "The chat's session store cannot be reached right now. Please try again in a moment.".into(),
            ),
            Self::Login(e) => ("Sign-in failed", e.user_message()),
            Self::Forbidden(why) => ("Not allowed", format!("This request was refused: {why}.")),
            Self::BadRequest(why) => ("Bad request", format!("This request could not be understood: {why}.")),
            Self::RateLimited { retry_after_s } => (
                "Too many requests",
                format!("Too many requests came from your network. Please wait {retry_after_s} seconds and try again."),
            ),
            Self::Internal(_) => ("Something went wrong", "An unexpected error occurred. Please try again.".into()),
        }
    }

    /// Logs the error with its cause chain, at a level that fits its status.
    pub fn log(&self) {
        let chain = cause_chain(self);
        let status = self.status();
        if let Self::RateLimited { .. } = self {
            // Counted in /metrics; one line per refusal would let a flood fill the log.
            tracing::debug!(status = status.as_u16(), error = %chain, "request refused");
        } else if status.is_server_error() {
            tracing::error!(status = status.as_u16(), error = %chain, "request failed");
        } else {
            tracing::warn!(status = status.as_u16(), error = %chain, "request refused");
        }
    }
}

/// The plain error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Heading.
    pub title: &'static str,
    /// What happened and what to do.
    pub message: String,
    /// The status code, shown small.
    pub status: u16,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let (title, message) = self.user_message();
        let mut response = HtmlTemplate(ErrorPage {
            title,
            message,
            status: status.as_u16(),
        })
        .into_response();
        *response.status_mut() = status;
        if let Self::RateLimited { retry_after_s } = self {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after_s));
        }
        response
    }
}

/// Every error code of the web service's JSON API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiErrorCode {
    /// No signed-in session.
    LoginRequired,
    /// The request is not allowed (among others: its `Origin` is missing,
    /// `null` or another site's, or it was not a same-origin fetch).
    Forbidden,
    /// No such thing here.
    NotFound,
    /// No such room in this deployment.
    RoomUnknown,
    /// A value in the request breaks the API's rules.
    Invalid,
    /// The request could not be understood.
    BadRequest,
    /// The endpoint takes no body (or an empty JSON object).
    BodyMustBeEmpty,
    /// The request contradicts the state it would change.
    Conflict,
    /// Too many requests from this client address.
    RateLimited,
    /// Redis could not be used.
    Unavailable,
    /// A sign-in did not complete.
    LoginFailed,
    /// A bug or an unexpected failure.
    Internal,
}

impl ApiErrorCode {
    /// The code exactly as it appears in `{ "error": code }`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginRequired => "login_required",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RoomUnknown => "room_unknown",
            Self::Invalid => "invalid",
            Self::BadRequest => "bad_request",
            Self::BodyMustBeEmpty => "body_must_be_empty",
            Self::Conflict => "conflict",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::LoginFailed => "login_failed",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code (for a failed sign-in, the
    /// one most failures have: [`AppError::status`] knows the exact one).
    pub fn status(self) -> StatusCode {
        match self {
            Self::LoginRequired => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound | Self::RoomUnknown => StatusCode::NOT_FOUND,
            Self::Invalid | Self::BadRequest | Self::BodyMustBeEmpty | Self::LoginFailed => {
                StatusCode::BAD_REQUEST
            }
            Self::Conflict => StatusCode::CONFLICT,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for ApiErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ApiErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A JSON error answer: `{ "error": code }` with its status,
/// `Cache-Control: no-store`, and `Retry-After` when rate limited.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ApiErrorCode,
    retry_after_s: Option<u64>,
}

impl ApiError {
    /// An answer with `code` and the status that goes with it.
    pub fn new(code: ApiErrorCode) -> Self {
        Self {
            status: code.status(),
            code,
            retry_after_s: None,
        }
    }

    /// 429 `rate_limited`, the next request allowed in `retry_after_s` seconds.
    pub fn rate_limited(retry_after_s: u64) -> Self {
        Self {
            retry_after_s: Some(retry_after_s),
            ..Self::new(ApiErrorCode::RateLimited)
        }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Its code.
    pub fn code(&self) -> ApiErrorCode {
        self.code
    }
}

impl From<ApiErrorCode> for ApiError {
    fn from(code: ApiErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        e.log();
        Self {
            status: e.status(),
            code: e.api_code(),
            retry_after_s: match e {
                AppError::RateLimited { retry_after_s } => Some(retry_after_s),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.code })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(seconds) = self.retry_after_s {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_answers_with_its_code_and_status() {
        for (error, status, code) in [
            (AppError::NotFound, 404, "not_found"),
            (AppError::Forbidden("x"), 403, "forbidden"),
            (AppError::BadRequest("x"), 400, "bad_request"),
            (AppError::Internal("x".into()), 500, "internal"),
            (
                AppError::RateLimited { retry_after_s: 3 },
                429,
                "rate_limited",
            ),
            (
                AppError::Login(LoginError::ProviderUnavailable("x".into())),
                503,
                "login_failed",
            ),
        ] {
            let api = ApiError::from(error);
            assert_eq!((api.status().as_u16(), api.code().as_str()), (status, code));
        }
        let refused = ApiError::rate_limited(7).into_response();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.headers().get(RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"7"[..])
        );
        assert_eq!(
            refused.headers().get(CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
    }
}
