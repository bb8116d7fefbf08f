//! Who is in which room, across every gateway replica: [`Presence`], its
//! types, and its two implementations.
//!
//! Presence is kept per connection so that a user with two tabs on two
//! replicas is one member, and a replica that dies without a word can have
//! exactly its own connections swept away by a survivor. On Redis each
//! decision is one Lua script in the room's hash slot; in memory, the same
//! decision under the hub's lock.
//!
//! What a replica does in the background costs nothing per room it does not
//! hold a connection in, and does not grow with the rooms it does
//! ([`liveness`]): one liveness key per replica, renewed by its heartbeat; the
//! rooms it has connections in, or exits to announce, listed under its id
//! ([`Presence::track`]), so that whoever finds it dead sweeps those rooms
//! only ([`Presence::sweep_dead`]), each with a script told which node died;
//! and a `user exited` announced by a replica that holds the room when it is
//! due ([`Presence::announce_exits`]), never found by scanning rooms. The
//! per-room heartbeats and sweeps of the release before go on in the
//! configured rooms only, while its replicas may run ([`legacy`],
//! docs/UPGRADES.md).

mod legacy;
mod liveness;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use chat_core::events::{Change, RoomEvent};
use chat_core::{Message, MessageId, RoomName, UserRef};
use fred::prelude::*;
use fred::types::Value;

use crate::backend::PerRoom;
use crate::error::StoreError;
use crate::memory::{Entry, MemoryBackend, RoomState, State, millis, now_ms};
use crate::redis::RedisBackend;
use crate::redis::reply::{self, LuaList};
use crate::revocations::Revocations;
use crate::rooms::Standing;
use crate::schema;
use chat_core::events::UNREAD_MAX;
use serde::Deserialize;

pub use legacy::{RoomHeartbeat, Sweep};

crate::scripts::script! {
    /// Register a connection and snapshot members and history.
    JOIN = "lua/join.lua";
    /// Release a connection; schedule `user exited` after the grace.
    LEAVE = "lua/leave.lua";
    /// Register again the connections Redis lost, or take over a replaced id's.
    RESTORE = "lua/restore.lua";
    /// Announce the room's due exits.
    EXITS = "lua/exits.lua";
    /// Release a dead node's connections in the room.
    SWEEP_NODE = "lua/sweep_node.lua";
    /// The release before's per-room heartbeat (configured rooms).
    HEARTBEAT = "lua/heartbeat.lua";
    /// The release before's per-room sweep (configured rooms).
    SWEEP = "lua/sweep.lua";
    /// Remove a draining node from a configured room's heartbeats.
    DEREGISTER = "lua/deregister.lua";
}

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
    /// Where the user stands (their token, administrator, a configured room).
    pub standing: Standing,
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
    /// The web session was logged out, or the user may not read the room
    /// (removed after the token was issued, not a member): nothing was registered.
    Revoked,
    /// No such room (never made, or deleted): nothing was registered.
    Unknown,
}

/// What a node's heartbeat learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// What the node's liveness was before it.
    pub liveness: Liveness,
    /// How many rooms the node has tracked ([`Presence::track`]), if the
    /// store said: fewer than it holds means the store lost them (track them
    /// again).
    pub rooms_tracked: Option<u64>,
}

/// A node's liveness as its heartbeat found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Alive: on time, or late with no sweeper on it yet.
    Alive,
    /// No trace of it: its first heartbeat, or the store lost the liveness
    /// keys (and likely more: its presence, silently).
    New,
    /// A sweeper took it as dead while it was alive. The handle now acts as a
    /// new node (registered, alive) and should register its connections again
    /// under that id, taking over what `previous` still holds
    /// ([`Restore::TakingOver`]).
    Replaced {
        /// The id it had.
        previous: String,
    },
}

/// What a sweep of dead nodes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadSweep {
    /// Dead nodes swept (each by exactly one sweeper).
    pub nodes: u64,
    /// Rooms swept: those the dead nodes tracked, and no other.
    pub rooms: u64,
    /// Connections of dead nodes released.
    pub connections_removed: u64,
    /// The swept rooms where a `user exited` is to come, with when the first
    /// is due (ms since the epoch): the sweeper now tracks them, and announces
    /// them ([`Presence::announce_exits`]).
    pub exits: Vec<(RoomName, u64)>,
}

