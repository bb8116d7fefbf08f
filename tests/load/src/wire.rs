//! Engine.IO v4 / Socket.IO v5 framing over one WebSocket, just the subset
//! the contract needs: open, CONNECT with an auth payload, events, acks and
//! the ping/pong heartbeat. One WebSocket text frame is one Engine.IO packet.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use chat_core::MessageId;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Utf8Bytes};

/// The WebSocket of one Socket.IO connection.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// One gateway (or peer) replica to connect to.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `ws://host:port/socket.io/?EIO=4&transport=websocket`.
    pub(crate) ws_url: String,
    /// The socket address of `ws_url`.
    pub(crate) addr: SocketAddr,
}

impl Target {
    /// From `http://127.0.0.1:8081`, `ws://127.0.0.1:8081` or `127.0.0.1:8081`;
    /// only loopback addresses are accepted.
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .trim_start_matches("http://")
            .trim_start_matches("ws://")
            .trim_end_matches('/');
        let host = rest.split('/').next().unwrap_or(rest);
        let addr: SocketAddr = host
            .parse()
            .with_context(|| format!("--url {url}: expected http://127.0.0.N:PORT"))?;
        if !addr.ip().is_loopback() {
            bail!("--url {url}: only loopback addresses (127.0.0.0/8) may be targeted");
        }
        Ok(Self {
            ws_url: format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
            addr,
        })
    }
}

/// Why a handshake did not end in `welcome`.
#[derive(Debug)]
pub(crate) struct HandshakeError(pub(crate) String);

/// Opens the TCP connection from `source`, upgrades it, sends the CONNECT
/// frame `connect` and waits for `welcome`. Returns the socket and the raw
/// welcome frame (read with [`Welcome::parse`] or [`newest_in_welcome`]).
pub(crate) async fn open(
    target: &Target,
    source: IpAddr,
    connect: String,
    timeout: Duration,
) -> Result<(Ws, Utf8Bytes), HandshakeError> {
    match tokio::time::timeout(timeout, open_inner(target, source, connect)).await {
        Ok(r) => r.map_err(|e| HandshakeError(short_error(&e))),
        Err(_) => Err(HandshakeError("timeout".into())),
    }
}

/// The Socket.IO CONNECT frame that carries `token` as `auth`.
pub(crate) fn connect_frame(token: &str) -> String {
    connect_frame_with_since(token, None)
}

/// The CONNECT frame of a reconnect: `auth` = `{ token, since }`, `since`
/// being the id of the last message the client received (none: the same as
/// [`connect_frame`]).
pub(crate) fn connect_frame_with_since(token: &str, since: Option<MessageId>) -> String {
    let auth = match since {
        Some(id) => serde_json::json!({ "token": token, "since": id.to_string() }),
        None => serde_json::json!({ "token": token }),
    };
    format!("40{auth}")
}

/// What the load tool reads of a `welcome` frame.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Welcome {
    /// The messages it carries, oldest first.
    #[serde(default)]
    pub(crate) history: Vec<Entry>,
    /// Whether `history` holds every message after the handshake's `since`.
    #[serde(default)]
    pub(crate) recovered: bool,
}

/// One message of a `welcome.history`: just what identifies it.
#[derive(Debug, Deserialize)]
pub(crate) struct Entry {
    /// Its id within the room.
    pub(crate) id: MessageId,
    /// Its text (the load tool's texts carry sender, sequence and send time).
    pub(crate) text: String,
}

impl Welcome {
    /// Reads a raw `42["welcome",{…}]` frame.
    pub(crate) fn parse(frame: &str) -> anyhow::Result<Self> {
        let payload = frame.strip_prefix("42").context("not a Socket.IO event")?;
        let (name, welcome): (String, Self) =
            serde_json::from_str(payload).context("reading the welcome payload")?;
        ensure!(name == "welcome", "a {name:?} event, not welcome");
        Ok(welcome)
    }
}

