//! Which nodes (gateway replicas) are alive, and the sweep of the dead ones,
//! on Redis and in memory.
//!
//! A node renews one key with a TTL, `chat:{nodes}:alive:<node>`, and is a
//! member of `chat:{nodes}` from its first heartbeat: what it sends Redis in
//! the background is one script per heartbeat, whatever the number of its
//! rooms. It lists the rooms where it has connections, or exits to
//! announce, in `chat:node:{N}:rooms`, written before it joins one.
//!
//! Every node sweeps: one script takes, atomically, the nodes whose alive
//! key is gone (so exactly one sweeper takes each; never itself), and the
//! sweeper releases their connections in the rooms they listed, and no
//! other, each with a script in the room's slot told which node died. The
//! rooms where an exit is then to come join the sweeper's own list before
//! the dead node's list goes, and the sweeper announces those exits when
//! due: a crash at any point leaves a room listed by someone. A sweeper
//! that dies half-way leaves its node taken; another takes it again after
//! [`SWEEP_LEASE`] (sweeping a room twice does nothing the second time).
//!
//! A node taken as dead while it was in fact alive (stalled longer than its
//! TTL) is never revived: its heartbeat says so, and it carries on under a
//! new id (`crate::node_id`), taking over in each of its rooms what the old
//! id holds there, so whatever its sweeper has not reached yet is never
//! swept from under the live connections.

use std::sync::LazyLock;
use std::time::Duration;

use chat_core::RoomName;
use fred::prelude::*;
use fred::types::Value;
use fred::types::scripts::Script;
use futures_util::future::join_all;
use serde::Deserialize;
use tracing::Instrument;

use super::{BACKGROUND_IN_FLIGHT, Beat, DeadSweep, Liveness, SWEEP_NODE, redis_ms};
use crate::error::StoreError;
use crate::memory::{MemoryBackend, millis, now_ms};
use crate::redis::RedisBackend;
use crate::redis::reply;
use crate::schema;

/// How long a taken node may stay unswept before another sweeper takes it
/// again (its sweeper died half-way).
pub(super) const SWEEP_LEASE: Duration = Duration::from_secs(30);

/// How long a swept node is remembered: a node that comes back within it
/// learns that it was swept.
const SWEPT_KEPT: Duration = Duration::from_secs(3600);

/// Most dead nodes one sweep takes.
const TAKE_AT_ONCE: i64 = 16;

/// Renew a node's liveness; say what it was.
static NODE_BEAT: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("../lua/node_beat.lua")));
/// Take the nodes found dead, to sweep them.
static NODE_TAKE: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("../lua/node_take.lua")));
/// Record that a dead node was swept.
static NODE_SWEPT: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("../lua/node_swept.lua")));

// On Redis.

/// Runs one of the liveness scripts (outside any room; their keys share the
/// `{nodes}` slot), timed like the room scripts.
async fn run(
    backend: &RedisBackend,
    operation: &'static str,
    script: &Script,
    keys: Vec<String>,
    args: Vec<Value>,
) -> Result<Value, StoreError> {
    let client = &backend.client;
    if client.is_clustered() && client.cached_cluster_state().is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(2), client.wait_for_connect()).await;
    }
    let span = tracing::info_span!(
        "redis",
        otel.name = operation,
        otel.kind = "client",
        db.system.name = "redis",
        db.operation.name = "EVALSHA",
    );
    let started = std::time::Instant::now();
    let result = script
        .evalsha_with_reload(client, keys, args)
        .instrument(span)
        .await
        .map_err(StoreError::redis(operation));
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::histogram!(crate::metrics_names::COMMAND_SECONDS, "operation" => operation, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    result
}

/// Lists `rooms` among this node's.
pub(super) async fn track(backend: &RedisBackend, rooms: &[RoomName]) -> Result<(), StoreError> {
    if rooms.is_empty() {
        return Ok(());
    }
    let members: Vec<Value> = rooms.iter().map(|r| Value::from(r.as_str())).collect();
    backend
        .client
        .sadd::<(), _, _>(schema::node_rooms(&backend.node.current()), members)
        .await
        .map_err(StoreError::redis("track rooms"))
}

/// Takes `room` off this node's list.
pub(super) async fn untrack(backend: &RedisBackend, room: &RoomName) -> Result<(), StoreError> {
    backend
        .client
        .srem::<(), _, _>(schema::node_rooms(&backend.node.current()), room.as_str())
        .await
        .map_err(StoreError::redis("untrack room"))
}

/// One beat of `node`: what its liveness was.
async fn beat(backend: &RedisBackend, node: &str, ttl: Duration) -> Result<String, StoreError> {
    const OP: &str = "node heartbeat";
    let keys = vec![
        schema::NODES.to_owned(),
        schema::NODES_TAKEN.to_owned(),
        schema::NODES_SWEPT.to_owned(),
        schema::node_alive(node),
    ];
    let args = vec![Value::from(node), Value::from(redis_ms(ttl))];
    reply::string(OP, run(backend, OP, &NODE_BEAT, keys, args).await?)
}

