//! The ws transport module is responsible for handling websocket connections
//! The only public function is [`new_req`] which is used to upgrade a http request to a websocket connection
//!
//! Other functions are used internally to handle the websocket connection through tasks and channels
//! and to handle upgrade from polling to ws

use std::sync::Arc;

use std::{
    future::{Future, poll_fn},
    pin::Pin,
    task::Poll,
};

use bytes::Bytes;
use futures_util::{Sink, SinkExt, StreamExt};
use http::{HeaderValue, Request, Response, StatusCode, request::Parts};
use smallvec::smallvec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message, Utf8Bytes,
        handshake::derive_accept_key,
        protocol::{
            Role, WebSocketConfig,
            frame::{
                Frame,
                coding::{Data as OpData, OpCode},
            },
        },
    },
};
use tokio_util::future::FutureExt as _;

use engineioxide_core::{Packet, PacketBuf, ProtocolVersion, Sid, Str, TransportType};

use crate::{
    DisconnectReason, Socket, body::ResponseBody, config::EngineIoConfig, engine::EngineIo,
    errors::Error, handler::EngineIoHandler, queue::Receiver, socket::InternalRx,
    transport::make_open_packet,
};

/// Create a response for websocket upgrade
fn ws_response<B>(ws_key: &HeaderValue) -> Response<ResponseBody<B>> {
    let derived = derive_accept_key(ws_key.as_bytes());
    let sec = derived.parse::<HeaderValue>().unwrap();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        )
        .header(http::header::SEC_WEBSOCKET_ACCEPT, sec)
        .body(ResponseBody::empty_response())
        .unwrap() // we are only using constants
}

/// Upgrade a websocket request to create a websocket connection.
///
/// If a sid is provided in the query it means that is is upgraded from an existing HTTP polling request.
/// In this case the http polling request is closed and the SID is kept for the websocket
pub fn new_req<R: Send + 'static, B, H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req: Request<R>,
) -> Result<Response<ResponseBody<B>>, Error> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts.clone(), body);

    let ws_key = parts
        .headers
        .get("Sec-WebSocket-Key")
        .ok_or(Error::InvalidWebSocketKey)?
        .clone();

    // What the task's future captures it keeps for the connection's whole life: the
    // upgrade, not the request, and the head boxed until the session takes it.
    let upgrade = hyper::upgrade::on(req);
    let parts = Box::new(parts);
    tokio::spawn(async move {
        let conn = upgrade.await.map(hyper_util::rt::TokioIo::new);

        let res = match conn {
            Ok(conn) => on_init(engine.clone(), conn, protocol, sid, *parts).await,
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("ws upgrade error: {}", _e);
                return;
            }
        };

        match res {
            Ok(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed")
            }
            Err(Error::MultipleWebsocketRequests) => {}
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed with error: {_e}");
                if let Some(sid) = sid {
                    engine.close_session(sid, DisconnectReason::TransportError);
                }
            }
        }
    });

    Ok(ws_response(&ws_key))
}

/// Handle a websocket connection upgrade
///
/// Sends an open packet if it is not an upgrade from a polling request
///
/// Read packets from the websocket and handle them, it will block until the connection is closed
pub fn on_init<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> impl Future<Output = Result<(), Error>> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The opening and the closing are boxed: they run once each, and a future keeps the
    // state of all its steps (and its arguments: the request head, the raw stream) for
    // its whole life, here the connection's.
    let opening = Box::pin(open_session(engine.clone(), conn, protocol, sid, req_data));
    let serving = serve(engine, opening, sid);
    #[cfg(feature = "tracing")]
    let serving = tracing::Instrument::instrument(
        serving,
        tracing::trace_span!("init_websocket", ?protocol, ?sid),
    );
    serving
}

