//! The HTTP/1.1 serving that both services share: what a client may hold of
//! a replica before it has sent a single whole request.
//!
//! `axum::serve` has neither of the two limits below, so a connection that
//! sends half a request head, or none, stays open as long as the client
//! likes, and enough of them exhaust the process's file descriptors:
//! - a **header-read timeout**: a connection must send each whole request
//!   head within it (an idle keep-alive connection too), or it is closed;
//! - a **connection cap**: past it, a new TCP connection is closed as soon as
//!   it is accepted, while those already open are served; each closed
//!   connection frees its slot.
//!
//! The gateway builds its own connection service (WebSocket upgrades, its
//! byte accounting) on [`Acceptor`] and [`http1`]; the web service, plain
//! request and response, is served whole by [`serve`].
//!
//! # Layout
//! - [`accept`]: [`Acceptor`], TCP connections up to a cap, each with its [`ConnectionSlot`].
//! - [`serve`](mod@serve): [`serve`], a router on an [`Acceptor`] with graceful shutdown.

pub mod accept;
pub mod serve;

use std::time::Duration;

use hyper::server::conn::http1::Builder;
use hyper_util::rt::TokioTimer;

pub use accept::{Accepted, Acceptor, ConnectionSlot};
pub use serve::serve;

/// The HTTP/1.1 connection builder both services start from: a timer, and
/// `header_read_timeout` for every request head (the first one, and each
/// next one on a keep-alive connection, idle time included).
pub fn http1(header_read_timeout: Duration) -> Builder {
    let mut builder = Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder
}
