//! Who is in which room, across every gateway replica: [`Presence`], its
//! types, and its two implementations.
//!
//! Presence is kept per connection so that a user with two tabs on two
//! replicas is one member, and a replica that dies without a word can have
//! exactly its own connections swept away by a survivor. On Redis each
//! operation is one Lua script; in memory, the same decision under the
//! hub's lock.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::events::{Change, RoomEvent};
use chat_core::{Message, MessageId, RoomName, UserRef};
use fred::prelude::*;
use fred::types::Value;
use futures_util::future::join_all;

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

crate::scripts::script! {
    /// Register a connection and snapshot members and history.
    JOIN = "lua/join.lua";
    /// Release a connection; schedule `user exited` after the grace.
    LEAVE = "lua/leave.lua";
    /// Refresh a node's heartbeat and read the data epoch.
    HEARTBEAT = "lua/heartbeat.lua";
    /// Sweep dead nodes and announce users whose exit grace passed.
    SWEEP = "lua/sweep.lua";
    /// Register again the connections Redis lost.
    RESTORE = "lua/restore.lua";
    /// Remove a draining node.
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

// On Redis.

/// How many of a replica's per-room background scripts (heartbeats, sweeps)
/// it has Redis run at once (and holds the futures of). All of a tick's at once held Redis for
/// milliseconds every tick (two hundred rooms: about 8 ms), and the sends
/// queued behind them made the fan-out's p99 (docs/BENCHMARKS.md); a few at
/// a time, a send waits behind at most these.
const BACKGROUND_IN_FLIGHT: usize = 8;

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
    fn node(&self) -> &str {
        &self.node
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

    /// Releases a connection; the user's `user exited` follows after `grace`
    /// unless another of their connections appears first.
    async fn leave(
        &self,
        connection: &Connection,
        grace: std::time::Duration,
    ) -> Result<(), StoreError> {
        const OP: &str = "leave room";
        let args = vec![
            Value::from(connection.conn.as_str()),
            Value::from(connection.user.id.as_str()),
            Value::from(redis_ms(grace)),
        ];
        self.run(OP, &LEAVE, &connection.room, args)
            .await
            .map(|_| ())
    }

    /// Refreshes this node's heartbeat in every room, a few at a time.
    async fn heartbeat(
        &self,
        rooms: &[RoomName],
        ttl: std::time::Duration,
        epoch_candidate: &str,
    ) -> PerRoom<Heartbeat> {
        const OP: &str = "heartbeat";
        let mut beats = Vec::with_capacity(rooms.len());
        for some in rooms.chunks(BACKGROUND_IN_FLIGHT) {
            let some = some.iter().map(|room| async move {
                let args = vec![Value::from(redis_ms(ttl)), Value::from(epoch_candidate)];
                let beat = async { reply::json(OP, self.run(OP, &HEARTBEAT, room, args).await?) };
                (room.clone(), beat.await)
            });
            beats.extend(join_all(some).await);
        }
        beats
    }

    /// Sweeps dead nodes out of every room and announces due exits, a few
    /// rooms at a time.
    async fn sweep(
        &self,
        rooms: &[RoomName],
        grace: std::time::Duration,
        max_exits: u64,
    ) -> Result<Sweep, StoreError> {
        const OP: &str = "sweep";
        let mut results = Vec::with_capacity(rooms.len());
        for some in rooms.chunks(BACKGROUND_IN_FLIGHT) {
            let some = some.iter().map(|room| async move {
                let args = vec![
                    Value::from(redis_ms(grace)),
                    Value::from(i64::try_from(max_exits).unwrap_or(i64::MAX)),
                ];
                reply::json::<Sweep>(OP, self.run(OP, &SWEEP, room, args).await?)
            });
            results.extend(join_all(some).await);
        }
        let mut total = Sweep::default();
        let mut failed = None;
        for result in results {
            match result {
                Ok(s) => {
                    total.connections_removed += s.connections_removed;
                    total.users_exited += s.users_exited;
                }
                Err(e) => failed = Some(e),
            }
        }
        failed.map_or(Ok(total), Err)
    }

    /// Registers again connections that Redis lost; `silent` when the loss was
    /// Redis's own (nobody saw these users leave). One script per room and
    /// at most 500 connections.
    async fn restore(&self, connections: &[Connection], silent: bool) -> Result<u64, StoreError> {
        const OP: &str = "restore presence";
        let mut by_room: BTreeMap<&RoomName, Vec<&Connection>> = BTreeMap::new();
        for c in connections {
            by_room.entry(&c.room).or_default().push(c);
        }
        let mut restored = 0;
        for (room, conns) in by_room {
            for chunk in conns.chunks(500) {
                let mut args = vec![Value::from(if silent { "1" } else { "0" })];
                for c in chunk {
                    args.extend([
                        Value::from(c.conn.as_str()),
                        Value::from(c.user.id.as_str()),
                        Value::from(c.user.name.as_str()),
                    ]);
                }
                restored += reply::integer(OP, self.run(OP, &RESTORE, room, args).await?)?;
            }
        }
        Ok(u64::try_from(restored).unwrap_or(0))
    }

    /// Removes this node's heartbeat and registry from every room (after its
    /// connections left).
    async fn deregister(&self, rooms: &[RoomName]) -> Result<(), StoreError> {
        for room in rooms {
            self.run("deregister node", &DEREGISTER, room, Vec::new())
                .await?;
        }
        Ok(())
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
impl Presence for MemoryBackend {
    fn node(&self) -> &str {
        &self.node
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
        s.enter(&self.node, c, silent);
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

    async fn leave(&self, connection: &Connection, grace: Duration) -> Result<(), StoreError> {
        let mut s = self.hub.lock();
        if let Some(node) = s.nodes.get_mut(&self.node) {
            node.conns.remove(&(
                connection.room.clone(),
                connection.conn.clone(),
                connection.user.id.clone(),
            ));
        }
        s.release(
            &connection.room,
            &connection.conn,
            &connection.user.id,
            millis(grace),
        );
        Ok(())
    }

    /// One store, one heartbeat: every room gets the same answer.
    async fn heartbeat(
        &self,
        rooms: &[RoomName],
        ttl: Duration,
        epoch_candidate: &str,
    ) -> PerRoom<Heartbeat> {
        let mut s = self.hub.lock();
        let now = now_ms();
        let node = s.nodes.entry(self.node.clone()).or_default();
        let was_alive = node.alive_until_ms > now;
        node.alive_until_ms = now.saturating_add(millis(ttl));
        let epoch = s
            .epoch
            .get_or_insert_with(|| epoch_candidate.to_owned())
            .clone();
        let beat = Heartbeat { was_alive, epoch };
        rooms
            .iter()
            .map(|r| (r.clone(), Ok(beat.clone())))
            .collect()
    }

    /// One store: the sweep covers every room at once.
    async fn sweep(
        &self,
        _rooms: &[RoomName],
        grace: Duration,
        max_exits: u64,
    ) -> Result<Sweep, StoreError> {
        let mut s = self.hub.lock();
        let now = now_ms();
        let dead: Vec<String> = s
            .nodes
            .iter()
            .filter(|(_, n)| n.alive_until_ms <= now && n.alive_until_ms > 0)
            .map(|(k, _)| k.clone())
            .collect();
        let mut result = Sweep::default();
        for node in dead {
            let Some(state) = s.nodes.remove(&node) else {
                continue;
            };
            for (room, conn, uid) in state.conns {
                if s.release(&room, &conn, &uid, millis(grace)) {
                    result.connections_removed += 1;
                }
            }
        }
        let due: Vec<(u64, RoomName, String)> = s
            .leaving
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .take(usize::try_from(max_exits).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        for entry in due {
            s.leaving.remove(&entry);
            let (_, room_name, uid) = entry;
            let Some(room) = s.rooms.get_mut(&room_name) else {
                continue;
            };
            if room.presence.users.get(&uid).copied().unwrap_or(0) <= 0 {
                room.presence.users.remove(&uid);
                let name = room
                    .presence
                    .names
                    .remove(&uid)
                    .unwrap_or_else(|| uid.clone());
                s.publish(
                    &room_name,
                    RoomEvent::UserExited(UserRef { id: uid, name }),
                    None,
                );
                result.users_exited += 1;
            }
        }
        Ok(result)
    }

    async fn restore(&self, connections: &[Connection], silent: bool) -> Result<u64, StoreError> {
        let mut s = self.hub.lock();
        for c in connections {
            s.enter(&self.node, c, silent);
        }
        Ok(connections.len() as u64)
    }

    async fn deregister(&self, _rooms: &[RoomName]) -> Result<(), StoreError> {
        self.hub.lock().nodes.remove(&self.node);
        Ok(())
    }

    async fn member_counts(&self, rooms: &[RoomName]) -> Result<Vec<(RoomName, u64)>, StoreError> {
        Ok(self
            .hub
            .lock()
            .count_per_room(rooms, |room| room.presence.users.len() as u64))
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
}