/// The id of the newest message in a raw welcome frame's `history`; `None`
/// when it is empty or unreadable. Cheap when it is empty, however long the
/// member list before it (`history` comes after `members`).
pub(crate) fn newest_in_welcome(frame: &str) -> Option<MessageId> {
    const FIELD: &str = "\"history\":[";
    let at = frame.rfind(FIELD)?;
    if frame[at + FIELD.len()..].starts_with(']') {
        return None;
    }
    Welcome::parse(frame)
        .ok()?
        .history
        .iter()
        .map(|e| e.id)
        .max()
}

/// The WebSocket settings of every client. tungstenite zero-fills its whole
/// read buffer before every read (128 KiB by default), which made reading,
/// not the protocol, most of the tool's CPU; frames here are small, and the
/// buffer still grows for a large one.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES)
}

/// Bytes read from the socket at most per read (see [`ws_config`]).
const READ_BUFFER_BYTES: usize = 4096;

async fn open_inner(
    target: &Target,
    source: IpAddr,
    connect: String,
) -> anyhow::Result<(Ws, Utf8Bytes)> {
    let socket = TcpSocket::new_v4().context("socket")?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("bind {source}"))?;
    let tcp = socket.connect(target.addr).await.context("connect")?;
    tcp.set_nodelay(true).context("nodelay")?;
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(target.ws_url.as_str(), tcp, Some(ws_config()))
            .await
            .context("websocket upgrade")?;
    let mut connect = Some(connect);
    loop {
        let frame = ws
            .next()
            .await
            .ok_or_else(|| anyhow!("closed during handshake"))?
            .context("read")?;
        let WsMessage::Text(text) = frame else {
            if let WsMessage::Close(_) = frame {
                bail!("closed during handshake");
            }
            continue;
        };
        if text.as_str().starts_with("42[\"welcome\"") {
            return Ok((ws, text));
        }
        let text = text.as_str();
        if text.starts_with('0')
            && let Some(frame) = connect.take()
        {
            ws.send(WsMessage::text(frame))
                .await
                .context("send CONNECT")?;
        } else if text == PING {
            ws.send(pong()).await.context("pong")?;
        } else if let Some(err) = text.strip_prefix("44") {
            let message = serde_json::from_str::<serde_json::Value>(err)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| err.to_owned());
            bail!("refused: {message}");
        }
    }
}

/// The first line of an error chain, short enough to group failures by.
fn short_error(e: &anyhow::Error) -> String {
    let mut s = format!("{e:#}");
    if let Some(i) = s.find(" (os error") {
        s.truncate(i);
    }
    s.chars().take(100).collect()
}

/// A `message sent` emit with ack id `ack`.
pub(crate) fn message_sent(ack: u64, text: &str) -> WsMessage {
    let text = serde_json::Value::from(text);
    WsMessage::text(format!("42{ack}[\"message sent\",{text}]"))
}

/// A `typing` emit: no payload, no ack.
pub(crate) fn typing() -> WsMessage {
    WsMessage::text("42[\"typing\"]")
}

/// A `history { before, limit }` emit with ack id `ack`.
pub(crate) fn history(ack: u64, before: &str, limit: usize) -> WsMessage {
    let request = serde_json::json!({ "before": before, "limit": limit });
    WsMessage::text(format!("42{ack}[\"history\",{request}]"))
}

/// A `read { id }` emit with ack id `ack`.
pub(crate) fn read(ack: u64, id: &str) -> WsMessage {
    let request = serde_json::json!({ "id": id });
    WsMessage::text(format!("42{ack}[\"read\",{request}]"))
}

/// The `id` of an `{ ok: true, id }` ack body (`[{…}]`); `None` for any other.
pub(crate) fn acked_id(body: &str) -> Option<MessageId> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get(0)?
        .get("id")?
        .as_str()?
        .parse()
        .ok()
}

/// The `reason` of a `session ended` frame; `None` for any other frame.
pub(crate) fn session_ended(text: &str) -> Option<String> {
    let rest = text.strip_prefix("42[\"session ended\",")?;
    let payload = rest.strip_suffix(']')?;
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()?
        .get("reason")?
        .as_str()
        .map(str::to_owned)
}

/// The Engine.IO ping, as a text frame's whole text.
const PING: &str = "2";

/// The Engine.IO pong, the answer to every ping.
pub(crate) fn pong() -> WsMessage {
    WsMessage::text("3")
}