/// Serves the connection once it is open, then closes it.
async fn serve<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    opening: Pin<Box<impl Future<Output = Result<(Arc<Socket<H::Data>>, WebSocketStream<S>), Error>>>>,
    sid: Option<Sid>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (socket, mut ws) = opening.await?;
    // One task serves the connection: it reads frames, writes queued packets and, for a
    // session that started on websocket, runs the heartbeat. A session upgraded from
    // polling keeps the heartbeat task that polling started.
    let inline_heartbeat = sid.is_none();
    let res = serve_connection(&engine, &mut ws, &socket, inline_heartbeat).await;
    match res {
        Served::ReadError(ref e) => {
            let reason =
                Option::<DisconnectReason>::from(e).unwrap_or(DisconnectReason::TransportError);

            #[cfg(feature = "tracing")]
            tracing::debug!("error when handling packet: {:?}", e);
            engine.close_session(socket.id, reason);
        }
        Served::TransportClosed => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "ws transport was closed");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
        }
        Served::Cancelled => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "socket is closing");
        }
    }
    Box::pin(close_websocket(&engine, &socket, ws)).await;
    Ok(())
}

/// Makes the websocket stream and the session it serves: a new session (its open packet
/// sent), or the polling session `sid` upgraded.
async fn open_session<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<(Arc<Socket<H::Data>>, WebSocketStream<S>), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size))
        // Frames go to the socket as they are written (the task flushes once its queue
        // is drained), so that the write buffer holds one frame at most.
        .write_buffer_size(0);

    let ws_init = move || WebSocketStream::from_raw_socket(conn, Role::Server, Some(ws_config));
    if let Some(sid) = sid {
        match engine.get_socket(sid) {
            None => Err(Error::UnknownSessionID(sid)),
            Some(socket) if socket.is_ws() => Err(Error::MultipleWebsocketRequests),
            Some(socket) => {
                let mut ws = ws_init().await;

                let upgrade_fut = tokio::time::timeout(
                    engine.config.upgrade_timeout,
                    upgrade_handshake::<H, S>(&socket, &mut ws),
                )
                .with_cancellation_token(&socket.cancellation_token);
                match upgrade_fut.await {
                    Some(Ok(res)) => res?,
                    Some(Err(_)) => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "ws upgrade timed out, closing session");
                        engine.close_session(socket.id, DisconnectReason::TransportError);
                        return Err(Error::Upgrade);
                    }
                    None => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "socket is being closed");
                        return Err(Error::Upgrade);
                    }
                }
                Ok((socket, ws))
            }
        }
    } else {
        let socket = engine.create_session(protocol, TransportType::Websocket, req_data, false);

        #[cfg(feature = "tracing")]
        tracing::debug!("new websocket connection");

        let mut ws = ws_init().await;
        init_handshake(socket.id, &mut ws, &engine.config).await?;
        Ok((socket, ws))
    }
}

/// Writes what is still queued (a close packet, say) and closes the websocket; a client
/// that does not read it is given up on after `ping_timeout`.
async fn close_websocket<H: EngineIoHandler, S>(
    engine: &Arc<EngineIo<H>>,
    socket: &Arc<Socket<H::Data>>,
    mut ws: WebSocketStream<S>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let closing = async {
        let mut rx = socket.internal_rx.lock().await;
        let InternalRx { buffered_rx, .. } = &mut *rx;
        while let Ok(packets) = buffered_rx.try_recv() {
            for packet in packets {
                feed(socket, &mut ws, packet);
            }
        }
        drain_volatile(socket, &mut ws, buffered_rx);
        #[cfg(feature = "tracing")]
        tracing::trace!(sid = %socket.id, "ws closing flush");
        ws.flush().await.ok();
        ws.close(None).await.ok();
    };
    tokio::time::timeout(engine.config.ping_timeout, closing)
        .await
        .ok();
}

/// How [`serve_connection`] ended.
enum Served {
    /// The client closed the transport (close packet, close frame or end of stream).
    TransportClosed,
    /// Reading failed, or the client sent a packet that is not allowed here.
    ReadError(Error),
    /// The session was closed from the server side.
    Cancelled,
}

/// The largest payload of one outgoing websocket frame: longer packets are sent as a
/// fragmented message (RFC 6455, section 5.4), so that tungstenite's write buffer, which
/// keeps its largest size for the life of the connection, never grows past one frame
/// (512 B: what an idle connection keeps after its largest message).
const MAX_FRAME_PAYLOAD: usize = 512;

/// Frames handled per wake-up before the task yields to the runtime.
const BUDGET: usize = 64;

