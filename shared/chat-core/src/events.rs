//! The Socket.IO events of the contract: their names and payloads.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

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

/// At most one `user typing` per user per this many milliseconds reaches a room.
pub const TYPING_THROTTLE_MS: u64 = 2000;

/// Most messages `welcome` or one `history` page carries.
pub const HISTORY_PAGE_MAX: usize = 100;

/// The `welcome` payload.
#[derive(Debug, Clone, Serialize)]
pub struct Welcome {
    /// The room joined.
    pub room: String,
    /// The connecting user.
    pub you: UserRef,
    /// Each user in the room once.
    pub members: Vec<UserRef>,
    /// Recent messages, oldest first, already serialized once by the store.
    pub history: Vec<Box<RawValue>>,
    /// Whether `history` holds every message after the client's `since`.
    pub recovered: bool,
    /// Edits and deletions made after `since` to messages at or before it.
    pub changes: Vec<Change>,
    /// Messages after this user's last `read` (0 when none, at most 1000).
    pub unread: u64,
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
#[derive(Debug, Clone, Serialize)]
pub struct MessageEdited<'a> {
    /// The message.
    pub id: MessageId,
    /// Its room.
    pub room: &'a str,
    /// Its text now.
    pub text: &'a str,
    /// When it was edited (ms).
    pub edited_ts: u64,
}

/// The `message deleted` payload.
#[derive(Debug, Clone, Serialize)]
pub struct MessageDeleted<'a> {
    /// The message.
    pub id: MessageId,
    /// Its room.
    pub room: &'a str,
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
        messages: Vec<Box<RawValue>>,
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
    pub fn ok(messages: Vec<Box<RawValue>>) -> Self {
        Self::Ok { ok: true, messages }
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

/// Serializes a message once, for every recipient to share.
pub fn raw_message(message: &Message) -> Box<RawValue> {
    // A `Message` has only strings and integers: serializing cannot fail.
    serde_json::value::to_raw_value(message)
        .unwrap_or_else(|_| unreachable!("a Message always serializes"))
}
