//! [`Presence`] on Redis: each operation is one Lua script.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chat_core::{RoomName, UserRef};
use fred::prelude::*;
use fred::types::Value;

use super::{RedisBackend, reply};
use crate::backend::{PerRoom, Presence, Revocations};
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
        ];
        let reply = self.run(OP, &scripts::JOIN, &c.room, args).await?;
        let mut parts = reply::array(OP, reply)?.into_iter();
        let mut next = || {
            parts
                .next()
                .ok_or_else(|| StoreError::reply(OP, "short reply"))
        };
        let status = reply::string(OP, next()?)?;
        if status != "ok" {
            return Err(StoreError::reply(OP, format!("status {status:?}")));
        }
        let seq = reply::integer(OP, next()?)?;
        let members = members(OP, next()?)?;
        let recovered = reply::integer(OP, next()?)? == 1;
        let history = reply::messages(OP, next()?)?;
        let changes = super::history::changes(OP, next()?)?;
        let unread = u64::try_from(reply::integer(OP, next()?)?).unwrap_or(0);
        Ok(JoinOutcome::Joined(Snapshot {
            seq: u64::try_from(seq).unwrap_or(0),
            members,
            recovered,
            history,
            changes,
            unread,
        }))
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
            let beat = async {
                let reply = self.run(OP, &scripts::HEARTBEAT, room, args).await?;
                let mut parts = reply::array(OP, reply)?.into_iter();
                let was_alive = reply::integer(OP, parts.next().unwrap_or(Value::Null))? == 1;
                let epoch = reply::string(OP, parts.next().unwrap_or(Value::Null))?;
                Ok(Heartbeat { was_alive, epoch })
            };
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
            let reply = self.run(OP, &scripts::SWEEP, room, args).await?;
            let mut parts = reply::array(OP, reply)?.into_iter();
            let removed = reply::integer(OP, parts.next().unwrap_or(Value::Null))?;
            let exited = reply::integer(OP, parts.next().unwrap_or(Value::Null))?;
            Ok::<_, StoreError>(Sweep {
                connections_removed: u64::try_from(removed).unwrap_or(0),
                users_exited: u64::try_from(exited).unwrap_or(0),
            })
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

/// The members of a join reply: `id<TAB>name<TAB>id<TAB>name...` (empty for none).
fn members(operation: &'static str, value: Value) -> Result<Vec<UserRef>, StoreError> {
    let flat = reply::string(operation, value)?;
    if flat.is_empty() {
        return Ok(Vec::new());
    }
    let mut fields = flat.split('\t');
    let mut members = Vec::new();
    while let Some(id) = fields.next() {
        let name = fields
            .next()
            .ok_or_else(|| StoreError::reply(operation, "a member without a name"))?;
        members.push(UserRef {
            id: id.to_owned(),
            name: name.to_owned(),
        });
    }
    Ok(members)
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_come_from_one_tab_separated_string() {
        let parsed = members("join room", Value::from("u1\tAnn\tu2\tBob Smith")).expect("members");
        let ids: Vec<_> = parsed
            .iter()
            .map(|m| (m.id.as_str(), m.name.as_str()))
            .collect();
        assert_eq!(ids, [("u1", "Ann"), ("u2", "Bob Smith")]);
        assert!(
            members("join room", Value::from(""))
                .expect("none")
                .is_empty()
        );
        assert!(members("join room", Value::from("u1\tAnn\tu2")).is_err());
    }
}
