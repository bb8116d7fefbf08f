//! Who is in which room, across every gateway replica.
//!
//! Presence is kept per connection so that a user with two tabs on two
//! replicas is one member, and a replica that dies without a word can have
//! exactly its own connections swept away by a survivor.

use chat_core::RoomName;
use fred::prelude::*;

use crate::error::StoreError;
use crate::schema;

/// How many users are in each of `rooms` (a user leaving within the exit
/// grace still counts). Read by the web service's dashboard.
pub async fn member_counts(
    client: &Client,
    rooms: impl IntoIterator<Item = &RoomName>,
) -> Result<Vec<(RoomName, u64)>, StoreError> {
    let rooms: Vec<RoomName> = rooms.into_iter().cloned().collect();
    let pipeline = client.pipeline();
    for room in &rooms {
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
    Ok(rooms.into_iter().zip(counts).collect())
}

use chat_core::{MessageId, UserRef};
use fred::types::Value;
use serde_json::value::RawValue;

use crate::rooms::{RoomStore, reply};
use crate::scripts;

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
    pub history: Vec<Box<RawValue>>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Whether this node's heartbeat was still there.
    pub was_alive: bool,
    /// The data epoch; it changes when Redis loses its data.
    pub epoch: String,
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sweep {
    /// Connections of dead nodes removed.
    pub connections_removed: u64,
    /// Users announced as exited.
    pub users_exited: u64,
}

impl RoomStore {
    /// Registers a connection and returns the room's snapshot, atomically.
    /// `silent` suppresses `user entered`.
    pub async fn join(
        &self,
        request: JoinRequest<'_>,
        silent: bool,
    ) -> Result<JoinOutcome, StoreError> {
        const OP: &str = "join room";
        let c = request.connection;
        let args = vec![
            Value::from(c.room.as_str()),
            Value::from(self.node.as_str()),
            Value::from(c.conn.as_str()),
            Value::from(c.user.id.as_str()),
            Value::from(c.user.name.as_str()),
            Value::from(request.session.unwrap_or_default()),
            Value::from(request.since.map(|s| s.to_string()).unwrap_or_default()),
            Value::from(request.history_limit as i64),
            Value::from(if silent { "1" } else { "0" }),
        ];
        let mut parts = reply::array(OP, self.run(OP, &scripts::JOIN, args).await?)?.into_iter();
        let status = reply::string(OP, parts.next().unwrap_or(Value::Null))?;
        if status == "revoked" {
            return Ok(JoinOutcome::Revoked);
        }
        let mut next = || {
            parts
                .next()
                .ok_or_else(|| StoreError::reply(OP, "short reply"))
        };
        let seq = reply::integer(OP, next()?)?;
        let flat = reply::array(OP, next()?)?;
        let recovered = reply::integer(OP, next()?)? == 1;
        let history = reply::messages(OP, next()?)?;
        let mut members = Vec::with_capacity(flat.len() / 2);
        let mut flat = flat.into_iter();
        while let (Some(id), Some(name)) = (flat.next(), flat.next()) {
            members.push(UserRef {
                id: reply::string(OP, id)?,
                name: reply::string(OP, name)?,
            });
        }
        Ok(JoinOutcome::Joined(Snapshot {
            seq: u64::try_from(seq).unwrap_or(0),
            members,
            recovered,
            history,
        }))
    }

    /// Releases a connection; the user's `user exited` follows after `grace`
    /// unless another of their connections appears first.
    pub async fn leave(
        &self,
        connection: &Connection,
        grace: std::time::Duration,
    ) -> Result<(), StoreError> {
        const OP: &str = "leave room";
        let args = vec![
            Value::from(connection.room.as_str()),
            Value::from(self.node.as_str()),
            Value::from(connection.conn.as_str()),
            Value::from(connection.user.id.as_str()),
            Value::from(millis(grace)),
        ];
        self.run(OP, &scripts::LEAVE, args).await.map(|_| ())
    }

    /// Refreshes this node's heartbeat for `ttl`.
    pub async fn heartbeat(
        &self,
        ttl: std::time::Duration,
        epoch_candidate: &str,
    ) -> Result<Heartbeat, StoreError> {
        const OP: &str = "heartbeat";
        let args = vec![
            Value::from(self.node.as_str()),
            Value::from(millis(ttl)),
            Value::from(epoch_candidate),
        ];
        let mut parts =
            reply::array(OP, self.run(OP, &scripts::HEARTBEAT, args).await?)?.into_iter();
        let was_alive = reply::integer(OP, parts.next().unwrap_or(Value::Null))? == 1;
        let epoch = reply::string(OP, parts.next().unwrap_or(Value::Null))?;
        Ok(Heartbeat { was_alive, epoch })
    }

    /// Sweeps dead nodes and announces users whose exit grace has passed.
    pub async fn sweep(
        &self,
        grace: std::time::Duration,
        max_exits: u64,
    ) -> Result<Sweep, StoreError> {
        const OP: &str = "sweep";
        let args = vec![
            Value::from(millis(grace)),
            Value::from(i64::try_from(max_exits).unwrap_or(i64::MAX)),
        ];
        let mut parts = reply::array(OP, self.run(OP, &scripts::SWEEP, args).await?)?.into_iter();
        let removed = reply::integer(OP, parts.next().unwrap_or(Value::Null))?;
        let exited = reply::integer(OP, parts.next().unwrap_or(Value::Null))?;
        Ok(Sweep {
            connections_removed: u64::try_from(removed).unwrap_or(0),
            users_exited: u64::try_from(exited).unwrap_or(0),
        })
    }

    /// Registers again connections that Redis lost; `silent` when the loss was
    /// Redis's own (nobody saw these users leave).
    pub async fn restore(
        &self,
        connections: &[Connection],
        silent: bool,
    ) -> Result<u64, StoreError> {
        const OP: &str = "restore presence";
        let mut restored = 0;
        for chunk in connections.chunks(500) {
            let mut args = vec![
                Value::from(self.node.as_str()),
                Value::from(if silent { "1" } else { "0" }),
            ];
            for c in chunk {
                args.extend([
                    Value::from(c.room.as_str()),
                    Value::from(c.conn.as_str()),
                    Value::from(c.user.id.as_str()),
                    Value::from(c.user.name.as_str()),
                ]);
            }
            restored += reply::integer(OP, self.run(OP, &scripts::RESTORE, args).await?)?;
        }
        Ok(u64::try_from(restored).unwrap_or(0))
    }

    /// Removes this node's heartbeat and registry (after its connections left).
    pub async fn deregister(&self) -> Result<(), StoreError> {
        self.run(
            "deregister node",
            &scripts::DEREGISTER,
            vec![Value::from(self.node.as_str())],
        )
        .await
        .map(|_| ())
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
