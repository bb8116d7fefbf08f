//! [`Presence`] on Redis: each operation is one Lua script.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chat_core::events::Change;
use chat_core::{Message, RoomName, UserRef};
use fred::prelude::*;
use fred::types::Value;
use serde::Deserialize;

use super::RedisBackend;
use super::reply::{self, LuaList};
use crate::backend::{PerRoom, Presence, Revocations, UNREAD_MAX};
use crate::error::StoreError;
use crate::presence::{Connection, Heartbeat, JoinOutcome, JoinRequest, Snapshot, Sweep};
use crate::{schema, scripts};

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
        let args = vec![
            Value::from(c.conn.as_str()),
            Value::from(c.user.id.as_str()),
            Value::from(c.user.name.as_str()),
            Value::from(request.since.map(|s| s.to_string()).unwrap_or_default()),
            Value::from(request.history_limit as i64),
            Value::from(if silent { "1" } else { "0" }),
            Value::from(chat_core::events::REPLY_MAX_BYTES as i64),
            Value::from(UNREAD_MAX as i64),
        ];
        let reply = self.run(OP, &scripts::JOIN, &c.room, args).await?;
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
            Value::from(millis(grace)),
        ];
        self.run(OP, &scripts::LEAVE, &connection.room, args)
            .await
            .map(|_| ())
    }

    /// Refreshes this node's heartbeat in every room, concurrently.
    async fn heartbeat(
        &self,
        rooms: &[RoomName],
        ttl: std::time::Duration,
        epoch_candidate: &str,
    ) -> PerRoom<Heartbeat> {
        const OP: &str = "heartbeat";
        let beats = rooms.iter().map(|room| async move {
            let args = vec![Value::from(millis(ttl)), Value::from(epoch_candidate)];
            let beat =
                async { reply::json(OP, self.run(OP, &scripts::HEARTBEAT, room, args).await?) };
            (room.clone(), beat.await)
        });
        futures_util::future::join_all(beats).await
    }

    /// Sweeps dead nodes out of every room and announces due exits, concurrently.
    async fn sweep(
        &self,
        rooms: &[RoomName],
        grace: std::time::Duration,
        max_exits: u64,
    ) -> Result<Sweep, StoreError> {
        const OP: &str = "sweep";
        let sweeps = rooms.iter().map(|room| async move {
            let args = vec![
                Value::from(millis(grace)),
                Value::from(i64::try_from(max_exits).unwrap_or(i64::MAX)),
            ];
            reply::json::<Sweep>(OP, self.run(OP, &scripts::SWEEP, room, args).await?)
        });
        let mut total = Sweep::default();
        let mut failed = None;
        for result in futures_util::future::join_all(sweeps).await {
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
                restored += reply::integer(OP, self.run(OP, &scripts::RESTORE, room, args).await?)?;
            }
        }
        Ok(u64::try_from(restored).unwrap_or(0))
    }

    /// Removes this node's heartbeat and registry from every room (after its
    /// connections left).
    async fn deregister(&self, rooms: &[RoomName]) -> Result<(), StoreError> {
        for room in rooms {
            self.run("deregister node", &scripts::DEREGISTER, room, Vec::new())
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

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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