/// What announcing a room's due exits did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Exits {
    /// Users announced as exited.
    pub users_exited: u64,
    /// When the room's next exit is due (ms since the epoch), if any is.
    #[serde(rename = "next_exit", deserialize_with = "zero_is_none")]
    pub next: Option<u64>,
}

/// How connections are registered again ([`Presence::restore`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore<'a> {
    /// The store lost them: nobody saw these users leave, nobody is told.
    Silently,
    /// This node was swept from the room: everybody saw these users leave,
    /// and is told they are back.
    Announced,
    /// This node carries on under a new id after it was taken as dead
    /// ([`Liveness::Replaced`]): what the old id still holds in the room
    /// becomes the new one's, and users swept meanwhile are announced.
    TakingOver(&'a str),
}

/// Who is in which room. Each multi-step decision is atomic.
#[async_trait]
pub trait Presence: Send + Sync {
    /// The node (replica) this handle acts for now: a node taken as dead
    /// while alive carries on under a new id ([`Liveness::Replaced`]).
    fn node(&self) -> String;
    /// Registers a connection and returns the room's snapshot, atomically;
    /// `silent` suppresses `user entered`. Track the room first.
    async fn join(&self, request: JoinRequest<'_>, silent: bool)
    -> Result<JoinOutcome, StoreError>;
    /// Releases a connection. When it was its user's last in the room, their
    /// `user exited` is due after `grace` unless another of their connections
    /// appears first: returns when (ms since the epoch). Whoever holds the
    /// room then announces it ([`Presence::announce_exits`]); keep the room
    /// tracked until then.
    async fn leave(
        &self,
        connection: &Connection,
        grace: Duration,
    ) -> Result<Option<u64>, StoreError>;
    /// Lists `rooms` among this node's: where it has, or is about to have,
    /// connections or exits to announce. A sweeper that finds the node dead
    /// sweeps these rooms, and no other: track a room before joining it.
    async fn track(&self, rooms: &[RoomName]) -> Result<(), StoreError>;
    /// Takes `room` off this node's list, once it has no connection there
    /// and no exit to announce.
    async fn untrack(&self, room: &RoomName) -> Result<(), StoreError>;
    /// Renews this node's liveness for `ttl`: the one signal a node sends,
    /// whatever the number of its rooms.
    async fn heartbeat(&self, ttl: Duration) -> Result<Beat, StoreError>;
    /// Takes the nodes whose liveness lapsed (each by exactly one sweeper,
    /// never this node itself) and releases their connections, with `grace`,
    /// in the rooms they tracked: one script per room, told which node died.
    async fn sweep_dead(&self, grace: Duration) -> Result<DeadSweep, StoreError>;
    /// Announces in `room` at most `max` of the `user exited` that are due
    /// (each once, whoever announces), and says when the next one is.
    async fn announce_exits(&self, room: &RoomName, max: u64) -> Result<Exits, StoreError>;
    /// Registers `connections` (all in `room`) again: those already
    /// registered stay as they are. Returns how many were registered anew.
    async fn restore(
        &self,
        room: &RoomName,
        connections: &[Connection],
        how: Restore<'_>,
    ) -> Result<u64, StoreError>;
    /// A draining node, whose connections were released, leaves: the
    /// configured rooms' heartbeats of the release before, and its liveness,
    /// so that a survivor takes it at once and announces the exits it was
    /// to announce.
    async fn deregister(&self, configured: &[RoomName]) -> Result<(), StoreError>;
    /// How many users are in each room (users within their exit grace count).
    async fn member_counts(&self, rooms: &[RoomName]) -> Result<Vec<(RoomName, u64)>, StoreError>;
    /// The release before's heartbeat in each of the configured `rooms`
    /// (docs/UPGRADES.md), read by its sweeps; also reads each room's data
    /// epoch. Nothing in memory.
    async fn legacy_heartbeat(
        &self,
        rooms: &[RoomName],
        ttl: Duration,
        epoch_candidate: &str,
    ) -> PerRoom<RoomHeartbeat>;
    /// The release before's sweep of the configured `rooms`: sweeps the
    /// nodes whose heartbeat in a room lapsed, announces due exits. Nothing
    /// in memory.
    async fn legacy_sweep(
        &self,
        rooms: &[RoomName],
        grace: Duration,
        max_exits: u64,
    ) -> Result<Sweep, StoreError>;
}

// On Redis.

/// How many of a replica's per-room background scripts (sweeps of a dead
/// node's rooms, restores, the configured rooms' heartbeats) it has Redis
/// run at once (and holds the futures of). All at once held Redis for
/// milliseconds (two hundred rooms: about 8 ms), and the sends queued behind
/// them made the fan-out's p99 (docs/BENCHMARKS.md); a few at a time, a send
/// waits behind at most these.
pub(crate) const BACKGROUND_IN_FLIGHT: usize = 8;

/// How many connections one restore script registers at most.
const RESTORE_CHUNK: usize = 500;

/// How many users are in each of `rooms` (a user leaving within the exit
/// grace still counts). Read by the web service's dashboard.
async fn member_counts(
    client: &Client,
    rooms: &[RoomName],
) -> Result<Vec<(RoomName, u64)>, StoreError> {
    let pipeline = client.pipeline();
    for room in rooms {
        pipeline
            .hlen::<(), _>(schema::room_users(room))
            .await
            .map_err(StoreError::redis("queue HLEN"))?;
    }
    let counts: Vec<u64> = pipeline
        .all()
        .await
        .map_err(StoreError::redis("HLEN room users"))?;
    if counts.len() != rooms.len() {
        return Err(StoreError::reply(
            "HLEN room users",
            format!("{} counts for {} rooms", counts.len(), rooms.len()),
        ));
    }
    Ok(rooms.iter().cloned().zip(counts).collect())
}

#[async_trait]
impl Presence for RedisBackend {
    fn node(&self) -> String {
        self.node.current().to_string()
    }

