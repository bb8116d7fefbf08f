//! The in-memory backend, for the single-process mode: the same decisions as
//! the Lua scripts, taken under one lock, with events handed to subscribers
//! while the lock is held so that every subscriber sees them in order.
//!
//! Several [`MemoryBackend`]s (one per node) can share a [`MemoryHub`], which
//! is how the behaviour tests run two "replicas" against it.
//!
//! This module is the in-memory backend's data, as [`crate::schema`] is the
//! Redis backend's: a room's state has a part per concept (`RoomPresence`,
//! `RoomHistory`, …). Each concept's operations on it are in the concept's
//! module.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chat_core::events::{Change, RoomEvent, UNREAD_MAX};
use chat_core::{Message, MessageId, RoomName, UserRef};
use tokio::sync::mpsc;

use crate::events::FanoutEvent;
use crate::events::Published;
use crate::node_id::NodeId;

/// Who is in a room, in memory.
#[derive(Default)]
pub(crate) struct RoomPresence {
    /// user id → live connection count (0 while leaving).
    pub(crate) users: HashMap<String, i64>,
    /// user id → display name.
    pub(crate) names: HashMap<String, String>,
    /// connection id → user id.
    pub(crate) conns: HashMap<String, String>,
}

/// A node (replica) as the in-memory store knows it.
#[derive(Default)]
pub(crate) struct NodeState {
    /// Until when (ms) it is alive; 0 before its first heartbeat.
    pub(crate) alive_until_ms: u64,
    /// (room, connection id, user id) of its connections.
    pub(crate) conns: HashSet<(RoomName, String, String)>,
    /// The rooms it tracks: where it has, or recently had, connections or exits to announce.
    pub(crate) rooms: BTreeSet<RoomName>,
}

/// A room's messages in memory.
#[derive(Default)]
pub(crate) struct RoomHistory {
    /// The kept messages, oldest first.
    pub(crate) entries: VecDeque<Entry>,
    pub(crate) last_id: Option<MessageId>,
    pub(crate) max_deleted: Option<MessageId>,
    /// message id → its edit or deletion.
    pub(crate) changed: HashMap<MessageId, Edit>,
    /// (when, which message) of each change, oldest first, capped.
    pub(crate) changes: VecDeque<(u64, MessageId)>,
    /// When (ms) the newest change dropped from `changes` was made.
    pub(crate) changes_trimmed_ms: Option<u64>,
    /// How many messages were ever sent.
    pub(crate) count: u64,
}

/// What became of a message after it was sent.
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    /// Its text now, and when it was edited (ms).
    Text(String, u64),
    /// Gone.
    Deleted,
}

pub(crate) type Entry = (MessageId, UserRef, String);

impl RoomHistory {
    /// The entries that were not deleted, as messages with their edits.
    pub(crate) fn visible<'a>(
        &self,
        room: &RoomName,
        entries: impl Iterator<Item = &'a Entry>,
    ) -> Vec<Message> {
        entries
            .filter_map(|(id, user, text)| {
                let (text, edited_ts) = match self.changed.get(id) {
                    Some(Edit::Deleted) => return None,
                    Some(Edit::Text(t, at)) => (t.clone(), Some(*at)),
                    None => (text.clone(), None),
                };
                Some(Message {
                    id: *id,
                    room: room.to_string(),
                    user: user.clone(),
                    text,
                    ts: id.ms,
                    edited_ts,
                })
            })
            .collect()
    }

    pub(crate) fn is_deleted(&self, id: &MessageId) -> bool {
        matches!(self.changed.get(id), Some(Edit::Deleted))
    }

    /// What `changes_after` answers (see [`History::changes_after`]).
    pub(crate) fn changes_since(&self, since: MessageId) -> Vec<Change> {
        let mut seen = HashSet::new();
        self.changes
            .iter()
            .filter(|(at, target)| *at >= since.ms && *target <= since)
            .filter(|(_, target)| seen.insert(*target))
            .filter_map(|(_, id)| match self.changed.get(id)? {
                Edit::Deleted => Some(Change::Deleted {
                    id: *id,
                    deleted: true,
                }),
                Edit::Text(text, at) => Some(Change::Edited {
                    id: *id,
                    text: text.clone(),
                    edited_ts: *at,
                }),
            })
            .collect()
    }
}

/// A room's read markers in memory.
#[derive(Default)]
pub(crate) struct RoomReads {
    /// user id → the room's message count at their read marker.
    pub(crate) markers: HashMap<String, u64>,
}

