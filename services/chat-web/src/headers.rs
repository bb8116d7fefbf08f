//! Security headers on every response: a strict Content-Security-Policy (no
//! inline script; connections only to this site and the gateway), no
//! framing, no MIME sniffing, and a same-origin referrer policy.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::middleware::Next;
use axum::response::Response;
use url::Url;

/// The CSP for this deployment: `connect-src` allows the gateway's origin
/// over http(s) and ws(s); `form-action` allows the provider's origin
/// because logout redirects there.
pub fn content_security_policy(gateway: &Url, issuer: &str) -> String {
    let gateway_origin = gateway.origin().ascii_serialization();
    let ws_origin = gateway_origin.replacen("http", "ws", 1);
    let issuer_origin = Url::parse(issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; \
         connect-src 'self' {gateway_origin} {ws_origin}; object-src 'none'; base-uri 'none'; \
         form-action 'self' {issuer_origin}; frame-ancestors 'none'"
    )
}

/// Adds the headers; the CSP value is computed once at start.
pub async fn security_headers(
    State(csp): State<HeaderValue>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, csp);
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_allows_the_gateway_over_websocket_and_no_inline_script() {
        let gw = Url::parse("https://gw.example.com").expect("url");
        let csp = content_security_policy(&gw, "https://dev-1.okta.com/oauth2/default");
        assert!(csp.contains("connect-src 'self' https://gw.example.com wss://gw.example.com;"));
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("form-action 'self' https://dev-1.okta.com"));
    }
}