/// The text of a frame a client read (`frame` as its stream yields it), or
/// why its connection ended: a WebSocket close, a read error, or an
/// Engine.IO close or Socket.IO disconnect from the server. `Ok(None)` for
/// a frame without text (binary, WebSocket ping and pong).
pub(crate) fn text(frame: Option<Result<WsMessage, WsError>>) -> Result<Option<Utf8Bytes>, String> {
    match frame {
        Some(Ok(WsMessage::Text(t))) if is_close(t.as_str()) => {
            Err("disconnected by server".into())
        }
        Some(Ok(WsMessage::Text(t))) => Ok(Some(t)),
        Some(Ok(WsMessage::Close(_))) | None => Err("closed by server".into()),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => Err(format!("read: {e}")),
    }
}

/// [`text`] for a reader that holds the whole socket `ws`: it answers a
/// ping there and then, and a ping's text is not returned (`Ok(None)`).
pub(crate) async fn text_answering_ping(
    ws: &mut Ws,
    frame: Option<Result<WsMessage, WsError>>,
) -> Result<Option<Utf8Bytes>, String> {
    let text = text(frame)?;
    if text.as_ref().is_some_and(|t| t.as_str() == PING) {
        ws.send(pong()).await.map_err(|e| format!("pong: {e}"))?;
        return Ok(None);
    }
    Ok(text)
}

/// Whether a text frame is an Engine.IO close or a Socket.IO disconnect.
fn is_close(text: &str) -> bool {
    text == "1" || text.starts_with("41")
}

/// What a received text frame means to the load tool.
pub(crate) enum Incoming<'a> {
    /// Engine.IO ping: answer `3`.
    Ping,
    /// `message received`: the `id` and `text` fields of the Message.
    Delivery {
        /// The message id (`None` if none could be read).
        id: Option<MessageId>,
        /// The text as sent.
        text: &'a str,
    },
    /// An ack: its id and whether it said `ok: true`.
    Ack(u64, bool, &'a str),
    /// `user typing` (someone else in the room is typing).
    Typing,
    /// Anything else (`user entered`, ...).
    Other,
}

/// Classifies one text frame without building a JSON tree on the hot path.
pub(crate) fn classify(text: &str) -> Incoming<'_> {
    if text == PING {
        return Incoming::Ping;
    }
    if let Some(rest) = text.strip_prefix("42[\"message received\",") {
        const FIELD: &str = "\"text\":\"";
        if let Some(i) = rest.find(FIELD) {
            let body = &rest[i + FIELD.len()..];
            if let Some(end) = body.find('"') {
                return Incoming::Delivery {
                    id: message_id(rest),
                    text: &body[..end],
                };
            }
        }
        return Incoming::Other;
    }
    if text.starts_with("42[\"user typing\"") {
        return Incoming::Typing;
    }
    if let Some(rest) = text.strip_prefix("43") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Ok(id) = rest[..digits].parse() {
            let body = &rest[digits..];
            return Incoming::Ack(id, body.contains("\"ok\":true"), body);
        }
        return Incoming::Other;
    }
    Incoming::Other
}

/// The `id` of a Message object, without parsing it as a whole: its keys
/// come in any order (the gateway's are Redis's `cjson`'s), and `user` has an
/// `id` too, so the first `"id":"…"` whose value is a message id (`<ms>-<seq>`)
/// is taken; the load tool's user ids (`load-…`) never look like one. Inside
/// a string, `"id":"` cannot occur (its quotes would be escaped).
fn message_id(message: &str) -> Option<MessageId> {
    const KEY: &str = "\"id\":\"";
    message.match_indices(KEY).find_map(|(at, _)| {
        let value = &message[at + KEY.len()..];
        value[..value.find('"')?].parse().ok()
    })
}