    async fn member_counts(&self, rooms: &[RoomName]) -> Result<Vec<(RoomName, u64)>, StoreError> {
        member_counts(&self.client, rooms).await
    }

    /// Registers a connection and returns the room's snapshot, atomically.
    /// A logged-out session is refused first (revocations live outside the
    /// room's hash slot, so that is a step of its own; a logout that lands
    /// after it reaches the connection through the fan-out).
    async fn join(
        &self,
        request: JoinRequest<'_>,
        silent: bool,
    ) -> Result<JoinOutcome, StoreError> {
        const OP: &str = "join room";
        if let Some(sid) = request.session
            && !self.revoked_among(&[sid.to_owned()]).await?.is_empty()
        {
            return Ok(JoinOutcome::Revoked);
        }
        let c = request.connection;
        let mut args = vec![
            Value::from(c.conn.as_str()),
            Value::from(c.user.id.as_str()),
            Value::from(c.user.name.as_str()),
            Value::from(request.since.map(|s| s.to_string()).unwrap_or_default()),
            Value::from(request.history_limit as i64),
            Value::from(if silent { "1" } else { "0" }),
            Value::from(chat_core::events::REPLY_MAX_BYTES as i64),
            Value::from(UNREAD_MAX as i64),
        ];
        args.extend(request.standing.args());
        let reply = self.run(OP, &JOIN, &c.room, args).await?;
        match reply.as_str().as_deref() {
            Some("revoked") => return Ok(JoinOutcome::Revoked),
            Some("room_unknown") => return Ok(JoinOutcome::Unknown),
            _ => {}
        }
        let snapshot: SnapshotRecord = reply::json(OP, reply)?;
        Ok(JoinOutcome::Joined(snapshot.into()))
    }

    async fn leave(
        &self,
        connection: &Connection,
        grace: Duration,
    ) -> Result<Option<u64>, StoreError> {
        const OP: &str = "leave room";
        let args = vec![
            Value::from(connection.conn.as_str()),
            Value::from(connection.user.id.as_str()),
            Value::from(redis_ms(grace)),
        ];
        let due = reply::integer(OP, self.run(OP, &LEAVE, &connection.room, args).await?)?;
        Ok(u64::try_from(due).ok().filter(|due| *due > 0))
    }

    async fn track(&self, rooms: &[RoomName]) -> Result<(), StoreError> {
        liveness::track(self, rooms).await
    }

    async fn untrack(&self, room: &RoomName) -> Result<(), StoreError> {
        liveness::untrack(self, room).await
    }

    async fn heartbeat(&self, ttl: Duration) -> Result<Beat, StoreError> {
        liveness::heartbeat(self, ttl).await
    }

    async fn sweep_dead(&self, grace: Duration) -> Result<DeadSweep, StoreError> {
        liveness::sweep_dead(self, grace).await
    }

