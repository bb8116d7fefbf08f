//! The TCP connection under a client's WebSocket, as the gateway sees it.
//!
//! Engine.IO hides how much of what a connection was sent still waits in the
//! replica, so the server wraps every accepted stream in a [`WireStream`] that
//! knows two things about it, shared through a [`Wire`] handle:
//! - **bytes owed**: what the gateway queued for the client (room events,
//!   `welcome`, history pages) less what has since been written to the
//!   socket. A client that stops reading makes it grow; past the limit it is
//!   a slow consumer. Bytes the gateway did not count (acks, pings) only pay
//!   the debt down, so the figure never overstates what waits.
//! - **a cut switch**: [`Wire::cut`] makes every read and write of the stream
//!   fail at once, so a connection whose buffers are full is closed now,
//!   not when a heartbeat finally times out.
//! - **a pause**: while [`Wire::pause`] holds (too many events in flight), or
//!   for the time [`Wire::hold_for`] says (the client is over a budget),
//!   nothing more is read from the client, so it is slowed down by TCP itself
//!   instead of having the replica read, and refuse, all it sends.
//!
//! The stream also **coalesces writes**: what is written between two flushes
//! (the frames of a burst, written one by one) goes to the socket in one
//! system call of up to [`COALESCE_BYTES`], and the buffer that held them is
//! given back at the flush, so a quiet connection holds none.
//!
//! Each request carries its connection's `Wire` as an extension; the handshake
//! finds it in the socket's request parts.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use chat_http::ConnectionSlot;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A handle on one client TCP connection: its byte debt and its cut switch.
#[derive(Clone)]
pub(crate) struct Wire(Arc<Inner>);

struct Inner {
    owed: AtomicUsize,
    limit: usize,
    cut: AtomicBool,
    paused: AtomicBool,
    /// Until when (ms since the Unix epoch) nothing is read: the client is over a budget.
    held_until_ms: AtomicU64,
    reader: AtomicWaker,
    writer: AtomicWaker,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("owed", &self.owed())
            .field("cut", &self.is_cut())
            .finish()
    }
}

impl Wire {
    /// A wire that counts a client as slow once more than `limit` bytes wait for it.
    pub(crate) fn new(limit: usize) -> Self {
        Self(Arc::new(Inner {
            owed: AtomicUsize::new(0),
            limit,
            cut: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            held_until_ms: AtomicU64::new(0),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
        }))
    }

    /// Records `bytes` more queued for the client; true while what waits is
    /// within the limit, false once the client is a slow consumer.
    pub(crate) fn queued(&self, bytes: usize) -> bool {
        let owed = self.0.owed.fetch_add(bytes, Ordering::Relaxed) + bytes;
        owed <= self.0.limit
    }

    /// Records a reply of `bytes` the server built for the client (its
    /// `welcome`, a `history` page): it is counted like any other, but only
    /// a client that already owed more than the limit before it is a slow
    /// consumer, so a reader's own reply never cuts it, while one that asks
    /// without reading still owes at most the limit and one reply.
    pub(crate) fn queued_reply(&self, bytes: usize) -> bool {
        let before = self.0.owed.fetch_add(bytes, Ordering::Relaxed);
        before <= self.0.limit
    }

    /// Bytes queued for the client and not written yet.
    pub(crate) fn owed(&self) -> usize {
        self.0.owed.load(Ordering::Relaxed)
    }

