//! Waiting for Redis replicas (`REDIS_WAIT_REPLICAS`) on a client of its own.
//!
//! `WAIT` blocks the connection it is sent on until the replicas answer, so on
//! the shared command client one lagging replica would hold up every command
//! to its primary: history, read markers, heartbeats, handshakes.
//! [`ReplicaWait`] sends it on a client used for nothing else (built like the
//! others: same reconnect policy, same timeouts), so a lagging or stopped
//! replica costs only the acks that wait for it.
//!
//! `WAIT` waits for the replication offset of its own connection's last write
//! (Redis 7.2 and newer count only commands that wrote, 7.0 any command): on
//! a connection that never wrote it answers at once, whatever the replicas
//! hold. So each `WAIT` follows, in one pipeline on the same connection, a
//! barrier script (`lua/barrier.lua`) that writes a key in each waiting
//! room's hash slot: the primary orders it after every write it made before,
//! so replicas that hold the barrier hold those writes too. The script also
//! checks that the messages to confirm are in their rooms' histories on that
//! primary and, on a cluster, names the node it ran on: a `WAIT` answered by a
//! promoted replica that never received a message, or by another node than
//! the one that took the barrier (the slot moved), confirms nothing.
//!
//! Callers are served in rounds, one primary at a time (group commit): one
//! round's barriers and `WAIT` are in flight per primary, and callers that
//! come meanwhile join the next round. A lagging replica so costs one
//! replication round trip per round, not per message, and a stopped one
//! holds one `WAIT` per primary, bounded by the wait's timeout.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_core::{MessageId, RoomName};
use fred::clients::Pipeline;
use fred::interfaces::ClusterInterface;
use fred::prelude::*;
use fred::types::config::{Options, Server};
use fred::types::{ClusterHash, CustomCommand, Value};
use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::schema;

/// What waiting for the Redis replicas found (see
/// [`History::replicated`](crate::history::History::replicated)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicated {
    /// As many replicas as the deployment asks for (`REDIS_WAIT_REPLICAS`)
    /// hold everything written to the room so far, or it asks for none.
    Held,
    /// The message is not on the room's primary any more: it was lost with a
    /// primary that failed before any replica received it. Sending it again
    /// stores it anew.
    Lost,
}

/// The operation label of a round in `chat_store_redis_command_seconds`.
const OP: &str = "wait for replicas";

/// Where a round's barriers and `WAIT` go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Primary {
    /// The one primary of a single Redis or of a Sentinel set.
    Only,
    /// The cluster node that serves the rooms' slots, as the client's slot
    /// map has it.
    Node(Server),
}

/// Someone waiting for the replicas to hold `room`'s writes.
struct Waiter {
    room: RoomName,
    message: Option<MessageId>,
    done: oneshot::Sender<Result<Replicated, StoreError>>,
}

/// Waits for Redis replicas on a client of its own, in rounds per primary.
pub(crate) struct ReplicaWait {
    client: Client,
    replicas: u32,
    /// `WAIT`'s own timeout.
    wait: Duration,
    /// The callers of each primary's next round. A primary is here while its
    /// rounds run; the task that runs them removes it when nobody waits.
    rounds: Mutex<HashMap<Primary, Vec<Waiter>>>,
}

impl std::fmt::Debug for ReplicaWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaWait")
            .field("replicas", &self.replicas)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