    async fn announce_exits(&self, room: &RoomName, max: u64) -> Result<Exits, StoreError> {
        const OP: &str = "announce exits";
        let args = vec![Value::from(i64::try_from(max).unwrap_or(i64::MAX))];
        reply::json(OP, self.run(OP, &EXITS, room, args).await?)
    }

    /// Registers again connections that Redis lost, or that were registered
    /// under this replica's previous id. At most 500 connections a script.
    async fn restore(
        &self,
        room: &RoomName,
        connections: &[Connection],
        how: Restore<'_>,
    ) -> Result<u64, StoreError> {
        const OP: &str = "restore presence";
        let silent = how == Restore::Silently;
        let mut previous = match how {
            Restore::TakingOver(previous) => Some(previous),
            Restore::Silently | Restore::Announced => None,
        };
        let mut restored = 0;
        let mut chunks: Vec<&[Connection]> = connections.chunks(RESTORE_CHUNK).collect();
        if chunks.is_empty() && previous.is_some() {
            chunks.push(&[]);
        }
        for chunk in chunks {
            // The old id's registrations are taken over once, by the first script.
            let keys = previous.map_or_else(Vec::new, |p| {
                vec![
                    schema::room_key(room, &format!("node:{p}")),
                    schema::room_key(room, &format!("alive:{p}")),
                ]
            });
            let mut args = vec![
                Value::from(if silent { "1" } else { "0" }),
                Value::from(previous.take().unwrap_or_default()),
            ];
            for c in chunk {
                args.extend([
                    Value::from(c.conn.as_str()),
                    Value::from(c.user.id.as_str()),
                    Value::from(c.user.name.as_str()),
                ]);
            }
            let reply = self.run_with_keys(OP, &RESTORE, room, keys, args).await?;
            restored += reply::integer(OP, reply)?;
        }
        Ok(u64::try_from(restored).unwrap_or(0))
    }

    async fn deregister(&self, configured: &[RoomName]) -> Result<(), StoreError> {
        legacy::deregister(self, configured).await?;
        liveness::leave(self).await
    }

    async fn legacy_heartbeat(
        &self,
        rooms: &[RoomName],
        ttl: Duration,
        epoch_candidate: &str,
    ) -> PerRoom<RoomHeartbeat> {
        legacy::heartbeat(self, rooms, ttl, epoch_candidate).await
    }

    async fn legacy_sweep(
        &self,
        rooms: &[RoomName],
        grace: Duration,
        max_exits: u64,
    ) -> Result<Sweep, StoreError> {
        legacy::sweep(self, rooms, grace, max_exits).await
    }
}

/// The snapshot as `join.lua` returns it.
#[derive(Deserialize)]
struct SnapshotRecord {
    seq: u64,
    /// User id → name.
    members: BTreeMap<String, String>,
    recovered: bool,
    history: LuaList<Message>,
    changes: LuaList<Change>,
    unread: u64,
}

impl From<SnapshotRecord> for Snapshot {
    fn from(r: SnapshotRecord) -> Self {
        Self {
            seq: r.seq,
            members: r
                .members
                .into_iter()
                .map(|(id, name)| UserRef { id, name })
                .collect(),
            recovered: r.recovered,
            history: r.history.0,
            changes: r.changes.0,
            unread: r.unread,
        }
    }
}

/// The scripts' "none" for a time: 0.
fn zero_is_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Some(u64::deserialize(d)?).filter(|ms| *ms > 0))
}

fn redis_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

// In memory.

impl State {
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

    /// Drops one connection; when it was its user's last in the room, their
    /// exit is due after the grace. False when it was not registered.
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

    /// When `uid`'s exit from `room` is due, if it is to come.
    fn exit_due(&self, room: &RoomName, uid: &str) -> Option<u64> {
        self.leaving
            .iter()
            .find(|(_, r, u)| r == room && u == uid)
            .map(|(at, _, _)| *at)
    }

    /// When `room`'s next exit is due, if any is.
    pub(crate) fn next_exit(&self, room: &RoomName) -> Option<u64> {
        self.leaving
            .iter()
            .find(|(_, r, _)| r == room)
            .map(|(at, _, _)| *at)
    }

