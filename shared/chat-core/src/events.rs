//! The Socket.IO events of the contract: their names and payloads.

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;
use crate::message::{Message, MessageId};
use crate::user::UserRef;

/// Server → client: once, right after a successful handshake.
pub const WELCOME: &str = "welcome";
/// Server → client: a user's first live connection in the room appeared.
pub const USER_ENTERED: &str = "user entered";
/// Server → client: a user's last live connection in the room is gone.
pub const USER_EXITED: &str = "user exited";
/// Server → client: a message in the room.
pub const MESSAGE_RECEIVED: &str = "message received";
/// Server → client: the server is about to close this connection.
pub const SESSION_ENDED: &str = "session ended";
/// Client → server: send a message.
pub const MESSAGE_SENT: &str = "message sent";
/// Client → server: page back through history.
pub const HISTORY: &str = "history";
/// Client → server: replace the connection's token.
pub const REFRESH: &str = "refresh";
/// Client → server: the user is typing (no payload, no ack).
pub const TYPING: &str = "typing";
/// Server → client: another user of the room is typing.
pub const USER_TYPING: &str = "user typing";

/// Client → server: edit one of one's own messages.
pub const MESSAGE_EDIT: &str = "message edit";
/// Client → server: delete one of one's own messages.
pub const MESSAGE_DELETE: &str = "message delete";
/// Client → server: this user has read the room up to a message.
pub const READ: &str = "read";
/// Server → client: a message was edited.
pub const MESSAGE_EDITED: &str = "message edited";
/// Server → client: a message was deleted.
pub const MESSAGE_DELETED: &str = "message deleted";

/// Declares [`RoomEvent`]: each event a room's members are told, with its
/// wire name and payload type side by side, one line each.
macro_rules! room_events {
    ($($(#[$doc:meta])* $variant:ident($payload:ty) = $name:ident,)+) => {
        /// Something that happened in a room, as every member is told it:
        /// its wire name and its payload. It serializes as socket.io clients
        /// read an event, `["<name>",<payload>]`.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum RoomEvent {
            $($(#[$doc])* $variant($payload),)+
        }

        impl RoomEvent {
            /// The event's name on the wire.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)+
                }
            }

            /// The event called `name` with the payload `data` (JSON):
            /// `None` when no room event has that name.
            pub fn from_wire(name: &str, data: &str) -> Option<Result<Self, serde_json::Error>> {
                match name {
                    $($name => Some(serde_json::from_str(data).map(Self::$variant)),)+
                    _ => None,
                }
            }
        }

        impl Serialize for RoomEvent {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeTuple;
                let mut event = serializer.serialize_tuple(2)?;
                event.serialize_element(self.name())?;
                match self {
                    $(Self::$variant(payload) => event.serialize_element(payload)?,)+
                }
                event.end()
            }
        }
    };
}

room_events! {
    /// A message was stored.
    MessageReceived(Message) = MESSAGE_RECEIVED,
    /// A user's first connection appeared.
    UserEntered(UserRef) = USER_ENTERED,
    /// A user's last connection is gone.
    UserExited(UserRef) = USER_EXITED,
    /// A user is typing (throttled; never stored).
    UserTyping(UserRef) = USER_TYPING,
    /// A message was edited.
    MessageEdited(MessageEdited) = MESSAGE_EDITED,
    /// A message was deleted.
    MessageDeleted(MessageDeleted) = MESSAGE_DELETED,
}

/// At most one `user typing` per user per this many milliseconds reaches a room.
pub const TYPING_THROTTLE_MS: u64 = 2000;

/// Most unread messages reported for one room (`welcome.unread`).
pub const UNREAD_MAX: u64 = 1000;

/// Most messages `welcome` or one `history` page carries.
pub const HISTORY_PAGE_MAX: usize = 100;

/// Most bytes of JSON payload in a reply the server builds (`welcome`, a
/// `history` page): past it, the reply carries fewer messages.
pub const REPLY_MAX_BYTES: usize = 512 * 1024;

