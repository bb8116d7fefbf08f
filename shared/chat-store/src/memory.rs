//! The in-memory backend, for the single-process mode: the same decisions as
//! the Lua scripts, taken under one lock, with events handed to subscribers
//! while the lock is held so that every subscriber sees them in order.
//!
//! Several [`MemoryBackend`]s (one per node) can share a [`MemoryHub`], which
//! is how the behaviour tests run two "replicas" against it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chat_core::RoomName;
use chat_core::events::RoomEvent;
use tokio::sync::mpsc;

use crate::backend::Backend;
use crate::error::StoreError;
use crate::events::Published;
use crate::fanout::FanoutEvent;
use crate::history::RoomHistory;
use crate::presence::{Connection, NodeState, RoomPresence};
use crate::reads::RoomReads;
use crate::signals::RoomSignals;

/// One room's state, a part per concept (each defined in its module).
#[derive(Default)]
pub(crate) struct RoomState {
    pub(crate) presence: RoomPresence,
    pub(crate) history: RoomHistory,
    pub(crate) reads: RoomReads,
    pub(crate) signals: RoomSignals,
    /// How many events were published to the room.
    pub(crate) seq: u64,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) rooms: HashMap<RoomName, RoomState>,
    /// (due ms, room, user id).
    pub(crate) leaving: BTreeSet<(u64, RoomName, String)>,
    pub(crate) nodes: HashMap<String, NodeState>,
    pub(crate) epoch: Option<String>,
    /// sid → until ms.
    pub(crate) revoked: HashMap<String, u64>,
    pub(crate) subscribers: Vec<(Vec<RoomName>, mpsc::Sender<FanoutEvent>)>,
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
            node: node.into(),
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
    pub(crate) node: String,
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
        for (rooms, tx) in &self.subscribers {
            if !rooms.contains(room) {
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

    pub(crate) fn enter(&mut self, node: &str, c: &Connection, silent: bool) {
        let room = self.rooms.entry(c.room.clone()).or_default();
        if room.presence.conns.contains_key(&c.conn) {
            return;
        }
        room.presence
            .conns
            .insert(c.conn.clone(), c.user.id.clone());
        room.presence
            .names
            .insert(c.user.id.clone(), c.user.name.clone());
        let count = room.presence.users.entry(c.user.id.clone()).or_insert(0);
        *count += 1;
        let first = *count == 1;
        self.nodes
            .entry(node.to_owned())
            .or_default()
            .conns
            .insert((c.room.clone(), c.conn.clone(), c.user.id.clone()));
        let before = self.leaving.len();
        self.leaving
            .retain(|(_, r, u)| !(r == &c.room && u == &c.user.id));
        let was_leaving = self.leaving.len() != before;
        if first && !was_leaving && !silent {
            self.publish(&c.room, RoomEvent::UserEntered(c.user.clone()), None);
        }
    }

    pub(crate) fn release(
        &mut self,
        room_name: &RoomName,
        conn: &str,
        uid: &str,
        grace_ms: u64,
    ) -> bool {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return false;
        };
        if room.presence.conns.remove(conn).is_none() {
            return false;
        }
        let count = room.presence.users.entry(uid.to_owned()).or_insert(0);
        *count -= 1;
        if *count <= 0 {
            *count = 0;
            self.leaving.insert((
                now_ms().saturating_add(grace_ms),
                room_name.clone(),
                uid.to_owned(),
            ));
        }
        true
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