    /// Announces at most `max` of `room`'s due exits (every room's, with
    /// `None`); returns how many.
    pub(crate) fn announce_due_exits(&mut self, room: Option<&RoomName>, max: u64) -> u64 {
        let now = now_ms();
        let due: Vec<(u64, RoomName, String)> = self
            .leaving
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .filter(|(_, r, _)| room.is_none_or(|room| r == room))
            .take(usize::try_from(max).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        let mut exited = 0;
        for entry in due {
            self.leaving.remove(&entry);
            let (_, room_name, uid) = entry;
            let Some(room) = self.rooms.get_mut(&room_name) else {
                continue;
            };
            if room.presence.users.get(&uid).copied().unwrap_or(0) <= 0 {
                room.presence.users.remove(&uid);
                let name = room
                    .presence
                    .names
                    .remove(&uid)
                    .unwrap_or_else(|| uid.clone());
                self.publish(
                    &room_name,
                    RoomEvent::UserExited(UserRef { id: uid, name }),
                    None,
                );
                exited += 1;
            }
        }
        exited
    }
}

#[async_trait]
impl Presence for MemoryBackend {
    fn node(&self) -> String {
        self.node.current().to_string()
    }

    async fn join(
        &self,
        request: JoinRequest<'_>,
        silent: bool,
    ) -> Result<JoinOutcome, StoreError> {
        let mut s = self.hub.lock();
        if let Some(sid) = request.session
            && s.revoked.get(sid).is_some_and(|until| *until > now_ms())
        {
            return Ok(JoinOutcome::Revoked);
        }
        let c = request.connection;
        let refused = s.rooms.get(&c.room).map_or_else(
            || (!request.standing.configured).then_some(crate::rooms::Refused::Unknown),
            |r| r.data.read_refusal(&c.user.id, request.standing),
        );
        match refused {
            Some(crate::rooms::Refused::Unknown) => return Ok(JoinOutcome::Unknown),
            Some(crate::rooms::Refused::Revoked) => return Ok(JoinOutcome::Revoked),
            None => {}
        }
        s.enter(&self.node.current(), c, silent);
        let room = s.rooms.entry(c.room.clone()).or_default();
        let members = room
            .presence
            .users
            .keys()
            .map(|id| UserRef {
                id: id.clone(),
                name: room
                    .presence
                    .names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| id.clone()),
            })
            .collect();
        let limit = request.history_limit;
        let newest = |room: &RoomState| {
            let visible: Vec<&Entry> = room
                .history
                .entries
                .iter()
                .filter(|(id, _, _)| !room.history.is_deleted(id))
                .collect();
            let skip = visible.len().saturating_sub(limit);
            visible.into_iter().skip(skip).cloned().collect::<Vec<_>>()
        };
        let (recovered, entries) = match request.since {
            None => (true, newest(room)),
            Some(since) => {
                let after: Vec<_> = room
                    .history
                    .entries
                    .iter()
                    .filter(|(id, _, _)| *id > since)
                    .cloned()
                    .collect();
                // A `since` beyond the newest message: nothing newer.
                let trimmed = room.history.max_deleted.is_some_and(|d| d > since);
                let changes_lost = room
                    .history
                    .changes_trimmed_ms
                    .is_some_and(|at| at >= since.ms);
                if after.len() > limit || trimmed || changes_lost {
                    (false, newest(room))
                } else {
                    (true, after)
                }
            }
        };
        let changes = request
            .since
            .map(|since| room.history.changes_since(since))
            .unwrap_or_default();
        Ok(JoinOutcome::Joined(Snapshot {
            unread: room.reads.unread_of(&c.user.id, room.history.count),
            seq: room.seq,
            members,
            recovered,
            history: room.history.visible(&c.room, entries.iter()),
            changes,
        }))
    }

    async fn leave(
        &self,
        connection: &Connection,
        grace: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let mut s = self.hub.lock();
        if let Some(node) = s.nodes.get_mut(&*self.node.current()) {
            node.conns.remove(&(
                connection.room.clone(),
                connection.conn.clone(),
                connection.user.id.clone(),
            ));
        }
        let released = s.release(
            &connection.room,
            &connection.conn,
            &connection.user.id,
            millis(grace),
        );
        let last = released
            && s.rooms
                .get(&connection.room)
                .is_some_and(|r| r.presence.users.get(&connection.user.id).copied() == Some(0));
        Ok(last
            .then(|| s.exit_due(&connection.room, &connection.user.id))
            .flatten())
    }