/// The `welcome` payload.
#[derive(Debug, Clone, Serialize)]
pub struct Welcome {
    /// The room joined.
    pub room: String,
    /// The connecting user.
    pub you: UserRef,
    /// Each user in the room once.
    pub members: Vec<UserRef>,
    /// Recent messages, oldest first.
    pub history: Vec<Message>,
    /// Whether `history` holds every message after the client's `since`.
    pub recovered: bool,
    /// Edits and deletions made after `since` to messages at or before it.
    pub changes: Vec<Change>,
    /// Messages after this user's last `read` (0 when none, at most 1000).
    pub unread: u64,
}

impl Welcome {
    /// Makes the welcome at most `max_bytes` of JSON (members are never
    /// dropped). `changes` that do not fit are all dropped, then the oldest
    /// messages; either leaves a gap after `since` (when the client gave one),
    /// so `recovered` becomes false.
    pub fn fit(mut self, max_bytes: usize, since_given: bool) -> Self {
        let changes_len = json_array_len(self.changes.iter().map(json_len));
        let bare = json_len(&Welcome {
            history: Vec::new(),
            changes: Vec::new(),
            ..self.clone()
        });
        let mut room = max_bytes.saturating_sub(bare);
        // `bare` already holds the empty array, `[]`.
        let changes_extra = changes_len - 2;
        if changes_extra > room {
            self.changes.clear();
            self.recovered = false;
        } else {
            room -= changes_extra;
        }
        let kept = newest_within(&self.history, room);
        if kept < self.history.len() {
            self.history.drain(..self.history.len() - kept);
            if since_given {
                self.recovered = false;
            }
        }
        self
    }
}

/// How many of `messages`, counted from the newest (the last), fit as a
/// JSON array in `room` more bytes than an empty one (`[]`).
pub fn newest_within(messages: &[Message], room: usize) -> usize {
    let mut used = 0;
    messages
        .iter()
        .rev()
        .take_while(|m| {
            // A comma before every element but the first.
            used += json_len(m) + usize::from(used > 0);
            used <= room
        })
        .count()
}

/// The length of `value` as JSON (0 if it does not serialize), counted
/// without keeping the bytes.
fn json_len<T: Serialize>(value: &T) -> usize {
    /// Counts what is written to it.
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, value).map_or(0, |()| counter.0)
}

/// The length of a JSON array of elements of the given lengths.
fn json_array_len(lengths: impl Iterator<Item = usize>) -> usize {
    let (sum, n) = lengths.fold((0usize, 0usize), |(sum, n), len| (sum + len, n + 1));
    2 + sum + n.saturating_sub(1)
}

/// An edit or a deletion as `welcome.changes` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Change {
    /// `{ id, text, edited_ts }`: the message's text now.
    Edited {
        /// The message.
        id: MessageId,
        /// Its text now.
        text: String,
        /// When it was last edited (ms).
        edited_ts: u64,
    },
    /// `{ id, deleted: true }`: the message is gone.
    Deleted {
        /// The message.
        id: MessageId,
        /// Always `true`.
        deleted: bool,
    },
}

impl Change {
    /// The message it is about.
    pub fn id(&self) -> MessageId {
        match self {
            Self::Edited { id, .. } | Self::Deleted { id, .. } => *id,
        }
    }
}

/// The `message edited` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEdited {
    /// The message.
    pub id: MessageId,
    /// Its room.
    pub room: String,
    /// Its text now.
    pub text: String,
    /// When it was edited (ms).
    pub edited_ts: u64,
}

/// The `message deleted` payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageDeleted {
    /// The message.
    pub id: MessageId,
    /// Its room.
    pub room: String,
}

/// The `message edit` request payload: `{ id, text }`.
#[derive(Debug, Clone, Deserialize)]
pub struct EditRequest {
    /// The message to edit.
    pub id: MessageId,
    /// Its new text (checked like a sent message's).
    pub text: String,
}

/// The `message delete` request payload: `{ id }`.
#[derive(Debug, Clone, Deserialize)]
pub struct DeleteRequest {
    /// The message to delete.
    pub id: MessageId,
}

