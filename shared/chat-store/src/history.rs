//! A room's messages: the types of the [`History`](crate::backend::History)
//! operations.

use chat_core::{MessageId, MessageText, RoomName, UserRef};

/// How many messages each room keeps at least (approximate trimming keeps a few more).
pub const HISTORY_KEPT: u64 = 1000;

/// A message to store.
#[derive(Debug)]
pub struct NewMessage<'a> {
    /// The room.
    pub room: &'a RoomName,
    /// The sender.
    pub user: &'a UserRef,
    /// The checked text.
    pub text: &'a MessageText,
    /// The highest id this replica has seen in the room, so ids keep
    /// increasing even after Redis lost the room's stream.
    pub floor: Option<MessageId>,
    /// W3C trace context to carry to every replica.
    pub trace: Option<&'a str>,
}

/// How many changes (edits, deletions) each room logs at least, for
/// `welcome.changes`.
pub const CHANGES_KEPT: u64 = 1000;

/// What became of an edit or a deletion. The edit and delete scripts return
/// these names (`done`, `not_found`, `forbidden`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOutcome {
    /// Stored and published.
    Done,
    /// No such message in the kept history, or it was deleted.
    NotFound,
    /// The message is someone else's.
    Forbidden,
}

/// An edit or a deletion to store.
#[derive(Debug, Clone, Copy)]
pub struct MessageChange<'a> {
    /// The room.
    pub room: &'a RoomName,
    /// The message.
    pub id: MessageId,
    /// The user asking (only the author may).
    pub user_id: &'a str,
    /// The new text, or `None` to delete.
    pub text: Option<&'a MessageText>,
}

/// What waiting for the Redis replicas found (see
/// [`History::replicated`](crate::backend::History::replicated)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicated {
    /// As many replicas as the deployment asks for (`REDIS_WAIT_REPLICAS`)
    /// hold everything written to the room so far, or it asks for none.
    Held,
    /// The message is not on the room's primary any more: it was lost with a
    /// primary that failed before any replica received it. Sending it again
    /// stores it anew.
    Lost,
}