    async fn track(&self, rooms: &[RoomName]) -> Result<(), StoreError> {
        liveness::memory_track(self, rooms);
        Ok(())
    }

    async fn untrack(&self, room: &RoomName) -> Result<(), StoreError> {
        liveness::memory_untrack(self, room);
        Ok(())
    }

    async fn heartbeat(&self, ttl: Duration) -> Result<Beat, StoreError> {
        Ok(liveness::memory_heartbeat(self, ttl))
    }

    async fn sweep_dead(&self, grace: Duration) -> Result<DeadSweep, StoreError> {
        Ok(liveness::memory_sweep_dead(self, grace))
    }

    async fn announce_exits(&self, room: &RoomName, max: u64) -> Result<Exits, StoreError> {
        let mut s = self.hub.lock();
        let users_exited = s.announce_due_exits(Some(room), max);
        Ok(Exits {
            users_exited,
            next: s.next_exit(room),
        })
    }

    async fn restore(
        &self,
        room: &RoomName,
        connections: &[Connection],
        how: Restore<'_>,
    ) -> Result<u64, StoreError> {
        let node = self.node.current();
        let mut s = self.hub.lock();
        if let Restore::TakingOver(previous) = how
            && let Some(old) = s.nodes.get_mut(previous)
        {
            let (moved, kept): (HashSet<_>, HashSet<_>) = std::mem::take(&mut old.conns)
                .into_iter()
                .partition(|(r, _, _)| r == room);
            old.conns = kept;
            s.nodes
                .entry(node.to_string())
                .or_default()
                .conns
                .extend(moved);
        }
        let mut restored = 0;
        for c in connections {
            let registered = s
                .rooms
                .get(&c.room)
                .is_some_and(|r| r.presence.conns.contains_key(&c.conn));
            if !registered {
                s.enter(&node, c, how == Restore::Silently);
                restored += 1;
            }
        }
        Ok(restored)
    }

    async fn deregister(&self, _configured: &[RoomName]) -> Result<(), StoreError> {
        liveness::memory_leave(self);
        Ok(())
    }

    async fn member_counts(&self, rooms: &[RoomName]) -> Result<Vec<(RoomName, u64)>, StoreError> {
        Ok(self
            .hub
            .lock()
            .count_per_room(rooms, |room| room.presence.users.len() as u64))
    }

    /// No release before runs in one process.
    async fn legacy_heartbeat(
        &self,
        _rooms: &[RoomName],
        _ttl: Duration,
        _epoch_candidate: &str,
    ) -> PerRoom<RoomHeartbeat> {
        Vec::new()
    }

    /// No release before runs in one process.
    async fn legacy_sweep(
        &self,
        _rooms: &[RoomName],
        _grace: Duration,
        _max_exits: u64,
    ) -> Result<Sweep, StoreError> {
        Ok(Sweep::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_reads_from_the_script_s_json() {
        let json = r#"{"seq":4,"members":{"u2":"Bob","u1":"Ann"},"recovered":true,"history":[{"id":"5-1","room":"General","user":{"id":"u1","name":"Ann"},"text":"hi","ts":5}],"changes":{},"unread":2}"#;
        let snapshot: Snapshot = reply::json::<SnapshotRecord>("join room", Value::from(json))
            .expect("decodes")
            .into();
        let members: Vec<_> = snapshot
            .members
            .iter()
            .map(|m| (m.id.as_str(), m.name.as_str()))
            .collect();
        assert_eq!(members, [("u1", "Ann"), ("u2", "Bob")]);
        assert_eq!(snapshot.history[0].text, "hi");
        assert!(snapshot.changes.is_empty(), "cjson's empty table");
        assert_eq!(
            (snapshot.seq, snapshot.recovered, snapshot.unread),
            (4, true, 2)
        );
    }

    #[test]
    fn exits_read_a_zero_time_as_none() {
        let exits: Exits = reply::json(
            "announce exits",
            Value::from(r#"{"users_exited":2,"next_exit":0}"#),
        )
        .expect("decodes");
        assert_eq!((exits.users_exited, exits.next), (2, None));
        let exits: Exits = reply::json(
            "announce exits",
            Value::from(r#"{"users_exited":0,"next_exit":1700000000123}"#),
        )
        .expect("decodes");
        assert_eq!(exits.next, Some(1_700_000_000_123));
    }
}