/// The `read` request payload: `{ id }`.
#[derive(Debug, Clone, Deserialize)]
pub struct ReadRequest {
    /// Read up to this message.
    pub id: MessageId,
}

/// The ack of `message edit`, `message delete` and `read`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum DoneAck {
    /// Done.
    Ok {
        /// Always `true`.
        ok: bool,
    },
    /// Refused.
    Err {
        /// Always `false`.
        ok: bool,
        /// Why.
        error: ErrorCode,
    },
}

impl DoneAck {
    /// Done.
    pub fn ok() -> Self {
        Self::Ok { ok: true }
    }
    /// Refused.
    pub fn err(error: ErrorCode) -> Self {
        Self::Err { ok: false, error }
    }
}

/// The `session ended` payload.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SessionEnded {
    /// Why the server closes the connection.
    pub reason: ErrorCode,
}

/// The CONNECT auth payload: `{ token, since }`.
#[derive(Debug, Clone)]
pub struct ConnectAuth {
    /// The room token: `Ok(None)` when absent, `Err(TokenInvalid)` when not a string.
    pub token: Result<Option<String>, ErrorCode>,
    /// The id of the last message the client saw in this room.
    pub since: Option<String>,
}

impl ConnectAuth {
    /// Reads whatever the client sent as its auth payload.
    pub fn from_payload(payload: Option<serde_json::Value>) -> Self {
        let field = |name: &str| {
            payload
                .as_ref()
                .and_then(|p| p.get(name))
                .filter(|v| !v.is_null())
        };
        let token = match field("token") {
            None => Ok(None),
            Some(serde_json::Value::String(t)) => Ok(Some(t.clone())),
            Some(_) => Err(ErrorCode::TokenInvalid),
        };
        let since = field("since").and_then(|v| v.as_str()).map(str::to_owned);
        Self { token, since }
    }
}

/// The `history` request payload: `{ before, limit }`.
#[derive(Debug, Clone, Deserialize)]
pub struct HistoryRequest {
    /// Messages strictly before this id.
    pub before: MessageId,
    /// How many, at most 100.
    pub limit: usize,
}

/// The ack of `message sent`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum SendAck {
    /// Stored and fanned out.
    Ok {
        /// Always `true`.
        ok: bool,
        /// The id the message was given.
        id: MessageId,
    },
    /// Refused.
    Err {
        /// Always `false`.
        ok: bool,
        /// Why.
        error: ErrorCode,
    },
}

impl SendAck {
    /// A positive ack.
    pub fn ok(id: MessageId) -> Self {
        Self::Ok { ok: true, id }
    }
    /// A negative ack.
    pub fn err(error: ErrorCode) -> Self {
        Self::Err { ok: false, error }
    }
}

/// The ack of `history`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum HistoryAck {
    /// The page, oldest first.
    Ok {
        /// Always `true`.
        ok: bool,
        /// The messages.
        messages: Vec<Message>,
    },
    /// Refused.
    Err {
        /// Always `false`.
        ok: bool,
        /// Why.
        error: ErrorCode,
    },
}

impl HistoryAck {
    /// A page of messages.
    pub fn ok(messages: Vec<Message>) -> Self {
        Self::Ok { ok: true, messages }
    }

    /// A page of messages of at most `max_bytes` of JSON: the newest that
    /// fit (the client pages on from the oldest it got).
    pub fn fitted(mut messages: Vec<Message>, max_bytes: usize) -> Self {
        let bare = json_len(&Self::ok(Vec::new()));
        let kept = newest_within(&messages, max_bytes.saturating_sub(bare));
        messages.drain(..messages.len() - kept);
        Self::ok(messages)
    }

    /// A refusal.
    pub fn err(error: ErrorCode) -> Self {
        Self::Err { ok: false, error }
    }
}

/// The ack of `refresh`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum RefreshAck {
    /// The new token now bounds the connection.
    Ok {
        /// Always `true`.
        ok: bool,
        /// The new expiry, seconds since the epoch.
        exp: u64,
    },
    /// Refused; the old token still applies.
    Err {
        /// Always `false`.
        ok: bool,
        /// Why.
        error: ErrorCode,
    },
}