/// Reads frames from the websocket and hands them to the engine, writes the packets queued
/// for the socket (flushing once the queue is drained) and runs the heartbeat when
/// `inline_heartbeat` is set, all in the caller's task, until the transport or the session
/// ends.
async fn serve_connection<H: EngineIoHandler, S>(
    engine: &Arc<EngineIo<H>>,
    ws: &mut WebSocketStream<S>,
    socket: &Arc<Socket<H::Data>>,
    inline_heartbeat: bool,
) -> Served
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A polling request that was in progress during the upgrade may still hold the lock.
    let lock = socket.internal_rx.lock();
    let Some(mut internal_rx) = lock
        .with_cancellation_token(&socket.cancellation_token)
        .await
    else {
        #[cfg(feature = "tracing")]
        tracing::debug!(sid = %socket.id, "session closed before starting the ws writer");
        return Served::Cancelled;
    };
    let InternalRx { buffered_rx, .. } = &mut *internal_rx;

    let cancelled = socket.cancellation_token.cancelled();
    let heartbeat = async {
        if inline_heartbeat {
            let config = &engine.config;
            if let Err(_e) = socket
                .heartbeat_job(config.ping_interval, config.ping_timeout)
                .await
            {
                #[cfg(feature = "tracing")]
                tracing::debug!(id = ?socket.id, "heartbeat error: {_e}");
                // Queues a close packet and cancels the session, which ends this loop.
                socket.close(DisconnectReason::HeartbeatTimeout);
            }
        }
        std::future::pending::<()>().await
    };
    tokio::pin!(cancelled, heartbeat);
    let mut unflushed = false;

    poll_fn(|cx| {
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Served::Cancelled);
        }
        let _ = heartbeat.as_mut().poll(cx);

        for _ in 0..BUDGET {
            let mut progress = false;

            // Write: one queued packet buffer at a time, while the websocket takes them.
            // Buffered packets go before volatile ones.
            while let Poll::Ready(Ok(())) = ws.poll_ready_unpin(cx) {
                match buffered_rx.poll_recv(cx) {
                    Poll::Ready(Some(packets)) => {
                        for packet in packets {
                            feed(socket, ws, packet);
                        }
                        unflushed = true;
                        progress = true;
                    }
                    // Closed only once the session is, which `cancelled` sees.
                    Poll::Ready(None) | Poll::Pending => {
                        if drain_volatile(socket, ws, buffered_rx) {
                            unflushed = true;
                            progress = true;
                            continue;
                        }
                        break;
                    }
                }
            }
            if unflushed && ws.poll_flush_unpin(cx).is_ready() {
                #[cfg(feature = "tracing")]
                tracing::trace!(sid = %socket.id, "ws flush");
                unflushed = false;
            }

            // Read.
            match ws.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(msg))) => match on_message(engine, socket, msg) {
                    Ok(true) => progress = true,
                    Ok(false) => return Poll::Ready(Served::TransportClosed),
                    Err(e) => return Poll::Ready(Served::ReadError(e)),
                },
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Served::ReadError(e.into())),
                Poll::Ready(None) => return Poll::Ready(Served::TransportClosed),
                Poll::Pending => {}
            }

            if !progress {
                return Poll::Pending;
            }
        }
        // Let other connections run; this one has more to do.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Hands one websocket message to the engine. `Ok(false)` when the client closed the session.
fn on_message<H: EngineIoHandler>(
    engine: &Arc<EngineIo<H>>,
    socket: &Arc<Socket<H::Data>>,
    msg: Message,
) -> Result<bool, Error> {
    match msg {
        Message::Text(msg) => match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
            Packet::Close => {
                #[cfg(feature = "tracing")]
                tracing::debug!("[sid={}] closing session", socket.id);
                engine.close_session(socket.id, DisconnectReason::TransportClose);
                return Ok(false);
            }
            Packet::Pong | Packet::Ping => {
                // A pending notification means that the client is already known to be alive.
                socket.heartbeat.notify_one();
            }
            Packet::Message(msg) => engine.handler.on_message(msg, socket.clone()),
            p => return Err(Error::BadPacket(p)),
        },
        Message::Binary(mut data) => {
            if socket.protocol == ProtocolVersion::V3 && !data.is_empty() {
                // The first byte is the message type, which we don't need.
                data = data.split_off(1);
            }
            engine.handler.on_binary(data, socket.clone());
        }
        Message::Close(_) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("websocket closed, closing session");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
            return Ok(false);
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = ?socket.id, "unexpected ws message");
        }
    }
    Ok(true)
}