/// Renews this node's liveness; carries on under a new id if it was taken as dead.
pub(super) async fn heartbeat(backend: &RedisBackend, ttl: Duration) -> Result<Beat, StoreError> {
    let id = backend.node.current();
    let liveness = match beat(backend, &id, ttl).await?.as_str() {
        "alive" => Liveness::Alive,
        "new" => Liveness::New,
        "taken" | "swept" => {
            let new = backend.node.replace(&id);
            tracing::warn!(previous = %id, node = %new, "this replica was taken as dead while alive; it carries on under a new node id");
            // Registered at the next beat if this one fails: the new id is
            // in use from now on either way.
            if let Err(e) = beat(backend, &new, ttl).await {
                tracing::warn!(error = %e, "the new node id's first heartbeat failed");
            }
            Liveness::Replaced {
                previous: id.to_string(),
            }
        }
        other => {
            return Err(StoreError::reply(
                "node heartbeat",
                format!("unknown liveness {other:?}"),
            ));
        }
    };
    let rooms_tracked = backend
        .client
        .scard::<u64, _>(schema::node_rooms(&backend.node.current()))
        .await
        .map_err(|e| tracing::debug!(error = %e, "could not count this node's rooms"))
        .ok();
    Ok(Beat {
        liveness,
        rooms_tracked,
    })
}

/// Lets this node's liveness lapse at once: a survivor takes it and
/// announces the exits it was to announce.
pub(super) async fn leave(backend: &RedisBackend) -> Result<(), StoreError> {
    backend
        .client
        .del::<(), _>(schema::node_alive(&backend.node.current()))
        .await
        .map_err(StoreError::redis("end liveness"))
}

/// What sweeping one room of a dead node did, as `sweep_node.lua` says.
#[derive(Deserialize)]
struct RoomSwept {
    connections_removed: u64,
    #[serde(rename = "next_exit", deserialize_with = "super::zero_is_none")]
    next: Option<u64>,
}

/// Takes the dead nodes and sweeps each. A node whose sweep failed half-way
/// stays taken, and is taken again after the lease; what was swept is
/// reported all the same (its exits are to be announced).
pub(super) async fn sweep_dead(
    backend: &RedisBackend,
    grace: Duration,
) -> Result<DeadSweep, StoreError> {
    const OP: &str = "take dead nodes";
    let me = backend.node.current();
    let keys = vec![schema::NODES.to_owned(), schema::NODES_TAKEN.to_owned()];
    let args = vec![
        Value::from(schema::NODE_ALIVE_PREFIX),
        Value::from(redis_ms(SWEEP_LEASE)),
        Value::from(TAKE_AT_ONCE),
        Value::from(&*me),
    ];
    let taken: Vec<String> = match run(backend, OP, &NODE_TAKE, keys, args).await? {
        Value::Array(nodes) => nodes
            .into_iter()
            .map(|n| reply::string(OP, n))
            .collect::<Result<_, _>>()?,
        Value::Null => Vec::new(),
        other => return Err(StoreError::reply(OP, format!("{other:?}"))),
    };
    let mut total = DeadSweep::default();
    for dead in taken {
        total.nodes += 1;
        if let Err(e) = sweep_node(backend, &dead, grace, &mut total).await {
            tracing::warn!(error = %e, node = %dead, "sweep of a dead node failed; it is taken again after the lease");
        }
    }
    Ok(total)
}