    fn written(&self, bytes: usize) {
        let _ = self
            .0
            .owed
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_sub(bytes))
            });
    }

    /// Counts what a write wrote, or remembers who waits for room to write.
    fn after_write(&self, result: &Poll<io::Result<usize>>, cx: &Context<'_>) {
        match result {
            Poll::Ready(Ok(n)) => self.written(*n),
            Poll::Pending => self.0.writer.register(cx.waker()),
            Poll::Ready(Err(_)) => {}
        }
    }

    /// Fails every further read and write of the connection, waking whoever waits on it.
    pub(crate) fn cut(&self) {
        self.0.cut.store(true, Ordering::Release);
        self.0.reader.wake();
        self.0.writer.wake();
    }

    /// Stops reading from the client until [`Wire::resume`].
    pub(crate) fn pause(&self) {
        self.0.paused.store(true, Ordering::Release);
    }

    /// Reads from the client again.
    pub(crate) fn resume(&self) {
        if self.0.paused.swap(false, Ordering::AcqRel) {
            self.0.reader.wake();
        }
    }

    /// Reads nothing from the client for `wait` (longer holds win): it is
    /// over a budget, and what it sends meanwhile would only be refused.
    pub(crate) fn hold_for(&self, wait: Duration) {
        let until = now_ms().saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        self.0.held_until_ms.fetch_max(until, Ordering::AcqRel);
    }

    /// How long reads are still held, if they are.
    fn held(&self) -> Option<Duration> {
        let until = self.0.held_until_ms.load(Ordering::Acquire);
        let now = now_ms();
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// Whether [`Wire::cut`] was called.
    pub(crate) fn is_cut(&self) -> bool {
        self.0.cut.load(Ordering::Acquire)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection cut by the server",
    )
}

/// The most a [`WireStream`] buffers before writing to the socket.
pub(crate) const COALESCE_BYTES: usize = 16 * 1024;

/// A stream that reports to its [`Wire`].
#[derive(Debug)]
pub(crate) struct WireStream<S> {
    inner: S,
    wire: Wire,
    _slot: Option<ConnectionSlot>,
    /// The timer that ends a hold, made the first time one is needed.
    hold: Option<Pin<Box<Sleep>>>,
    /// Bytes written since the last flush and not yet sent; empty (and
    /// unallocated) between bursts.
    out: Vec<u8>,
    /// How much of `out` the socket has taken.
    sent: usize,
}

impl<S> WireStream<S> {
    /// Wraps `inner`, reporting to `wire`.
    pub(crate) fn new(inner: S, wire: Wire) -> Self {
        Self {
            inner,
            wire,
            _slot: None,
            hold: None,
            out: Vec::new(),
            sent: 0,
        }
    }

