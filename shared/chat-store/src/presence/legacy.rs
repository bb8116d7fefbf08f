//! The per-room heartbeats and sweeps of the release before (372f50d), kept
//! in the configured rooms only, for as long as replicas of that release may
//! run beside this one (docs/UPGRADES.md says when they go): its sweeps read
//! these heartbeats, so they never sweep a live replica of this release, and
//! sweep a dead one; this release's sweep of them sweeps its dead replicas.
//! A constant cost, whatever the number of rooms made.

use std::time::Duration;

use chat_core::RoomName;
use fred::types::Value;
use futures_util::future::join_all;
use serde::Deserialize;

use super::{BACKGROUND_IN_FLIGHT, DEREGISTER, HEARTBEAT, SWEEP, redis_ms};
use crate::backend::PerRoom;
use crate::error::StoreError;
use crate::redis::RedisBackend;
use crate::redis::reply;

/// What a configured room's heartbeat learned.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomHeartbeat {
    /// Whether this node's heartbeat in the room was still there.
    pub was_alive: bool,
    /// The room's data epoch; it changes when the room's shard loses its data.
    pub epoch: String,
}

/// What a sweep of the configured rooms did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Sweep {
    /// Connections of dead nodes removed.
    pub connections_removed: u64,
    /// Users announced as exited.
    pub users_exited: u64,
}

/// Refreshes this node's heartbeat in every one of `rooms`, a few at a time.
pub(super) async fn heartbeat(
    backend: &RedisBackend,
    rooms: &[RoomName],
    ttl: Duration,
    epoch_candidate: &str,
) -> PerRoom<RoomHeartbeat> {
    const OP: &str = "heartbeat";
    let mut beats = Vec::with_capacity(rooms.len());
    for some in rooms.chunks(BACKGROUND_IN_FLIGHT) {
        let some = some.iter().map(|room| async move {
            let args = vec![Value::from(redis_ms(ttl)), Value::from(epoch_candidate)];
            let beat = async { reply::json(OP, backend.run(OP, &HEARTBEAT, room, args).await?) };
            (room.clone(), beat.await)
        });
        beats.extend(join_all(some).await);
    }
    beats
}

/// Sweeps the nodes whose heartbeat lapsed out of every one of `rooms`, and
/// announces their due exits, a few rooms at a time.
pub(super) async fn sweep(
    backend: &RedisBackend,
    rooms: &[RoomName],
    grace: Duration,
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
            reply::json::<Sweep>(OP, backend.run(OP, &SWEEP, room, args).await?)
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

/// Removes this node's heartbeat and registry from every one of `rooms`
/// (after its connections left).
pub(super) async fn deregister(
    backend: &RedisBackend,
    rooms: &[RoomName],
) -> Result<(), StoreError> {
    for room in rooms {
        backend
            .run("deregister node", &DEREGISTER, room, Vec::new())
            .await?;
    }
    Ok(())
}
