//! Who is in which room, across every gateway replica: the types of the
//! [`Presence`](crate::backend::Presence) operations.
//!
//! Presence is kept per connection so that a user with two tabs on two
//! replicas is one member, and a replica that dies without a word can have
//! exactly its own connections swept away by a survivor.

use chat_core::events::Change;
use chat_core::{Message, MessageId, RoomName, UserRef};
use serde::Deserialize;

/// One live connection as presence records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The room it is in.
    pub room: RoomName,
    /// Unique id of the connection (the Socket.IO socket id).
    pub conn: String,
    /// Its user.
    pub user: UserRef,
}

/// A connection asking to join its room.
#[derive(Debug)]
pub struct JoinRequest<'a> {
    /// The connection.
    pub connection: &'a Connection,
    /// The web session that minted its token, checked against revocations.
    pub session: Option<&'a str>,
    /// The last message id the client saw.
    pub since: Option<MessageId>,
    /// Most history messages to return.
    pub history_limit: usize,
}

/// What a connection sees when it joins: taken atomically with its entry.
#[derive(Debug)]
pub struct Snapshot {
    /// The room's event sequence number the snapshot includes.
    pub seq: u64,
    /// Each user in the room once.
    pub members: Vec<UserRef>,
    /// Whether `history` holds everything after `since`.
    pub recovered: bool,
    /// Messages, oldest first.
    pub history: Vec<Message>,
    /// With `since`: the edits and deletions made after it to messages at or before it.
    pub changes: Vec<Change>,
    /// Messages after the user's read marker (0 without one, at most 1000).
    pub unread: u64,
}

/// The answer to a join.
#[derive(Debug)]
pub enum JoinOutcome {
    /// Registered; here is the room as it stands.
    Joined(Snapshot),
    /// The web session was logged out: nothing was registered.
    Revoked,
}

/// What a heartbeat learned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Heartbeat {
    /// Whether this node's heartbeat was still there.
    pub was_alive: bool,
    /// The data epoch; it changes when Redis loses its data.
    pub epoch: String,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Sweep {
    /// Connections of dead nodes removed.
    pub connections_removed: u64,
    /// Users announced as exited.
    pub users_exited: u64,
}
