//! What a request is counted and traced under: its method, its route and
//! its status, each from a fixed set, so that no client can make the
//! service remember something new per request (a made-up method, a random
//! path) in `/metrics` or in span names.

use axum::extract::MatchedPath;
use axum::http::{Method, Request, StatusCode};

/// The label of every request that matched no route.
pub const OTHER: &str = "other";

/// The method's name if it is one of the nine that HTTP defines, else `other`.
pub fn method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => OTHER,
    }
}

/// The template of the route the request matched (`/chat/{room}`), never
/// the path itself; `other` when it matched none (the 404 page).
pub fn route<B>(request: &Request<B>) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| OTHER.to_owned(), |p| p.as_str().to_owned())
}

/// `1xx` … `5xx`.
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_methods_are_other() {
        assert_eq!(method(&Method::GET), "GET");
        assert_eq!(method(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"XFLOOD123").expect("a token");
        assert_eq!(method(&made_up), OTHER);
    }

    #[test]
    fn statuses_are_classes() {
        assert_eq!(status_class(StatusCode::OK), "2xx");
        assert_eq!(status_class(StatusCode::SEE_OTHER), "3xx");
        assert_eq!(status_class(StatusCode::TOO_MANY_REQUESTS), "4xx");
        assert_eq!(status_class(StatusCode::SERVICE_UNAVAILABLE), "5xx");
    }

    #[test]
    fn unmatched_requests_have_no_route_of_their_own() {
        let request = Request::get("/a/random/path").body(()).expect("request");
        assert_eq!(route(&request), OTHER);
    }
}
