//! The plain HTTP side of the gateway: health, readiness, metrics, and the
//! `Origin` allow-list in front of the Socket.IO endpoint.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::state::Gateway;

/// `/healthz`: the process is up.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `/readyz`: Redis answers and the replica is not draining.
pub(crate) async fn readyz(State(gateway): State<Arc<Gateway>>) -> Response {
    if gateway.is_ready() {
        (StatusCode::OK, "ready").into_response()
    } else if gateway.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable").into_response()
    }
}

/// `/metrics`: Prometheus text format.
pub(crate) async fn metrics(State(handle): State<PrometheusHandle>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Refuses a request whose `Origin` is not allowed. Requests without an
/// `Origin` (not from a browser) pass: the token is what admits them.
pub(crate) async fn check_origin(
    State(allowed): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    if origin_allowed(&allowed, request.headers()) {
        next.run(request).await
    } else {
        (StatusCode::FORBIDDEN, "origin not allowed").into_response()
    }
}

fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.is_empty() {
        return true;
    }
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(origin)) => allowed.iter().any(|a| a == origin.trim_end_matches('/')),
        Some(Err(_)) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ORIGIN, origin.parse().expect("header"));
        h
    }

    #[test]
    fn origins_are_matched_exactly() {
        let allowed = vec!["https://chat.example.com".to_owned()];
        assert!(origin_allowed(
            &allowed,
            &headers("https://chat.example.com")
        ));
        assert!(!origin_allowed(
            &allowed,
            &headers("https://chat.example.com.evil.io")
        ));
        assert!(!origin_allowed(&allowed, &headers("null")));
        assert!(origin_allowed(&allowed, &HeaderMap::new()));
        assert!(origin_allowed(&[], &headers("https://anything")));
    }
}