impl RoomReads {
    /// Messages after `uid`'s read marker: 0 without one, at most [`UNREAD_MAX`].
    pub(crate) fn unread_of(&self, uid: &str, count: u64) -> u64 {
        self.markers
            .get(uid)
            .map_or(0, |marker| count.saturating_sub(*marker).min(UNREAD_MAX))
    }
}

/// A room's signal throttles in memory.
#[derive(Default)]
pub(crate) struct RoomSignals {
    /// user id → until when (ms) their next `typing` is throttled.
    pub(crate) typing: HashMap<String, u64>,
}

/// One room's state, a part per concept (each defined above).
#[derive(Default)]
pub(crate) struct RoomState {
    pub(crate) presence: RoomPresence,
    pub(crate) history: RoomHistory,
    pub(crate) reads: RoomReads,
    pub(crate) signals: RoomSignals,
    /// Its settings, members, mutes and audit (rooms as data).
    pub(crate) data: crate::rooms::RoomData,
    /// How many events were published to the room.
    pub(crate) seq: u64,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) rooms: HashMap<RoomName, RoomState>,
    /// (due ms, room, user id).
    pub(crate) leaving: BTreeSet<(u64, RoomName, String)>,
    pub(crate) nodes: HashMap<String, NodeState>,
    /// Nodes swept as dead, by when (ms).
    pub(crate) swept: HashMap<String, u64>,
    /// sid → until ms.
    pub(crate) revoked: HashMap<String, u64>,
    /// Each subscription: the rooms its handle follows, and where its events go.
    pub(crate) subscribers: Vec<(Followed, mpsc::Sender<FanoutEvent>)>,
    /// What is derived from rooms for finding them.
    pub(crate) directory: crate::directory::DirectoryState,
}

/// The rooms a handle follows, shared with its subscriptions.
pub(crate) type Followed = Arc<Mutex<HashSet<RoomName>>>;

/// Whether a subscription's handle follows `room`.
fn follows(followed: &Followed, room: &RoomName) -> bool {
    // A poisoned lock only means a panic elsewhere; the set is still consistent.
    followed
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(room)
}

/// The shared state of every [`MemoryBackend`] made from it.
#[derive(Default)]
pub struct MemoryHub {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHub").finish_non_exhaustive()
    }
}

impl MemoryHub {
    /// An empty hub.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A backend acting for `node` on this hub.
    pub fn backend(self: &Arc<Self>, node: impl Into<String>) -> MemoryBackend {
        MemoryBackend {
            hub: self.clone(),
            node: NodeId::new(node),
            followed: Followed::default(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One node's handle on a [`MemoryHub`].
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    pub(crate) hub: Arc<MemoryHub>,
    pub(crate) node: NodeId,
    /// The rooms whose events its subscriptions receive.
    pub(crate) followed: Followed,
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl State {
    /// `count` of each of `rooms` (0 for a room never seen).
    pub(crate) fn count_per_room(
        &self,
        rooms: &[RoomName],
        count: impl Fn(&RoomState) -> u64,
    ) -> Vec<(RoomName, u64)> {
        rooms
            .iter()
            .map(|r| (r.clone(), self.rooms.get(r).map_or(0, &count)))
            .collect()
    }

    pub(crate) fn publish(&mut self, room: &RoomName, event: RoomEvent, trace: Option<String>) {
        let seq = {
            let r = self.rooms.entry(room.clone()).or_default();
            r.seq += 1;
            r.seq
        };
        self.subscribers.retain(|(_, tx)| !tx.is_closed());
        for (followed, tx) in &self.subscribers {
            if !follows(followed, room) {
                continue;
            }
            let published = Published {
                seq,
                trace: trace.clone(),
                event: event.clone(),
            };
            if tx
                .try_send(FanoutEvent::Room(room.clone(), published))
                .is_err()
            {
                tracing::error!("in-memory fan-out subscriber is full or gone; event dropped");
            }
        }
    }
}

impl State {
    /// Tells every subscriber of `room` that `user` (or everyone) lost access to it.
    pub(crate) fn publish_access_lost(
        &mut self,
        room: &RoomName,
        user: Option<String>,
        reason: crate::events::AccessLoss,
    ) {
        self.rooms.entry(room.clone()).or_default().seq += 1;
        self.subscribers.retain(|(_, tx)| !tx.is_closed());
        for (followed, tx) in &self.subscribers {
            if !follows(followed, room) {
                continue;
            }
            let lost = crate::events::AccessLost {
                user: user.clone(),
                reason,
            };
            if tx
                .try_send(FanoutEvent::AccessLost(room.clone(), lost))
                .is_err()
            {
                tracing::error!(
                    "in-memory fan-out subscriber is full or gone; access loss dropped"
                );
            }
        }
    }
}
