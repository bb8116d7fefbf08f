//! The connections this replica holds, per room, and the local half of the
//! fan-out: every room event that arrives from Redis is written to each live
//! connection of the room from here.
//!
//! A connection is *pending* from the moment its handshake starts until its
//! `welcome` is sent. Events that arrive meanwhile are buffered with their
//! room sequence number and, on activation, only those the `welcome`
//! snapshot does not already include are delivered. So a client never sees
//! `message received` before `welcome`, and misses nothing in between.
//!
//! A connection is in the map of every room it follows, and counted once
//! against the limits. Only [`Registry::remove`], which closing a connection
//! calls, takes it out: a delivery that finds it too slow reports it to be
//! closed and leaves it where it is.
//!
//! The map of rooms holds a room from the first connection admitted to it
//! until the last one is removed, and no longer: a room nobody on this
//! replica is in costs it nothing. Each room has its own lock, taken after
//! the map's (admitting and removing take both, in that order; delivering
//! takes the map's only to find the room); no lock is held across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chat_core::events::RoomEvent;
use chat_core::{ErrorCode, MessageId, RoomName};
use chat_store::events::Published;
use socketioxide::SocketError;
use socketioxide::socket::Sid;

use crate::connection::Connection;
use crate::sockets::{Encoded, Writer};

/// A live connection and the last room event its `welcome` already covered:
/// an event can reach this replica after the `welcome` that includes it.
type Live = (Connection, u64);

/// A joining connection.
struct Pending {
    handle: Connection,
    /// When it was admitted.
    since: Instant,
    /// The room events that arrived meanwhile, with their room sequence numbers.
    buffered: Vec<(u64, Encoded)>,
}

#[derive(Default)]
struct RoomSockets {
    live: HashMap<Sid, Live>,
    pending: HashMap<Sid, Pending>,
    last_id: Option<MessageId>,
}

/// How many connections a replica admits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// In all (`MAX_CONNECTIONS`).
    pub(crate) total: usize,
    /// Per user (`MAX_CONNECTIONS_PER_USER`).
    pub(crate) per_user: usize,
}

impl RoomSockets {
    fn is_empty(&self) -> bool {
        self.live.is_empty() && self.pending.is_empty()
    }
}

/// A room's connections, behind the room's own lock.
type Room = Arc<Mutex<RoomSockets>>;

/// The rooms this replica holds connections in.
pub(crate) struct Registry {
    rooms: Mutex<HashMap<RoomName, Room>>,
    /// Live and pending connections, kept beside the maps so reading it takes no lock.
    connections: AtomicUsize,
    /// Live and pending connections per user id.
    per_user: Mutex<HashMap<String, usize>>,
    limits: Limits,
    writer: Writer,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("connections", &self.count())
            .finish()
    }
}