/// Microseconds since the tool started: the clock every latency is measured on.
pub(crate) fn now_us() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The ack error string of an `{ok:false,error}` body, for grouping.
pub(crate) fn ack_error(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get(0)
                .and_then(|a| a.get("error"))
                .and_then(|e| e.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(60).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WELCOME: &str = r#"42["welcome",{"room":"r0","you":{"id":"u","name":"n"},"members":[{"id":"u","name":"n"}],"history":[{"id":"5-1","room":"r0","user":{"id":"a","name":"b"},"text":"1:2:3","ts":5},{"id":"12-0","room":"r0","user":{"id":"a","name":"b"},"text":"say \"history\":[","ts":12,"edited_ts":13}],"recovered":false,"changes":[],"unread":0}]"#;

    #[test]
    fn welcome_history_is_read_with_ids_and_texts() {
        let w = Welcome::parse(WELCOME).expect("a welcome");
        assert!(!w.recovered);
        let ids: Vec<String> = w.history.iter().map(|e| e.id.to_string()).collect();
        assert_eq!(ids, ["5-1", "12-0"]);
        assert_eq!(w.history[1].text, "say \"history\":[");
        assert_eq!(
            newest_in_welcome(WELCOME).map(|id| id.to_string()),
            Some("12-0".into())
        );
        let empty = r#"42["welcome",{"room":"r0","you":{"id":"u","name":"n"},"members":[],"history":[],"recovered":true}]"#;
        assert!(newest_in_welcome(empty).is_none());
        assert!(Welcome::parse(empty).expect("a welcome").recovered);
        assert!(Welcome::parse(r#"42["user entered",{"id":"u","name":"n"}]"#).is_err());
    }

    #[test]
    fn a_frame_is_text_nothing_or_the_end_of_the_connection() {
        let read = |m: WsMessage| text(Some(Ok(m))).map(|t| t.map(|t| t.as_str().to_owned()));
        fn ended<T>(why: &str) -> Result<T, String> {
            Err(why.to_owned())
        }
        assert_eq!(read(WsMessage::text("2")), Ok(Some("2".into())));
        assert_eq!(
            read(WsMessage::text("42[\"x\"]")),
            Ok(Some("42[\"x\"]".into()))
        );
        assert_eq!(read(WsMessage::binary(vec![1u8])), Ok(None));
        assert_eq!(read(WsMessage::text("1")), ended("disconnected by server"));
        assert_eq!(read(WsMessage::text("41")), ended("disconnected by server"));
        assert_eq!(read(WsMessage::Close(None)), ended("closed by server"));
        assert_eq!(text(None).map(|_| ()), ended("closed by server"));
    }

    #[test]
    fn deliveries_carry_their_leading_id() {
        let d = r#"42["message received",{"id":"17-3","room":"r0","user":{"id":"u","name":"n"},"text":"1:2:3","ts":1}]"#;
        let id = |d| match classify(d) {
            Incoming::Delivery { id, text } => {
                assert_eq!(text, "1:2:3");
                id.map(|id| id.to_string())
            }
            _ => panic!("not a delivery: {d}"),
        };
        assert_eq!(id(d).as_deref(), Some("17-3"));
        // Keys in any order; the user's id is not the message's.
        let d = r#"42["message received",{"user":{"name":"n","id":"load-1-2"},"ts":1,"text":"1:2:3","id":"17-3","room":"r0"}]"#;
        assert_eq!(id(d).as_deref(), Some("17-3"));
        let d =
            r#"42["message received",{"room":"r0","user":{"id":"u","name":"n"},"text":"1:2:3"}]"#;
        assert_eq!(id(d), None);
    }

    #[test]
    fn read_frames_and_acked_ids() {
        let r = read(7, "12-3").into_text().expect("text frame");
        assert_eq!(r.as_str(), r#"427["read",{"id":"12-3"}]"#);
        let id = acked_id(r#"[{"ok":true,"id":"17-2"}]"#).map(|id| id.to_string());
        assert_eq!(id.as_deref(), Some("17-2"));
        assert!(acked_id(r#"[{"ok":false,"error":"rate_limited"}]"#).is_none());
    }

    #[test]
    fn reconnect_frames_carry_since() {
        assert_eq!(connect_frame("t"), r#"40{"token":"t"}"#);
        let since = "12-0".parse().ok();
        let frame = connect_frame_with_since("t", since);
        let auth: serde_json::Value =
            serde_json::from_str(&frame[2..]).expect("the auth payload is JSON");
        assert_eq!(auth["token"], "t");
        assert_eq!(auth["since"], "12-0");
    }
}
