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
//! Each room has its own lock; no lock is held across an await.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chat_core::events::{MESSAGE_RECEIVED, USER_ENTERED, USER_EXITED};
use chat_core::{MessageId, RoomList, RoomName};
use chat_store::events::{RoomEvent, RoomEventKind};
use chat_store::presence::Connection;
use serde_json::value::RawValue;
use socketioxide::SocketError;
use socketioxide::socket::Sid;
use tokio::sync::mpsc;

use crate::sockets::{Encoded, Socket, Writer};

/// Who a connection is, kept in the socket's extensions (it holds no
/// `SocketRef`, so it cannot keep a closed socket alive).
#[derive(Debug)]
pub struct Identity {
    /// How presence records the connection.
    pub record: Connection,
    /// The web session that minted its token.
    pub session: Option<String>,
    /// When its token expires, seconds since the epoch; `refresh` moves it.
    pub exp: AtomicU64,
}

impl Identity {
    /// The token expiry currently bounding the connection.
    pub fn exp(&self) -> u64 {
        self.exp.load(Ordering::Relaxed)
    }
}

/// One live (or joining) connection of this replica.
#[derive(Debug)]
pub struct Conn {
    /// Its socket.
    pub socket: Socket,
    /// Who it is.
    pub id: Arc<Identity>,
}

/// A live connection and the last room event its `welcome` already covered:
/// an event can reach this replica after the `welcome` that includes it.
type Live = (Arc<Conn>, u64);

/// A joining connection and the events buffered for it, with their room sequence numbers.
type Pending = (Arc<Conn>, Vec<(u64, Encoded)>);

#[derive(Default)]
struct RoomSockets {
    live: HashMap<Sid, Live>,
    pending: HashMap<Sid, Pending>,
    last_id: Option<MessageId>,
}

/// All rooms of this replica.
pub struct Registry {
    rooms: HashMap<RoomName, Mutex<RoomSockets>>,
    /// Live and pending connections, kept beside the maps so the handshake's
    /// limit check takes no lock.
    connections: AtomicUsize,
    slow: mpsc::UnboundedSender<Arc<Conn>>,
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
    /// A registry for `rooms` whose events `writer` writes; connections
    /// found too slow to keep up are sent to `slow`.
    pub fn new(rooms: &RoomList, slow: mpsc::UnboundedSender<Arc<Conn>>, writer: Writer) -> Self {
        let rooms = rooms
            .iter()
            .map(|r| (r.clone(), Mutex::default()))
            .collect();
        Self {
            rooms,
            connections: AtomicUsize::new(0),
            slow,
            writer,
        }
    }

