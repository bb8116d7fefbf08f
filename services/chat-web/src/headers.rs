//! Security headers on every response: a strict Content-Security-Policy (no
//! inline script; connections only to this site and the gateway), no
//! framing, no MIME sniffing, and a same-origin referrer policy.

use axum::Router;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderName, HeaderValue, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use tower_http::set_header::SetResponseHeaderLayer;
use url::Url;

/// `Cross-Origin-Opener-Policy` (not among `http`'s named headers).
const CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");

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

/// `router` with the headers on every response: each one set over
/// whatever a handler wrote, but `Cache-Control: no-store` only where a
/// handler set no `Cache-Control` of its own (static assets, the JWKS). The
/// CSP value is computed once at start. (The last layer runs last on the
/// way out, so the headers follow one another in the order written here.)
pub fn with_security_headers<S>(router: Router<S>, csp: HeaderValue) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let set = |name, value| SetResponseHeaderLayer::overriding(name, value);
    router
        .layer(set(CONTENT_SECURITY_POLICY, csp))
        .layer(set(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(set(
            REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(set(X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(set(
            CROSS_ORIGIN_OPENER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
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