    /// Holds `slot` (of a connection limit) for as long as the stream lives.
    pub(crate) fn holding(mut self, slot: ConnectionSlot) -> Self {
        self._slot = Some(slot);
        self
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WireStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.wire.0.reader.register(cx.waker());
        if self.wire.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        if self.wire.0.paused.load(Ordering::Acquire) {
            return Poll::Pending;
        }
        if let Some(wait) = self.wire.held() {
            let deadline = tokio::time::Instant::now() + wait;
            let timer = self
                .hold
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            timer.as_mut().reset(deadline);
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

/// Writes `buf` to `inner`, counting what it took against `wire`'s debt.
fn send<S: AsyncWrite + Unpin>(
    inner: &mut S,
    wire: &Wire,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    let result = Pin::new(inner).poll_write(cx, buf);
    wire.after_write(&result, cx);
    result
}

impl<S: AsyncWrite + Unpin> WireStream<S> {
    /// Sends everything buffered, then gives the buffer back.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            match std::task::ready!(send(
                &mut self.inner,
                &self.wire,
                cx,
                &self.out[self.sent..]
            )) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.sent += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.out = Vec::new();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WireStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.wire.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        if self.out.len() + buf.len() > COALESCE_BYTES {
            std::task::ready!(self.poll_drain(cx))?;
            if buf.len() >= COALESCE_BYTES {
                let this = &mut *self;
                return send(&mut this.inner, &this.wire, cx, buf);
            }
        }
        self.out.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.wire.is_cut() {
            return Poll::Ready(Err(cut_error()));
        }
        std::task::ready!(self.poll_drain(cx))?;
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        if result.is_pending() {
            self.wire.0.writer.register(cx.waker());
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn what_is_written_pays_the_debt_down_and_never_below_zero() {
        let wire = Wire::new(100);
        assert!(wire.queued(60));
        wire.written(20);
        assert_eq!(wire.owed(), 40);
        assert!(!wire.queued(61), "101 bytes waiting is over the limit");
        wire.written(500);
        assert_eq!(wire.owed(), 0);
    }

    #[tokio::test]
    async fn a_cut_wakes_a_blocked_reader_with_an_error() {
        let (client, server) = tokio::io::duplex(64);
        let wire = Wire::new(1024);
        let mut stream = WireStream::new(server, wire.clone());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            stream.read(&mut buf).await
        });
        tokio::task::yield_now().await;
        wire.cut();
        let result = reader.await.expect("reader task");
        assert_eq!(
            result.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::ConnectionAborted)
        );
        drop(client);
    }

    #[tokio::test]
    async fn a_paused_stream_reads_nothing_until_resumed() -> io::Result<()> {
        let (mut client, server) = tokio::io::duplex(64);
        let wire = Wire::new(1024);
        let mut stream = WireStream::new(server, wire.clone());
        client.write_all(b"hi").await?;
        wire.pause();
        let mut buf = [0u8; 2];
        let read =
            tokio::time::timeout(std::time::Duration::from_millis(50), stream.read(&mut buf));
        assert!(read.await.is_err(), "nothing is read while paused");
        wire.resume();
        stream.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"hi");
        Ok(())
    }

    #[tokio::test]
    async fn a_held_stream_reads_again_when_the_hold_ends() -> io::Result<()> {
        let (mut client, server) = tokio::io::duplex(64);
        let wire = Wire::new(1024);
        let mut stream = WireStream::new(server, wire.clone());
        client.write_all(b"hi").await?;
        wire.hold_for(Duration::from_millis(150));
        let mut buf = [0u8; 2];
        let early = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf));
        assert!(early.await.is_err(), "nothing is read while held");
        let started = std::time::Instant::now();
        stream.read_exact(&mut buf).await?;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(&buf, b"hi");
        Ok(())
    }

    #[tokio::test]
    async fn writes_are_counted() -> io::Result<()> {
        let (mut client, server) = tokio::io::duplex(64);
        let wire = Wire::new(1024);
        let mut stream = WireStream::new(server, wire.clone());
        assert!(wire.queued(10));
        stream.write_all(b"0123456").await?;
        assert_eq!(wire.owed(), 10, "buffered, not yet written");
        stream.flush().await?;
        assert_eq!(wire.owed(), 3);
        let mut buf = [0u8; 7];
        client.read_exact(&mut buf).await?;
        Ok(())
    }

    #[tokio::test]
    async fn writes_between_flushes_go_out_together_and_the_buffer_is_given_back() -> io::Result<()>
    {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let mut stream = WireStream::new(server, Wire::new(1 << 20));
        for frame in [&b"one "[..], b"two ", b"three"] {
            stream.write_all(frame).await?;
        }
        let mut buf = [0u8; 13];
        let early = tokio::time::timeout(Duration::from_millis(50), client.read(&mut buf));
        assert!(
            early.await.is_err(),
            "nothing reaches the socket before the flush"
        );
        stream.flush().await?;
        client.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"one two three");
        assert_eq!(stream.out.capacity(), 0, "a quiet stream holds no buffer");
        Ok(())
    }

    #[tokio::test]
    async fn a_burst_past_the_buffer_is_written_as_it_comes() -> io::Result<()> {
        let (mut client, server) = tokio::io::duplex(256 * 1024);
        let mut stream = WireStream::new(server, Wire::new(1 << 20));
        let frame = vec![b'x'; 1000];
        for _ in 0..40 {
            stream.write_all(&frame).await?;
        }
        assert!(stream.out.len() <= COALESCE_BYTES);
        let mut got = vec![0u8; 40_000 - stream.out.len()];
        client.read_exact(&mut got).await?;
        stream.write_all(&vec![b'y'; 3 * COALESCE_BYTES]).await?;
        stream.flush().await?;
        let mut rest = vec![0u8; 40_000 - got.len() + 3 * COALESCE_BYTES];
        client.read_exact(&mut rest).await?;
        assert!(rest.ends_with(b"yyyy") && got.iter().all(|&b| b == b'x'));
        Ok(())
    }
}