    fn room(&self, room: &RoomName) -> Option<MutexGuard<'_, RoomSockets>> {
        // A poisoned lock only means a panic elsewhere; the map is still consistent.
        self.rooms
            .get(room)
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts buffering the room's events for a connection that is joining.
    pub fn add_pending(&self, conn: Arc<Conn>) {
        let Some(mut room) = self.room(&conn.id.record.room) else {
            return;
        };
        if room
            .pending
            .insert(conn.socket.id, (conn, Vec::new()))
            .is_none()
        {
            self.connections.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Makes a pending connection live, after its `welcome` was written:
    /// delivers the buffered events newer than the snapshot (`seq`).
    pub fn activate(&self, room: &RoomName, sid: Sid, seq: u64) -> bool {
        let Some(mut sockets) = self.room(room) else {
            return false;
        };
        let Some((conn, buffered)) = sockets.pending.remove(&sid) else {
            return false;
        };
        let mut covered = seq;
        for (event_seq, out) in buffered {
            if event_seq > covered {
                covered = 0;
                if !self.write(&conn, &out) {
                    self.connections.fetch_sub(1, Ordering::Relaxed);
                    return false;
                }
            }
        }
        sockets.live.insert(sid, (conn, covered));
        true
    }

    /// Forgets a connection that is still pending; true if it was.
    pub fn remove_pending(&self, room: &RoomName, sid: Sid) -> bool {
        let removed = self
            .room(room)
            .is_some_and(|mut sockets| sockets.pending.remove(&sid).is_some());
        if removed {
            self.connections.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Forgets a connection, live or pending.
    pub fn remove(&self, room: &RoomName, sid: Sid) -> Option<Arc<Conn>> {
        let mut sockets = self.room(room)?;
        let removed = sockets
            .live
            .remove(&sid)
            .map(|(c, _)| c)
            .or_else(|| sockets.pending.remove(&sid).map(|(c, _)| c));
        if removed.is_some() {
            self.connections.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Writes one event from Redis to every connection of its room; returns
    /// how many live connections it was written to.
    pub fn deliver(&self, room: &RoomName, event: RoomEvent) -> usize {
        let Some(mut sockets) = self.room(room) else {
            return 0;
        };
        let out = match event.kind {
            RoomEventKind::Message { id, payload, .. } => {
                // Read back after a gap, or published twice: already delivered.
                if sockets.last_id.is_some_and(|last| id <= last) {
                    return 0;
                }
                sockets.last_id = Some(id);
                Encoded::event(MESSAGE_RECEIVED, &payload)
            }
            RoomEventKind::Entered(user) => Encoded::event(USER_ENTERED, &raw(&user)),
            RoomEventKind::Exited(user) => Encoded::event(USER_EXITED, &raw(&user)),
        };
        let mut written = 0;
        let mut dropped = Vec::new();
        for (sid, (conn, covered)) in sockets.live.iter_mut() {
            if event.seq <= *covered {
                continue;
            }
            // Events arrive in order: once past the snapshot, nothing more to skip.
            *covered = 0;
            if self.write(conn, &out) {
                written += 1;
            } else {
                dropped.push(*sid);
            }
        }
        for sid in dropped {
            if sockets.live.remove(&sid).is_some() {
                self.connections.fetch_sub(1, Ordering::Relaxed);
            }
        }
        for (_, buffered) in sockets.pending.values_mut() {
            buffered.push((event.seq, out.clone()));
        }
        written
    }

    /// Writes `out` to one connection; a full buffer marks it as a slow consumer.
    fn write(&self, conn: &Arc<Conn>, out: &Encoded) -> bool {
        match self.writer.write(conn.socket.id, out) {
            Ok(()) => true,
            Err(SocketError::InternalChannelFull) => {
                let _ = self.slow.send(conn.clone());
                false
            }
            // Closed: its disconnect handler removes it.
            Err(_) => true,
        }
    }

    /// The newest message id this replica has seen in `room`.
    pub fn last_id(&self, room: &RoomName) -> Option<MessageId> {
        self.room(room).and_then(|s| s.last_id)
    }

    /// Every connection, live or pending.
    pub fn all(&self) -> Vec<Arc<Conn>> {
        let mut all = Vec::new();
        for room in self.rooms.values() {
            let sockets = room.lock().unwrap_or_else(|e| e.into_inner());
            all.extend(sockets.live.values().map(|(c, _)| c.clone()));
            all.extend(sockets.pending.values().map(|(c, _)| c.clone()));
        }
        all
    }

    /// Forgets the snapshot positions after Redis lost its data: its event
    /// counters start again from zero.
    pub fn reset_positions(&self) {
        for room in self.rooms.values() {
            let mut sockets = room.lock().unwrap_or_else(|e| e.into_inner());
            sockets
                .live
                .values_mut()
                .for_each(|(_, covered)| *covered = 0);
        }
    }

    /// How many connections this replica holds, live or pending.
    pub fn count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// The live connections minted by web session `sid`.
    pub fn by_session(&self, sid: &str) -> Vec<Arc<Conn>> {
        self.all()
            .into_iter()
            .filter(|c| c.id.session.as_deref() == Some(sid))
            .collect()
    }
}

fn raw<T: serde::Serialize>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value)
        .unwrap_or_else(|_| unreachable!("plain structs always serialize"))
}