/// Writes the latest volatile packets, if new ones were sent; true if there were any.
fn drain_volatile<D, S>(
    socket: &Socket<D>,
    ws: &mut WebSocketStream<S>,
    rx: &mut Receiver<PacketBuf>,
) -> bool
where
    D: Default + Send + Sync + 'static,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(packets) = rx.take_latest() else {
        return false;
    };
    #[cfg(feature = "tracing")]
    tracing::debug!(sid = ?socket.id, "ws volatile flush: {} packets", packets.len());
    for packet in packets {
        feed(socket, ws, packet);
    }
    true
}

/// Maps a packet to websocket frames and buffers them in `ws`, without flushing.
/// Errors are ignored: a broken connection is noticed by the reader.
fn feed<D, S>(socket: &Socket<D>, ws: &mut WebSocketStream<S>, packet: Packet)
where
    D: Default + Send + Sync + 'static,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let res = match packet {
        Packet::Binary(bin) | Packet::BinaryV3(bin) => {
            if socket.protocol == ProtocolVersion::V3 {
                // v3 protocol requires packet type as the first byte.
                // This requires a new buffer. This is OK as it is only for the V3 protocol.
                let mut buff = Vec::with_capacity(bin.len() + 1);
                buff.push(0x04);
                buff.extend(bin);
                send_fragmented(ws, Bytes::from(buff), OpData::Binary)
            } else {
                send_fragmented(ws, bin, OpData::Binary)
            }
        }
        // A Noop Packet maybe sent by the server to upgrade from a polling connection
        // In the case that the packet was not poll in time it will remain in the buffer and therefore
        // it should be discarded here
        Packet::Noop => Ok(()),
        packet => {
            let packet: String = packet.try_into().unwrap();
            send_fragmented(ws, Bytes::from(packet), OpData::Text)
        }
    };
    if let Err(_e) = res {
        #[cfg(feature = "tracing")]
        tracing::debug!("[sid={}] error sending packet: {}", socket.id, _e);
    }
}

/// Buffers one message, as frames of at most [`MAX_FRAME_PAYLOAD`] bytes. A text message
/// is only cut between characters.
fn send_fragmented<S>(
    ws: &mut WebSocketStream<S>,
    data: Bytes,
    kind: OpData,
) -> Result<(), tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ws = std::pin::Pin::new(ws);
    if data.len() <= MAX_FRAME_PAYLOAD {
        let msg = match kind {
            // SAFETY: text data comes from a `String`.
            OpData::Text => Message::Text(unsafe { Utf8Bytes::from_bytes_unchecked(data) }),
            _ => Message::Binary(data),
        };
        return ws.as_mut().start_send(msg);
    }
    let mut opcode = OpCode::Data(kind);
    let mut start = 0;
    while start < data.len() {
        let mut end = (start + MAX_FRAME_PAYLOAD).min(data.len());
        if kind == OpData::Text {
            while end < data.len() && (data[end] & 0xC0) == 0x80 {
                // A UTF-8 continuation byte: cut before the character it belongs to.
                end -= 1;
            }
        }
        let frame = Frame::message(data.slice(start..end), opcode, end == data.len());
        ws.as_mut().start_send(Message::Frame(frame))?;
        opcode = OpCode::Data(OpData::Continue);
        start = end;
    }
    Ok(())
}

/// Send a Engine.IO [`OpenPacket`] to initiate a websocket connection
async fn init_handshake<S>(
    sid: Sid,
    ws: &mut WebSocketStream<S>,
    config: &EngineIoConfig,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let packet = Packet::Open(make_open_packet(TransportType::Websocket, sid, config));
    let packet: String = packet.into();
    ws.send(Message::Text(packet.into())).await?;
    Ok(())
}

