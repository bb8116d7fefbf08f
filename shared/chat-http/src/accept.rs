//! Accepting TCP connections up to a cap.
//!
//! Each accepted connection holds a [`ConnectionSlot`] until it is dropped
//! (the connection's task, or its stream, keeps it), so the cap counts open
//! connections, not accepts. A connection past the cap is accepted and
//! dropped at once: the client sees it closed, and the listen backlog never
//! fills with connections nobody will serve.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long accepting pauses after an error (out of file descriptors,
/// usually), instead of spinning on it.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// A listener that hands out at most `max_connections` open connections.
#[derive(Debug)]
pub struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max_connections: usize,
}

/// One open connection's place under the cap; dropping it frees the place.
#[derive(Debug)]
pub struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
}

/// A connection within the cap.
#[derive(Debug)]
pub struct Accepted {
    /// The stream, with `TCP_NODELAY` set (small answers do not wait for Nagle).
    pub stream: TcpStream,
    /// The client's address.
    pub peer: SocketAddr,
    /// Its place under the cap: keep it as long as the connection.
    pub slot: ConnectionSlot,
}

impl Acceptor {
    /// Accepts on `listener`, at most `max_connections` open at once (at least one).
    pub fn new(listener: TcpListener, max_connections: usize) -> Self {
        let max_connections = max_connections.max(1);
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max_connections)),
            max_connections,
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.max_connections - self.slots.available_permits()
    }

    /// The next connection within the cap. Connections past it are closed as
    /// they arrive, and accept errors are logged and waited out, so this
    /// only returns with a connection to serve (cancel it to stop).
    pub async fn accept(&self) -> Accepted {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            };
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                tracing::debug!(%peer, "connection closed: the connection cap is reached");
                continue;
            };
            let _ = stream.set_nodelay(true);
            return Accepted {
                stream,
                peer,
                slot: ConnectionSlot { _permit: permit },
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn past_the_cap_connections_are_closed_until_a_slot_frees() -> anyhow::Result<()> {
        let acceptor = Acceptor::new(TcpListener::bind("127.0.0.1:0").await?, 1);
        let addr = acceptor.local_addr()?;
        let _first_client = TcpStream::connect(addr).await?;
        let first = acceptor.accept().await;
        assert_eq!(acceptor.open_connections(), 1);

        // The second is accepted and dropped: its client reads the end of the stream.
        let mut second = TcpStream::connect(addr).await?;
        let accepting = tokio::spawn(async move {
            let accepted = acceptor.accept().await;
            (acceptor, accepted)
        });
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), second.read(&mut byte)).await?;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");

        // Once the first one closes, the next connection gets its slot.
        drop(first);
        let third = TcpStream::connect(addr).await?;
        let (acceptor, accepted) =
            tokio::time::timeout(Duration::from_secs(5), accepting).await??;
        assert_eq!(accepted.peer, third.local_addr()?);
        assert_eq!(acceptor.open_connections(), 1);
        Ok(())
    }
}