impl Registry {
    /// An empty registry, admitting connections within `limits`, whose
    /// events `writer` writes.
    pub(crate) fn new(limits: Limits, writer: Writer) -> Self {
        Self {
            rooms: Mutex::default(),
            connections: AtomicUsize::new(0),
            per_user: Mutex::default(),
            limits,
            writer,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<RoomName, Room>> {
        // A poisoned lock only means a panic elsewhere; the map is still consistent.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room, if this replica holds connections in it.
    fn room(&self, room: &RoomName) -> Option<Room> {
        self.map().get(room).cloned()
    }

    /// Every room this replica holds connections in.
    fn every_room(&self) -> Vec<Room> {
        self.map().values().cloned().collect()
    }

    /// Admits a joining connection within the limits (`server_busy`,
    /// `too_many_connections`) and starts buffering the events of the rooms
    /// it follows.
    pub(crate) fn admit(&self, handle: Connection) -> Result<(), ErrorCode> {
        let user = &handle.conn.user.id;
        {
            let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
            if self.count() >= self.limits.total {
                return Err(ErrorCode::ServerBusy);
            }
            let held = per_user.entry(user.clone()).or_default();
            if *held >= self.limits.per_user {
                return Err(ErrorCode::TooManyConnections);
            }
            *held += 1;
            self.connections.fetch_add(1, Ordering::Relaxed);
        }
        let sid = handle.socket.id;
        let since = Instant::now();
        let mut rooms = self.map();
        for room in handle.conn.rooms() {
            let pending = Pending {
                handle: handle.clone(),
                since,
                buffered: Vec::new(),
            };
            lock(rooms.entry(room).or_default())
                .pending
                .insert(sid, pending);
        }
        Ok(())
    }

    /// Counts one connection of `user` less.
    fn forget(&self, user: &str) {
        let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = per_user.get_mut(user) {
            *held -= 1;
            if *held == 0 {
                per_user.remove(user);
            }
        }
        self.connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// Makes a pending connection live in `room`, after its `welcome` was
    /// written: delivers the buffered events newer than the snapshot (`seq`).
    /// Returns false if it is no longer pending, or turned out too slow to
    /// take the buffered events (then close it).
    pub(crate) fn activate(&self, room: &RoomName, sid: Sid, seq: u64) -> bool {
        let Some(room) = self.room(room) else {
            return false;
        };
        let mut sockets = lock(&room);
        let Some(Pending {
            handle, buffered, ..
        }) = sockets.pending.remove(&sid)
        else {
            return false;
        };
        let mut covered = seq;
        for (event_seq, out) in buffered {
            if event_seq > covered {
                covered = 0;
                if !self.write(&handle, &out) {
                    sockets.live.insert(sid, (handle, 0));
                    return false;
                }
            }
        }
        sockets.live.insert(sid, (handle, covered));
        if sockets.pending.is_empty() {
            // Gives back what the pending map grew to: a small room keeps none.
            sockets.pending = HashMap::new();
        }
        true
    }

    /// Forgets a connection, live or pending, in every room it follows; true
    /// if it was there. Closing a connection is the only caller.
    pub(crate) fn remove(&self, handle: &Connection) -> bool {
        let sid = handle.socket.id;
        let mut removed = false;
        let mut rooms = self.map();
        for name in handle.conn.rooms() {
            let Some(room) = rooms.get(&name) else {
                continue;
            };
            let mut sockets = lock(room);
            removed |=
                sockets.live.remove(&sid).is_some() || sockets.pending.remove(&sid).is_some();
            if sockets.is_empty() {
                drop(sockets);
                rooms.remove(&name);
            }
        }
        drop(rooms);
        if removed {
            self.forget(&handle.conn.user.id);
        }
        removed
    }

    /// Writes one event from Redis to every connection of its room. Returns
    /// how many live connections it was written to, and the connections found
    /// too slow to keep up (close them).
    pub(crate) fn deliver(
        &self,
        room: &RoomName,
        published: &Published,
    ) -> (usize, Vec<Connection>) {
        let Some(room) = self.room(room) else {
            return (0, Vec::new());
        };
        let mut sockets = lock(&room);
        // `user typing` never goes back to the typist's own tabs.
        let mut except_user = None;
        match &published.event {
            RoomEvent::MessageReceived(message) => {
                // Read back after a gap, or published twice: already delivered.
                if sockets.last_id.is_some_and(|last| message.id <= last) {
                    return (0, Vec::new());
                }
                sockets.last_id = Some(message.id);
            }
            // Never before its message: one this replica has not delivered
            // yet comes, edited, when the gap is read back.
            RoomEvent::MessageEdited(edited)
                if sockets.last_id.is_some_and(|last| edited.id > last) =>
            {
                return (0, Vec::new());
            }
            RoomEvent::UserTyping(user) => except_user = Some(user.id.as_str()),
            _ => {}
        }
        let out = Encoded::room_event(&published.event);
        let mut written = 0;
        let mut slow = Vec::new();
        for (handle, covered) in sockets.live.values_mut() {
            if published.seq <= *covered {
                continue;
            }
            // Events arrive in order: once past the snapshot, nothing more to skip.
            *covered = 0;
            if except_user == Some(handle.conn.user.id.as_str()) {
                continue;
            }
            if self.write(handle, &out) {
                written += 1;
            } else {
                slow.push(handle.clone());
            }
        }
        for pending in sockets.pending.values_mut() {
            if except_user != Some(pending.handle.conn.user.id.as_str()) {
                pending.buffered.push((published.seq, out.clone()));
            }
        }
        (written, slow)
    }

    /// Writes `out` to one connection; false when that makes it a slow
    /// consumer (its send buffer is full, or too many bytes wait for it).
    fn write(&self, handle: &Connection, out: &Encoded) -> bool {
        match self.writer.write(handle.socket.id, out) {
            Ok(()) => handle
                .conn
                .wire
                .as_ref()
                .is_none_or(|wire| wire.queued(out.wire_len())),
            Err(SocketError::InternalChannelFull) => false,
            // Closed: its disconnect handler removes it.
            Err(_) => true,
        }
    }

    /// The newest message id this replica has seen in `room`.
    pub(crate) fn last_id(&self, room: &RoomName) -> Option<MessageId> {
        self.room(room).and_then(|room| lock(&room).last_id)
    }

    /// The rooms this replica holds connections in, each with the newest
    /// message id it delivered there, if any.
    pub(crate) fn rooms(&self) -> Vec<(RoomName, Option<MessageId>)> {
        let rooms: Vec<(RoomName, Room)> = self
            .map()
            .iter()
            .map(|(name, room)| (name.clone(), room.clone()))
            .collect();
        rooms
            .into_iter()
            .map(|(name, room)| {
                let last = lock(&room).last_id;
                (name, last)
            })
            .collect()
    }

    /// The connections, live or pending, in `room`.
    pub(crate) fn in_room(&self, room: &RoomName) -> Vec<Connection> {
        let Some(room) = self.room(room) else {
            return Vec::new();
        };
        let sockets = lock(&room);
        let live = sockets.live.values().map(|(c, _)| c.clone());
        live.chain(sockets.pending.values().map(|p| p.handle.clone()))
            .collect()
    }

    /// Every connection, live or pending, once however many rooms it follows.
    pub(crate) fn all(&self) -> Vec<Connection> {
        let mut all = HashMap::new();
        for room in self.every_room() {
            let sockets = lock(&room);
            let live = sockets.live.iter().map(|(sid, (c, _))| (*sid, c));
            let pending = sockets.pending.iter().map(|(sid, p)| (*sid, &p.handle));
            for (sid, handle) in live.chain(pending) {
                all.entry(sid).or_insert_with(|| handle.clone());
            }
        }
        all.into_values().collect()
    }

    /// The connections admitted before `admitted_before` that are still
    /// pending (in some room), once each.
    pub(crate) fn pending_since(&self, admitted_before: Instant) -> Vec<Connection> {
        let mut stalled = HashMap::new();
        for room in self.every_room() {
            let sockets = lock(&room);
            let old = sockets
                .pending
                .iter()
                .filter(|(_, p)| p.since < admitted_before);
            for (sid, p) in old {
                stalled.entry(*sid).or_insert_with(|| p.handle.clone());
            }
        }
        stalled.into_values().collect()
    }

    /// Forgets the room's snapshot positions after Redis lost its data: its
    /// event counter starts again from zero.
    pub(crate) fn reset_positions(&self, room: &RoomName) {
        if let Some(room) = self.room(room) {
            lock(&room)
                .live
                .values_mut()
                .for_each(|(_, covered)| *covered = 0);
        }
    }

    /// How many connections this replica holds, live or pending.
    pub(crate) fn count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// The connections (live or pending) that belong to web session `sid`.
    pub(crate) fn by_session(&self, sid: &str) -> Vec<Connection> {
        self.all()
            .into_iter()
            .filter(|h| h.conn.belongs_to(sid))
            .collect()
    }
}

/// A room's lock. A poisoned lock only means a panic elsewhere; the maps are
/// still consistent.
fn lock(room: &Room) -> MutexGuard<'_, RoomSockets> {
    room.lock().unwrap_or_else(|e| e.into_inner())
}
