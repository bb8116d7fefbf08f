//! The six things a chat backend does, as traits, so that the services
//! never know whether they talk to Redis or to the in-memory backend of the
//! single-process mode. One behaviour test suite runs against both.

use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::events::Change;
use chat_core::{Message, MessageId, RoomName, UserRef};
use tokio::sync::mpsc;

use crate::error::StoreError;
use crate::events::Published;
use crate::history::{ChangeOutcome, MessageChange, NewMessage, Replicated};
use crate::presence::{Connection, Heartbeat, JoinOutcome, JoinRequest, Sweep};

/// What happened to one room of a per-room operation.
pub type PerRoom<T> = Vec<(RoomName, Result<T, StoreError>)>;

/// How many fan-out events may wait for the consumer before the producer waits.
pub const SUBSCRIPTION_CAPACITY: usize = 65_536;

/// Something every subscriber is told.
#[derive(Debug)]
pub enum FanoutEvent {
    /// An event in a room.
    Room(RoomName, Published),
    /// A web session was logged out: end its connections.
    Revoked(String),
    /// The subscription was lost and is back: events published meanwhile
    /// were missed, and the rooms' messages since then should be read back.
    Resubscribed,
}

/// The events of the subscribed rooms and every revocation, in publish order.
pub type Subscription = mpsc::Receiver<FanoutEvent>;

/// Who is in which room. Each multi-step decision is atomic.
#[async_trait]
pub trait Presence: Send + Sync {
    /// The node (replica) this handle acts for.
    fn node(&self) -> &str;
    /// Registers a connection and returns the room's snapshot, atomically;
    /// `silent` suppresses `user entered`.
    async fn join(&self, request: JoinRequest<'_>, silent: bool)
    -> Result<JoinOutcome, StoreError>;
    /// Releases a connection; the user's `user exited` follows after `grace`
    /// unless another of their connections appears first.
    async fn leave(&self, connection: &Connection, grace: Duration) -> Result<(), StoreError>;
    /// Refreshes this node's heartbeat in each of `rooms` for `ttl` and reads
    /// each room's data epoch (per room: on a cluster, each room's shard can
    /// fail or lose its data on its own).
    async fn heartbeat(
        &self,
        rooms: &[RoomName],
        ttl: Duration,
        epoch_candidate: &str,
    ) -> PerRoom<Heartbeat>;
    /// Sweeps dead nodes out of `rooms` and announces users whose exit grace
    /// has passed. Fails if any room could not be swept (the others were).
    async fn sweep(
        &self,
        rooms: &[RoomName],
        grace: Duration,
        max_exits: u64,
    ) -> Result<Sweep, StoreError>;
    /// Registers again connections the store lost; `silent` when nobody saw them leave.
    async fn restore(&self, connections: &[Connection], silent: bool) -> Result<u64, StoreError>;
    /// Removes this node from `rooms` (after its connections left).
    async fn deregister(&self, rooms: &[RoomName]) -> Result<(), StoreError>;
    /// How many users are in each room (users within their exit grace count).
    async fn member_counts(&self, rooms: &[RoomName]) -> Result<Vec<(RoomName, u64)>, StoreError>;
}

/// Each room's messages.
#[async_trait]
pub trait History: Send + Sync {
    /// Stores a message and publishes it to every subscriber in one atomic step.
    /// It is not yet known to be held by any Redis replica: where the
    /// deployment asks for that, [`History::replicated`] says when it is.
    async fn send(&self, message: NewMessage<'_>) -> Result<MessageId, StoreError>;
    /// Waits until as many Redis replicas as the deployment asks for
    /// (`REDIS_WAIT_REPLICAS`) hold everything written to `room` so far, and
    /// `message` (when given) among it; answers at once when it asks for none.
    /// Fails when they do not within the store's wait (the writes stay
    /// stored; asking again waits again). Waiting holds up nothing but its
    /// callers.
    async fn replicated(
        &self,
        room: &RoomName,
        message: Option<MessageId>,
    ) -> Result<Replicated, StoreError>;
    /// Up to `limit` messages just after `after`, oldest first.
    async fn history_after(
        &self,
        room: &RoomName,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;
    /// Up to `limit` messages just before `before`, oldest first.
    async fn history_before(
        &self,
        room: &RoomName,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;
    /// Edits or deletes a message (only its author may), storing the change
    /// and publishing it in one atomic step: after the message itself, and
    /// never an edit after the deletion. Like [`History::send`], it does not
    /// wait for Redis replicas.
    async fn change(&self, change: MessageChange<'_>) -> Result<ChangeOutcome, StoreError>;
    /// The edits and deletions made since `since` to messages at or before
    /// it, each message once, as it stands now.
    async fn changes_after(
        &self,
        room: &RoomName,
        since: MessageId,
    ) -> Result<Vec<Change>, StoreError>;
}

/// Each user's read marker per room, shared by all their devices.
#[async_trait]
pub trait Reads: Send + Sync {
    /// Marks `room` read by `user_id` up to message `id` (never backwards).
    async fn mark_read(
        &self,
        room: &RoomName,
        user_id: &str,
        id: MessageId,
    ) -> Result<(), StoreError>;
    /// How many messages of each of `rooms` came after `user_id`'s read
    /// marker (0 without one, at most [`UNREAD_MAX`]): a few reads per room,
    /// never a scan of the history.
    async fn unread_counts(
        &self,
        rooms: &[RoomName],
        user_id: &str,
    ) -> Result<Vec<(RoomName, u64)>, StoreError>;
}

/// Most unread messages reported for one room.
pub const UNREAD_MAX: u64 = 1000;

/// Signals that are published to the room but never stored.
#[async_trait]
pub trait Signals: Send + Sync {
    /// Publishes `user typing` for `user` in `room` unless one was published
    /// for them there within `throttle` (by any replica). Returns whether it
    /// was published.
    async fn typing(
        &self,
        room: &RoomName,
        user: &UserRef,
        throttle: Duration,
    ) -> Result<bool, StoreError>;
}

/// Delivery of room events and revocations to every replica.
#[async_trait]
pub trait Fanout: Send + Sync {
    /// Starts receiving the events of `rooms` and every revocation.
    fn subscribe(&self, rooms: &[RoomName]) -> Result<Subscription, StoreError>;
    /// Whether the subscription is live right now.
    fn is_subscribed(&self) -> bool;
}

/// Logged-out web sessions.
#[async_trait]
pub trait Revocations: Send + Sync {
    /// Marks web session `sid` as logged out for `ttl` and tells every replica.
    async fn revoke_session(&self, sid: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Which of web sessions `sids` were logged out (in one round trip).
    async fn revoked_among(&self, sids: &[String]) -> Result<Vec<String>, StoreError>;
}

/// A whole backend.
#[async_trait]
pub trait Backend: Presence + History + Reads + Signals + Fanout + Revocations + Debug {
    /// Whether the store answers right now.
    async fn ping(&self) -> Result<(), StoreError>;
}
