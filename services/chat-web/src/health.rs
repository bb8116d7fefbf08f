//! `/healthz` (the process runs), `/readyz` (Redis answers), `/metrics`
//! (Prometheus text) and the request counter behind it.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::AppState;
use crate::{labels, metrics_names};

/// `GET /healthz`.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 503 while Redis does not answer.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable\n").into_response()
        }
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Counts every request by method, route template and status class (each
/// from a fixed set: [`crate::labels`]).
pub async fn count_requests(request: Request, next: Next) -> Response {
    let method = labels::method(request.method());
    let route = labels::route(&request);
    let response = next.run(request).await;
    metrics::counter!(
        metrics_names::HTTP_REQUESTS,
        "method" => method,
        "route" => route,
        "status" => labels::status_class(response.status())
    )
    .increment(1);
    response
}