/// Sweeps the rooms `dead` listed, adds to `total` what it did, and, once
/// every room is swept and the exits to come are listed among this node's
/// rooms, records the node as swept.
async fn sweep_node(
    backend: &RedisBackend,
    dead: &str,
    grace: Duration,
    total: &mut DeadSweep,
) -> Result<(), StoreError> {
    const OP: &str = "sweep dead node";
    let listed: Vec<String> = backend
        .client
        .smembers(schema::node_rooms(dead))
        .await
        .map_err(StoreError::redis("read a dead node's rooms"))?;
    let rooms: Vec<RoomName> = listed
        .iter()
        .filter_map(|r| RoomName::parse(r).ok())
        .collect();
    let mut failed = None;
    let mut exits = Vec::new();
    for some in rooms.chunks(BACKGROUND_IN_FLIGHT) {
        let some = some.iter().map(|room| async move {
            let keys = vec![
                schema::room_key(room, &format!("node:{dead}")),
                schema::room_key(room, &format!("alive:{dead}")),
            ];
            let args = vec![Value::from(dead), Value::from(redis_ms(grace))];
            let swept = async {
                reply::json::<RoomSwept>(
                    OP,
                    backend
                        .run_with_keys(OP, &SWEEP_NODE, room, keys, args)
                        .await?,
                )
            };
            (room, swept.await)
        });
        for (room, swept) in join_all(some).await {
            match swept {
                Ok(swept) => {
                    total.rooms += 1;
                    total.connections_removed += swept.connections_removed;
                    if let Some(at) = swept.next {
                        exits.push((room.clone(), at));
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
    }
    let exit_rooms: Vec<RoomName> = exits.iter().map(|(r, _)| r.clone()).collect();
    let tracked = track(backend, &exit_rooms).await;
    total.exits.extend(exits);
    if let Some(e) = failed {
        return Err(e);
    }
    tracked?;
    backend
        .client
        .del::<(), _>(schema::node_rooms(dead))
        .await
        .map_err(StoreError::redis("forget a dead node's rooms"))?;
    let keys = vec![
        schema::NODES_TAKEN.to_owned(),
        schema::NODES_SWEPT.to_owned(),
    ];
    let args = vec![Value::from(dead), Value::from(redis_ms(SWEPT_KEPT))];
    run(backend, "dead node swept", &NODE_SWEPT, keys, args).await?;
    Ok(())
}

// In memory: the same decisions under the hub's lock.

/// Lists `rooms` among this node's.
pub(super) fn memory_track(backend: &MemoryBackend, rooms: &[RoomName]) {
    let node = backend.node.current();
    let mut s = backend.hub.lock();
    s.nodes
        .entry(node.to_string())
        .or_default()
        .rooms
        .extend(rooms.iter().cloned());
}

/// Takes `room` off this node's list.
pub(super) fn memory_untrack(backend: &MemoryBackend, room: &RoomName) {
    let node = backend.node.current();
    if let Some(n) = backend.hub.lock().nodes.get_mut(&*node) {
        n.rooms.remove(room);
    }
}

/// Renews this node's liveness; carries on under a new id if it was swept
/// (in memory a sweep is one step: a node is never seen taken and unswept).
pub(super) fn memory_heartbeat(backend: &MemoryBackend, ttl: Duration) -> Beat {
    let id = backend.node.current();
    let mut s = backend.hub.lock();
    let until = now_ms().saturating_add(millis(ttl));
    let liveness = if s.swept.contains_key(&*id) {
        let new = backend.node.replace(&id);
        s.nodes.entry(new.to_string()).or_default().alive_until_ms = until;
        Liveness::Replaced {
            previous: id.to_string(),
        }
    } else {
        let node = s.nodes.entry(id.to_string()).or_default();
        let was = std::mem::replace(&mut node.alive_until_ms, until);
        if was == 0 {
            Liveness::New
        } else {
            Liveness::Alive
        }
    };
    let rooms_tracked = s
        .nodes
        .get(&*backend.node.current())
        .map_or(0, |n| n.rooms.len() as u64);
    Beat {
        liveness,
        rooms_tracked: Some(rooms_tracked),
    }
}

/// Lets this node's liveness lapse at once.
pub(super) fn memory_leave(backend: &MemoryBackend) {
    let node = backend.node.current();
    if let Some(n) = backend.hub.lock().nodes.get_mut(&*node) {
        n.alive_until_ms = 1;
    }
}

/// Sweeps every node whose liveness lapsed, but this one, in the rooms it
/// tracked.
pub(super) fn memory_sweep_dead(backend: &MemoryBackend, grace: Duration) -> DeadSweep {
    let me = backend.node.current();
    let mut s = backend.hub.lock();
    let now = now_ms();
    let dead: Vec<String> = s
        .nodes
        .iter()
        .filter(|(id, n)| **id != *me && n.alive_until_ms > 0 && n.alive_until_ms <= now)
        .map(|(id, _)| id.clone())
        .collect();
    let mut total = DeadSweep::default();
    for node in dead {
        let Some(state) = s.nodes.remove(&node) else {
            continue;
        };
        total.nodes += 1;
        total.rooms += state.rooms.len() as u64;
        for (room, conn, uid) in &state.conns {
            if state.rooms.contains(room) && s.release(room, conn, uid, millis(grace)) {
                total.connections_removed += 1;
            }
        }
        let exits: Vec<(RoomName, u64)> = state
            .rooms
            .iter()
            .filter_map(|room| s.next_exit(room).map(|at| (room.clone(), at)))
            .collect();
        let mine = s.nodes.entry(me.to_string()).or_default();
        mine.rooms.extend(exits.iter().map(|(r, _)| r.clone()));
        total.exits.extend(exits);
        s.swept
            .retain(|_, at| now.saturating_sub(*at) < millis(SWEPT_KEPT));
        s.swept.insert(node, now);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryHub;

    #[test]
    fn a_node_swept_in_memory_carries_on_under_a_new_id() {
        let hub = MemoryHub::new();
        let (dead, alive) = (hub.backend("dead"), hub.backend("alive"));
        let room = RoomName::parse("R").expect("room");
        memory_heartbeat(&dead, Duration::ZERO);
        memory_heartbeat(&alive, Duration::from_secs(60));
        memory_track(&dead, std::slice::from_ref(&room));
        std::thread::sleep(Duration::from_millis(2));
        let swept = memory_sweep_dead(&alive, Duration::ZERO);
        assert_eq!((swept.nodes, swept.rooms), (1, 1));
        let beat = memory_heartbeat(&dead, Duration::from_secs(60));
        assert_eq!(
            beat.liveness,
            Liveness::Replaced {
                previous: "dead".into()
            }
        );
        assert_eq!(&*dead.node.current(), "dead.1");
        assert_eq!(memory_sweep_dead(&alive, Duration::ZERO).nodes, 0);
    }
}