/// Upgrade a session from a polling request to a websocket request.
///
/// Before upgrading the session the server should send a NOOP packet to any pending polling request.
///
/// ## Handshake :
/// ```text
/// CLIENT                                                 SERVER
///│                                                      │
///│   GET /engine.io/?EIO=4&transport=websocket&sid=...  │
///│ ───────────────────────────────────────────────────► │
///│  ◄─────────────────────────────────────────────────┘ │
///│            HTTP 101 (WebSocket handshake)            │
///│                                                      │
///│            -----  WebSocket frames -----             │
///│  ─────────────────────────────────────────────────►  │
///│                         2probe                       │ (ping packet)
///│  ◄─────────────────────────────────────────────────  │
///│                         3probe                       │ (pong packet)
///│  ─────────────────────────────────────────────────►  │
///│                         5                            │ (upgrade packet)
///│                                                      │
///│            -----  WebSocket frames -----             │
/// ```
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", skip(socket, ws))
)]
async fn upgrade_handshake<H: EngineIoHandler, S>(
    socket: &Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    #[cfg(feature = "tracing")]
    tracing::debug!("starting websocket connection upgrade");

    // The socket is upgrading, from now on all polling
    // request will return a `Packet::Noop`
    socket.start_upgrade();

    // We send a last Noop request to close a potential waiting polling request.
    socket
        .internal_tx
        .send(smallvec![Packet::Noop])
        .await
        .map_err(|_| Error::Upgrade)?;

    // wait for any current polling connection to finish by waiting for the socket to be unlocked
    // All other polling connection will be immediately closed with a NOOP packet.
    let _lock = socket.internal_rx.lock().await;

    // Fetch the next packet from the ws stream, it should be a PingUpgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        _ => Err(Error::Upgrade)?,
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::PingUpgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("received first ping upgrade");
            // Respond with a PongUpgrade packet
            ws.send(Message::Text(String::from(Packet::PongUpgrade).into()))
                .await?;
        }
        p => Err(Error::BadPacket(p))?,
    };

    // Fetch the next packet from the ws stream, it should be an Upgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        Some(Ok(Message::Close(_))) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws stream closed before upgrade");
            Err(Error::Upgrade)?
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!("unexpected ws message before upgrade");
            Err(Error::Upgrade)?
        }
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::Upgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws upgraded successfully")
        }
        p => Err(Error::BadPacket(p))?,
    };

    socket.upgrade_to_websocket();
    Ok(())
}

