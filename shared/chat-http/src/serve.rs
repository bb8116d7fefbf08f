//! Serving a router (plain request and response, no upgrades) on an
//! [`Acceptor`] until a shutdown signal, then letting what is in flight
//! finish: the listener closes at once, idle connections are closed, and
//! requests being served get their answers before their connections close.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use crate::accept::{Accepted, Acceptor};

/// Serves `router` on `acceptor`'s connections, each request carrying
/// axum's `ConnectInfo<SocketAddr>` with the client's address, with
/// `header_read_timeout` (see [`crate::http1`]). Returns once `shutdown` has
/// resolved and every connection has finished.
pub async fn serve(
    acceptor: Acceptor,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let http = crate::http1(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let Accepted { stream, peer, slot } = tokio::select! {
            accepted = acceptor.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = router
            .clone()
            .map_request(move |request: hyper::Request<Incoming>| {
                let mut request: Request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = graceful
            .watch(http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service)));
        tokio::spawn(async move {
            // The connection's place under the cap is freed when it ends.
            let _slot = slot;
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    // No new connections from here on; those open finish what they serve.
    drop(acceptor);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn started(
        max_connections: usize,
        header_read_timeout: Duration,
    ) -> anyhow::Result<(std::net::SocketAddr, tokio::sync::oneshot::Sender<()>)> {
        let acceptor = Acceptor::new(TcpListener::bind("127.0.0.1:0").await?, max_connections);
        let addr = acceptor.local_addr()?;
        let router =
            Router::new().route(
                "/peer",
                get(
                    |ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| async move {
                        peer.to_string()
                    },
                ),
            );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(acceptor, router, header_read_timeout, async move {
            let _ = stopped.await;
        }));
        Ok((addr, stop))
    }

    async fn get_peer(stream: &mut TcpStream) -> anyhow::Result<String> {
        stream
            .write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let mut buf = vec![0u8; 1024];
        let n = stream.read(&mut buf).await?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[tokio::test]
    async fn requests_carry_the_peer_and_a_half_sent_head_is_closed() -> anyhow::Result<()> {
        let (addr, _stop) = started(8, Duration::from_millis(300)).await?;
        let mut client = TcpStream::connect(addr).await?;
        let answer = get_peer(&mut client).await?;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(
            answer.ends_with(&client.local_addr()?.to_string()),
            "{answer}"
        );

        let mut slow = TcpStream::connect(addr).await?;
        slow.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\n").await?;
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the half-sent head was closed");
        Ok(())
    }

    #[tokio::test]
    async fn shutdown_ends_serving() -> anyhow::Result<()> {
        let (addr, stop) = started(8, Duration::from_secs(5)).await?;
        let mut client = TcpStream::connect(addr).await?;
        assert!(get_peer(&mut client).await?.starts_with("HTTP/1.1 200"));
        let _ = stop.send(());
        // The idle keep-alive connection is closed, and nothing listens any more.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest)).await??;
        let refused = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if TcpStream::connect(addr).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(refused.is_ok(), "the listener closed");
        Ok(())
    }
}
