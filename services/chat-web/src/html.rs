//! HTML responses: [`HtmlTemplate`] renders any askama template from
//! `templates/` as a page that is never cached. The pages
//! ([`crate::pages`]) and the error page ([`crate::error`]) both answer
//! through it.

use askama::Template;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, HeaderValue};
use axum::response::{Html, IntoResponse, Response};

/// Renders any askama template as an HTML response.
pub struct HtmlTemplate<T>(pub T);

impl<T: Template> IntoResponse for HtmlTemplate<T> {
    fn into_response(self) -> Response {
        match self.0.render() {
            Ok(html) => {
                let mut response = Html(html).into_response();
                response
                    .headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(e) => {
                tracing::error!(error = %e, "template failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong. Please try again.",
                )
                    .into_response()
            }
        }
    }
}