impl ReplicaWait {
    /// Waits on `client` (used for nothing else) for `replicas` replicas,
    /// each `WAIT` for at most `wait`.
    pub(crate) fn new(client: Client, replicas: u32, wait: Duration) -> Self {
        Self {
            client,
            replicas,
            wait,
            rounds: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves once the replicas hold everything written to `room` so far,
    /// `message` among it; see [`History::replicated`](crate::backend::History::replicated).
    pub(crate) async fn replicated(
        self: &Arc<Self>,
        room: &RoomName,
        message: Option<MessageId>,
    ) -> Result<Replicated, StoreError> {
        let primary = self.primary_of(room).await?;
        let (done, answer) = oneshot::channel();
        let waiter = Waiter {
            room: room.clone(),
            message,
            done,
        };
        let first = match self.lock_rounds().entry(primary.clone()) {
            Entry::Occupied(mut next) => {
                next.get_mut().push(waiter);
                false
            }
            Entry::Vacant(next) => {
                next.insert(vec![waiter]);
                true
            }
        };
        if first {
            tokio::spawn(Arc::clone(self).run_rounds(primary));
        }
        answer
            .await
            .map_err(|_| StoreError::NotReplicated("the round was dropped".into()))?
    }

    fn lock_rounds(&self) -> std::sync::MutexGuard<'_, HashMap<Primary, Vec<Waiter>>> {
        // A poisoned lock only means a panic elsewhere; the map is still whole.
        self.rounds.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn primary_of(&self, room: &RoomName) -> Result<Primary, StoreError> {
        if !self.client.is_clustered() {
            return Ok(Primary::Only);
        }
        if self.client.cached_cluster_state().is_none() {
            let _ = tokio::time::timeout(self.wait, self.client.wait_for_connect()).await;
        }
        let slot = slot_of(room);
        self.client
            .cached_cluster_state()
            .and_then(|state| state.get_server(slot).cloned())
            .map(Primary::Node)
            .ok_or_else(|| StoreError::NotReplicated(format!("no node serves slot {slot} yet")))
    }

    /// Runs `primary`'s rounds until nobody waits for it.
    async fn run_rounds(self: Arc<Self>, primary: Primary) {
        loop {
            let waiters = {
                let mut rounds = self.lock_rounds();
                let Some(next) = rounds.get_mut(&primary) else {
                    return;
                };
                // Callers that gave up (their ack's deadline passed) need no round.
                next.retain(|w| !w.done.is_closed());
                if next.is_empty() {
                    rounds.remove(&primary);
                    return;
                }
                std::mem::take(next)
            };
            self.round(&primary, waiters).await;
        }
    }

    /// One round: a barrier per hash slot, then `WAIT`, in one pipeline on
    /// the connection to `primary`; then every waiter is answered.
    async fn round(&self, primary: &Primary, waiters: Vec<Waiter>) {
        let started = Instant::now();
        let mut slots: BTreeMap<u16, Vec<Waiter>> = BTreeMap::new();
        for waiter in waiters {
            slots.entry(slot_of(&waiter.room)).or_default().push(waiter);
        }
        let outcome = self.barriers_then_wait(primary, &slots).await;
        let label = if outcome.is_ok() { "ok" } else { "error" };
        metrics::histogram!(crate::metrics_names::COMMAND_SECONDS, "operation" => OP, "outcome" => label)
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Err(why) => {
                tracing::debug!(%why, "replicas did not confirm");
                for waiter in slots.into_values().flatten() {
                    let _ = waiter
                        .done
                        .send(Err(StoreError::NotReplicated(why.clone())));
                }
            }
            Ok(barriers) => {
                for (waiters, barrier) in slots.into_values().zip(barriers) {
                    for waiter in waiters {
                        let answer = match &barrier {
                            Err(why) => Err(StoreError::NotReplicated(why.clone())),
                            Ok(missing) => Ok(match waiter.message {
                                Some(id) if missing.contains(&id.to_string()) => Replicated::Lost,
                                _ => Replicated::Held,
                            }),
                        };
                        let _ = waiter.done.send(answer);
                    }
                }
            }
        }
    }

    /// Sends the barriers and `WAIT`. Fails as a whole when too few replicas
    /// answered; otherwise answers, per slot, the ids its barrier did not
    /// find, or why the barrier does not count.
    async fn barriers_then_wait(
        &self,
        primary: &Primary,
        slots: &BTreeMap<u16, Vec<Waiter>>,
    ) -> Result<Vec<Result<Vec<String>, String>>, String> {
        let (options, node_id) = match primary {
            Primary::Only => (Options::default(), None),
            Primary::Node(server) => {
                let id = self.client.cached_cluster_state().and_then(|state| {
                    state
                        .slots()
                        .iter()
                        .find(|range| range.primary == *server)
                        .map(|range| range.id.to_string())
                });
                let Some(id) = id else {
                    return Err(format!("{server} serves no slot any more"));
                };
                let options = Options {
                    cluster_node: Some(server.clone()),
                    ..Default::default()
                };
                (options, Some(id))
            }
        };
        // One pipeline, one connection: the WAIT counts the barriers' writes.
        let pipeline = Pipeline::from(self.client.with_options(&options));
        for (slot, waiters) in slots {
            let eval = CustomCommand::new_static("EVAL", ClusterHash::Custom(*slot), false);
            let args = barrier_args(waiters, node_id.is_some());
            pipeline
                .custom::<(), _>(eval, args)
                .await
                .map_err(|e| e.to_string())?;
        }
        let timeout_ms = i64::try_from(self.wait.as_millis()).unwrap_or(i64::MAX);
        pipeline
            .wait::<()>(i64::from(self.replicas), timeout_ms)
            .await
            .map_err(|e| e.to_string())?;
        let mut replies = pipeline.try_all::<Value>().await;
        match replies.pop() {
            Some(Ok(Value::Integer(acked))) if acked >= i64::from(self.replicas) => {}
            Some(Ok(Value::Integer(acked))) => {
                return Err(format!(
                    "{acked} of {} replicas within {} ms",
                    self.replicas, timeout_ms
                ));
            }
            Some(Ok(other)) => return Err(format!("WAIT answered {other:?}")),
            Some(Err(e)) => return Err(format!("WAIT: {e}")),
            None => return Err("no reply to WAIT".into()),
        }
        Ok(replies
            .into_iter()
            .map(|reply| {
                let reply = reply.map_err(|e| format!("barrier: {e}"))?;
                let (node, missing) = barrier_reply(reply)?;
                match &node_id {
                    Some(id) if *id != node => {
                        Err(format!("the slot is served by node {node} now, not {id}"))
                    }
                    _ => Ok(missing),
                }
            })
            .collect())
    }
}

/// The hash slot of `room`'s keys.
fn slot_of(room: &RoomName) -> u16 {
    fred::util::redis_keyslot(schema::room_channel(room).as_bytes())
}

/// Write a barrier in a hash slot before a `WAIT` on the same connection,
/// and find which messages to confirm are missing (`lua/barrier.lua`); sent
/// with `EVAL`, in one pipeline with the `WAIT`.
const BARRIER: &str = include_str!("../lua/barrier.lua");

/// `EVAL`'s arguments for one slot's barrier: the script, the slot's barrier
/// key and each waiting room's history, then the ids to find in each.
fn barrier_args(waiters: &[Waiter], clustered: bool) -> Vec<Value> {
    let mut rooms: BTreeMap<&RoomName, Vec<String>> = BTreeMap::new();
    for waiter in waiters {
        let ids = rooms.entry(&waiter.room).or_default();
        ids.extend(waiter.message.map(|id| id.to_string()));
    }
    let mut args = Vec::with_capacity(3 + 2 * rooms.len());
    args.push(Value::from(BARRIER));
    args.push(Value::from(rooms.len() as i64 + 1));
    if let Some(first) = rooms.keys().next() {
        args.push(Value::from(schema::room_synced(first)));
    }
    args.extend(
        rooms
            .keys()
            .map(|room| Value::from(schema::room_history(room))),
    );
    args.push(Value::from(if clustered { "1" } else { "0" }));
    args.extend(rooms.values().map(|ids| Value::from(ids.join(" "))));
    args
}

/// The barrier's reply: the node it ran on (`''` outside a cluster) and the
/// ids it did not find.
fn barrier_reply(reply: Value) -> Result<(String, Vec<String>), String> {
    /// What `barrier.lua` returns.
    #[derive(serde::Deserialize)]
    struct Barrier {
        node: String,
        missing: super::reply::LuaList<String>,
    }
    let barrier: Barrier = super::reply::json(OP, reply).map_err(|e| e.to_string())?;
    Ok((barrier.node, barrier.missing.0))
}