fn ws_bytes_to_str(bytes: tungstenite::Utf8Bytes) -> Str {
    // SAFETY: the bytes are guaranteed to be valid UTF-8 by the tungstenite parser
    unsafe { Str::from_bytes_unchecked(bytes.into()) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use http::Request;
    use tokio::io::DuplexStream;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[derive(Debug)]
    struct StubHandler;
    impl EngineIoHandler for StubHandler {
        type Data = ();
        fn on_connect(self: Arc<Self>, _: Arc<Socket<()>>) {}
        fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
        fn on_message(self: &Arc<Self>, _: Str, _: Arc<Socket<()>>) {}
        fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
    }

    fn engine(config: EngineIoConfig) -> Arc<EngineIo<StubHandler>> {
        Arc::new(EngineIo::new(Arc::new(StubHandler), config))
    }

    fn socket() -> Arc<Socket<()>> {
        Arc::new(Socket::new(
            ProtocolVersion::V4,
            TransportType::Websocket,
            &EngineIoConfig::default(),
            Request::<()>::default().into_parts().0,
            Box::new(|_, _| ()),
            false,
        ))
    }

    async fn ws_pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (server, client) = tokio::io::duplex(1024);
        (
            WebSocketStream::from_raw_socket(
                server,
                Role::Server,
                Some(WebSocketConfig::default().write_buffer_size(0)),
            )
            .await,
            WebSocketStream::from_raw_socket(client, Role::Client, None).await,
        )
    }

    fn serve(
        socket: &Arc<Socket<()>>,
        server: WebSocketStream<DuplexStream>,
        inline_heartbeat: bool,
    ) -> tokio::task::JoinHandle<()> {
        serve_with(EngineIoConfig::default(), socket, server, inline_heartbeat)
    }

    fn serve_with(
        config: EngineIoConfig,
        socket: &Arc<Socket<()>>,
        mut server: WebSocketStream<DuplexStream>,
        inline_heartbeat: bool,
    ) -> tokio::task::JoinHandle<()> {
        let socket = socket.clone();
        tokio::spawn(async move {
            serve_connection(&engine(config), &mut server, &socket, inline_heartbeat).await;
        })
    }

    async fn next(client: &mut WebSocketStream<DuplexStream>) -> Message {
        tokio::time::timeout(TIMEOUT, client.next())
            .await
            .expect("the server should send a message")
            .unwrap()
            .unwrap()
    }

    /// A polling request can still hold the lock at the end of an upgrade.
    #[tokio::test]
    async fn writer_waits_for_the_lock_of_a_polling_request() {
        let socket = socket();
        let (server, mut client) = ws_pair().await;

        let polling = socket.internal_rx.lock().await;
        let writer = serve(&socket, server, false);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!writer.is_finished(), "the writer should wait for the lock");

        drop(polling);
        socket.emit(Str::from("hello")).unwrap();
        assert_eq!(next(&mut client).await, Message::text("4hello"));
    }

    #[tokio::test]
    async fn writer_waiting_for_the_lock_stops_with_the_session() {
        let socket = socket();
        let (server, _client) = ws_pair().await;

        let _polling = socket.internal_rx.lock().await;
        let writer = serve(&socket, server, false);
        tokio::time::sleep(Duration::from_millis(20)).await;

        socket.cancellation_token.cancel();
        tokio::time::timeout(TIMEOUT, writer)
            .await
            .expect("the writer should stop")
            .unwrap();
    }

    /// Packets are written in order, and a long one arrives whole although it is sent
    /// in frames of at most `MAX_FRAME_PAYLOAD` bytes.
    #[tokio::test]
    async fn long_packets_are_fragmented_and_reassembled() {
        let socket = socket();
        let (server, mut client) = ws_pair().await;
        let _served = serve(&socket, server, false);

        // Multi-byte characters across every fragment boundary.
        let long: String = "aé€😀".repeat(3 * MAX_FRAME_PAYLOAD);
        socket.emit(Str::from("short")).unwrap();
        socket.emit(Str::from(long.clone())).unwrap();
        socket
            .emit_binary(vec![7u8; 5 * MAX_FRAME_PAYLOAD + 1])
            .unwrap();
        assert_eq!(next(&mut client).await, Message::text("4short"));
        assert_eq!(next(&mut client).await, Message::text(format!("4{long}")));
        assert_eq!(
            next(&mut client).await,
            Message::binary(vec![7u8; 5 * MAX_FRAME_PAYLOAD + 1])
        );
    }

    /// The connection task reads while it writes: a client message reaches the handler
    /// and a packet queued meanwhile is written, in the one task.
    #[tokio::test]
    async fn reads_and_writes_in_one_task() {
        let socket = socket();
        let (server, mut client) = ws_pair().await;
        let _served = serve(&socket, server, false);

        client.send(Message::text("3")).await.unwrap(); // pong
        tokio::time::timeout(TIMEOUT, socket.heartbeat.notified())
            .await
            .expect("the pong should reach the heartbeat");
        socket.emit(Str::from("after")).unwrap();
        assert_eq!(next(&mut client).await, Message::text("4after"));
    }

    /// A websocket session's heartbeat runs in the connection task: it pings, and a client
    /// that does not answer is closed.
    #[tokio::test]
    async fn inline_heartbeat_pings_and_closes_a_silent_client() {
        let closed = Arc::new(std::sync::Mutex::new(None));
        let socket = {
            let closed = closed.clone();
            Arc::new(Socket::<()>::new(
                ProtocolVersion::V4,
                TransportType::Websocket,
                &EngineIoConfig::default(),
                Request::<()>::default().into_parts().0,
                Box::new(move |_, reason| *closed.lock().unwrap() = Some(reason)),
                false,
            ))
        };
        let (server, mut client) = ws_pair().await;
        let config = EngineIoConfig {
            ping_interval: Duration::from_millis(50),
            ping_timeout: Duration::from_millis(50),
            ..EngineIoConfig::default()
        };
        let _served = serve_with(config.clone(), &socket, server, true);

        // The first ping comes after one interval; a pong keeps the session.
        assert_eq!(next(&mut client).await, Message::text("2"));
        client.send(Message::text("3")).await.unwrap();
        assert_eq!(next(&mut client).await, Message::text("2"));
        assert_eq!(*closed.lock().unwrap(), None);
        // No answer this time.
        tokio::time::sleep(config.ping_timeout * 3).await;
        assert_eq!(
            closed.lock().unwrap().clone(),
            Some(DisconnectReason::HeartbeatTimeout)
        );
    }
}
