//! One error type for every handler: it shows the user a plain page that says
//! what went wrong and what to do, logs the whole cause chain, and never leaks
//! internals into the page.

use std::error::Error as StdError;

use askama::Template;
use axum::http::StatusCode;
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use thiserror::Error;

use crate::oidc::LoginError;
use crate::pages::HtmlTemplate;

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
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Sessions(_) | Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Login(e) => e.status(),
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable code, for JSON answers.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Sessions(_) | Self::Store(_) => "unavailable",
            Self::Login(_) => "login_failed",
            Self::Forbidden(_) => "forbidden",
            Self::BadRequest(_) => "bad_request",
            Self::RateLimited { .. } => "rate_limited",
            Self::Internal(_) => "internal",
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

/// `error: cause: cause`, for one log line.
pub fn cause_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
