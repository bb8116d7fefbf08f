//! The HTTP/1.1 server under the gateway (and under the single-process mode):
//! it accepts TCP connections, serves [`Served`] (a router with the Socket.IO
//! endpoint in front of it) on them with their WebSocket upgrades, and bounds
//! what a client can hold without ever becoming a Socket.IO connection.
//!
//! Not `axum::serve`, for what it does not expose:
//! - TCP_NODELAY, so small frames (acks, chat lines) do not wait for Nagle's
//!   algorithm, and the smallest HTTP/1 read buffer;
//! - a header-read timeout, so a connection that never sends a whole
//!   request head is closed, and a cap on open TCP connections a little
//!   above `MAX_CONNECTIONS`, so connections that never upgrade cannot pile
//!   up outside that limit (both from `chat-http`, which the web service
//!   shares);
//! - a [`Wire`] on every connection (bytes owed to it, and a cut switch),
//!   handed to the request as an extension, beside axum's `ConnectInfo`
//!   with the peer's address;
//! - [`OwnedHead`], which keeps the request heads that engineioxide holds on
//!   to from pinning the read buffer after an upgrade.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use chat_http::{Accepted, Acceptor};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::wire::{Wire, WireStream};

mod owned_head;

use owned_head::OwnedHead;

/// TCP connections allowed beyond `MAX_CONNECTIONS`: probes, scrapes and
/// handshakes that are about to be refused with `server_busy`.
pub(crate) const TCP_HEADROOM: usize = 1024;

/// What [`serve`] serves: a router with the Socket.IO endpoint in front of
/// it (`Realtime::mount`).
pub type Served = BoxCloneSyncService<Request, Response, Infallible>;

/// What the server allows each client connection.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Open TCP connections at most; more are closed as soon as accepted.
    pub connections: usize,
    /// The longest a client may take to send a whole request head.
    pub header_read_timeout: Duration,
    /// Bytes that may wait for a client before it is a slow consumer.
    pub slow_consumer_bytes: usize,
}

/// Serves `app` on `listener` until `stop` is cancelled. By then the
/// drain has closed every socket; whatever is left ends with the process.
pub async fn serve(
    listener: TcpListener,
    app: Served,
    limits: ServerLimits,
    stop: CancellationToken,
) {
    let mut http = chat_http::http1(limits.header_read_timeout);
    http.max_buf_size(8192);
    let acceptor = Acceptor::new(listener, limits.connections);
    loop {
        let Accepted { stream, peer, slot } = tokio::select! {
            accepted = acceptor.accept() => accepted,
            _ = stop.cancelled() => break,
        };
        let wire = Wire::new(limits.slow_consumer_bytes);
        // The slot lives as long as the stream, through an upgrade to WebSocket.
        let stream = WireStream::new(stream, wire.clone()).holding(slot);
        let service =
            OwnedHead(app.clone()).map_request(move |request: hyper::Request<Incoming>| {
                // hyper's body type in, axum's out: the one `Served` takes.
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(wire.clone());
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}