impl RefreshAck {
    /// Accepted.
    pub fn ok(exp: u64) -> Self {
        Self::Ok { ok: true, exp }
    }
    /// Refused.
    pub fn err(error: ErrorCode) -> Self {
        Self::Err { ok: false, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize, text_len: usize) -> Message {
        Message {
            id: MessageId {
                ms: n as u64,
                seq: 0,
            },
            room: "General".into(),
            user: UserRef {
                id: "u".into(),
                name: "U".into(),
            },
            text: "x".repeat(text_len),
            ts: n as u64,
            edited_ts: None,
        }
    }

    fn welcome(history: Vec<Message>, changes: Vec<Change>) -> Welcome {
        Welcome {
            room: "General".into(),
            you: UserRef {
                id: "u".into(),
                name: "U".into(),
            },
            members: Vec::new(),
            history,
            recovered: true,
            changes,
            unread: 0,
        }
    }

    fn size<T: Serialize>(value: &T) -> usize {
        serde_json::to_vec(value).expect("serializes").len()
    }

    #[test]
    fn a_welcome_that_fits_is_unchanged() {
        let w = welcome((0..3).map(|n| message(n, 10)).collect(), Vec::new());
        let fitted = w.clone().fit(REPLY_MAX_BYTES, true);
        assert_eq!(size(&fitted), size(&w));
        assert!(fitted.recovered);
    }

    #[test]
    fn a_large_welcome_keeps_the_newest_messages_within_the_bound() {
        let history: Vec<_> = (0..100).map(|n| message(n, 8000)).collect();
        let w = welcome(history, Vec::new()).fit(100_000, true);
        assert!(size(&w) <= 100_000, "{}", size(&w));
        assert!(size(&w) > 100_000 - 8200, "as many as fit");
        assert!(!w.recovered, "a gap after since");
        assert_eq!(w.history.last().expect("some").id.ms, 99, "the newest kept");
        let without_since =
            welcome((0..100).map(|n| message(n, 8000)).collect(), Vec::new()).fit(100_000, false);
        assert!(without_since.recovered, "no since, no gap");
    }

    #[test]
    fn changes_that_do_not_fit_are_dropped_and_not_recovered() {
        let changes = (0..100)
            .map(|n| Change::Edited {
                id: MessageId { ms: n, seq: 0 },
                text: "y".repeat(8000),
                edited_ts: 1,
            })
            .collect();
        let w = welcome(vec![message(1, 10)], changes).fit(100_000, true);
        assert!(w.changes.is_empty());
        assert!(!w.recovered);
        assert_eq!(w.history.len(), 1);
    }

    #[test]
    fn a_history_page_keeps_the_newest_messages_within_the_bound() {
        let page: Vec<_> = (0..100).map(|n| message(n, 8000)).collect();
        let ack = HistoryAck::fitted(page, 50_000);
        assert!(size(&ack) <= 50_000);
        let HistoryAck::Ok { messages, .. } = ack else {
            panic!("a page")
        };
        assert!(!messages.is_empty());
        assert_eq!(messages[messages.len() - 1].id.ms, 99);
    }

    #[test]
    fn room_events_serialize_as_the_client_reads_them_and_read_back() {
        let ann = UserRef {
            id: "u".into(),
            name: "Ann".into(),
        };
        let typing = RoomEvent::UserTyping(ann);
        let wire = serde_json::to_string(&typing).expect("serializes");
        assert_eq!(wire, r#"["user typing",{"id":"u","name":"Ann"}]"#);
        let back = RoomEvent::from_wire(USER_TYPING, r#"{"id":"u","name":"Ann"}"#)
            .expect("a room event")
            .expect("its payload");
        assert_eq!(back, typing);
        assert!(RoomEvent::from_wire("nope", "{}").is_none());
        assert!(
            RoomEvent::from_wire(MESSAGE_DELETED, r#"{"id":"1-0"}"#)
                .expect("a room event")
                .is_err(),
            "a payload without its room"
        );
    }
}
