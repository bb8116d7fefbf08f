//! Request heads that own their bytes.
//!
//! hyper parses the URI and the header values of a request as slices of its
//! HTTP/1 read buffer (8 KiB at the least). engineioxide keeps the head of
//! the request that opened a session (and axum's copy of its URI) for the
//! session's whole life, so those slices would keep that whole buffer alive
//! for every connection. [`OwnedHead`] copies them into one allocation of
//! their exact size before anything else sees the request, and the read
//! buffer is freed once the connection is upgraded.

use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Request, Uri};
use tower::Service;

/// A service that hands `S` each request with its URI and header values
/// moved out of the connection's read buffer.
#[derive(Clone)]
pub(super) struct OwnedHead<S>(pub(super) S);

impl<S, B> Service<Request<B>> for OwnedHead<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        let (uri, headers) = copy_head(&parts.uri, &parts.headers);
        parts.uri = uri;
        parts.headers = headers;
        self.0.call(Request::from_parts(parts, body))
    }
}

/// Copies `uri` and the values of `headers` into one buffer and returns
/// them as slices of it. A part that does not parse again (it always
/// should) is kept as it was.
fn copy_head(uri: &Uri, headers: &HeaderMap) -> (Uri, HeaderMap) {
    let uri_text = uri.to_string();
    let size = uri_text.len() + headers.values().map(|v| v.len()).sum::<usize>();
    let mut buffer = Vec::with_capacity(size);
    buffer.extend_from_slice(uri_text.as_bytes());
    for value in headers.values() {
        buffer.extend_from_slice(value.as_bytes());
    }
    let buffer = Bytes::from(buffer);

    let owned_uri =
        Uri::from_maybe_shared(buffer.slice(..uri_text.len())).unwrap_or_else(|_| uri.clone());
    let mut owned_headers = HeaderMap::with_capacity(headers.len());
    let mut start = uri_text.len();
    for (name, value) in headers {
        let end = start + value.len();
        let copy = match HeaderValue::from_maybe_shared(buffer.slice(start..end)) {
            Ok(mut copy) => {
                copy.set_sensitive(value.is_sensitive());
                copy
            }
            Err(_) => value.clone(),
        };
        owned_headers.append(name.clone(), copy);
        start = end;
    }
    (owned_uri, owned_headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    #[test]
    fn the_copy_is_equal_and_does_not_share_the_source() {
        let source = Bytes::from_static(b"/socket.io/?EIO=4&transport=websocketwebsocketUpgradea");
        let uri = Uri::from_maybe_shared(source.slice(..37)).expect("uri");
        let mut headers = HeaderMap::new();
        headers.append(
            header::UPGRADE,
            HeaderValue::from_maybe_shared(source.slice(37..46)).expect("value"),
        );
        headers.append(
            header::CONNECTION,
            HeaderValue::from_maybe_shared(source.slice(46..53)).expect("value"),
        );
        headers.append("x-twice", HeaderValue::from_static("1"));
        headers.append("x-twice", HeaderValue::from_static("2"));
        let mut secret = HeaderValue::from_static("s");
        secret.set_sensitive(true);
        headers.append(header::AUTHORIZATION, secret);

        let (copy_uri, copy_headers) = copy_head(&uri, &headers);

        assert_eq!(copy_uri, uri);
        assert_eq!(copy_uri.query(), Some("EIO=4&transport=websocket"));
        assert_eq!(copy_headers, headers);
        let twice: Vec<_> = copy_headers.get_all("x-twice").iter().collect();
        assert_eq!(twice, ["1", "2"]);
        assert!(copy_headers[header::AUTHORIZATION].is_sensitive());
        let upgrade = copy_headers[header::UPGRADE].as_bytes().as_ptr_range();
        assert!(!source.as_ptr_range().contains(&upgrade.start));
    }

    #[test]
    fn an_absolute_uri_survives() {
        let uri: Uri = "http://example.com:8080/socket.io/?EIO=4"
            .parse()
            .expect("uri");
        let (copy, headers) = copy_head(&uri, &HeaderMap::new());
        assert_eq!(copy, uri);
        assert!(headers.is_empty());
    }
}
