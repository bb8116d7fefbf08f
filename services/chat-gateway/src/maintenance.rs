//! The background work that keeps presence true:
//! - the heartbeat: this replica's one liveness signal, whatever the number
//!   of its rooms; it also notices that Redis lost its data (or that this
//!   replica was taken as dead) and registers the live connections again,
//!   and, after a resubscription, checks room by room that Redis still holds
//!   them;
//! - the sweep of dead replicas (only the rooms each one listed) and the
//!   announcement of the exits this replica owes;
//! - the token-expiry check of live connections;
//! - the end of handshakes that never completed;
//! - the scheduled re-fetch of the JWKS, so a removed key stops being trusted.
//!
//! Also, while replicas of the release before may run (docs/UPGRADES.md),
//! its per-room heartbeat and sweep in the configured rooms.
//!
//! Each runs until the replica starts to stop (`Gateway::stopping`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::{ErrorCode, RoomName};
use chat_store::presence::{self, Liveness, Restore};
use futures_util::future::join_all;
use tokio::time::Interval;

use crate::auth::now_s;
use crate::connection::{Ending, State};
use crate::metrics_names as m;
use crate::state::Gateway;

/// How many rooms' scripts the replica has Redis run at once when it
/// registers its connections again, or announces exits.
const ROOMS_AT_ONCE: usize = 8;

/// Most `user exited` one room announces at a time.
const EXITS_AT_ONCE: u64 = 1000;

/// Waits for the next tick; false once the replica is stopping.
async fn tick(gateway: &Gateway, ticker: &mut Interval) -> bool {
    tokio::select! {
        _ = ticker.tick() => true,
        _ = gateway.stopping().cancelled() => false,
    }
}

/// Renews this replica's liveness, and heals its presence when Redis lost
/// it: everywhere after a heartbeat finds no trace of the replica (Redis
/// restarted empty), under a new node id after it was taken as dead, and
/// room by room after a resubscription (on a cluster, one shard can lose
/// its data alone: its subscriber connection drops too).
pub(crate) async fn heartbeat(gateway: Arc<Gateway>) {
    let configured: Vec<RoomName> = gateway.config().rooms.iter().cloned().collect();
    let mut epochs: HashMap<RoomName, String> = HashMap::new();
    let mut beaten = false;
    // Presence to register again, once Redis answers.
    let mut heal: Option<Heal> = None;
    // Whether the last heartbeat found fewer rooms listed than followed.
    let mut short = false;
    let mut ticker = tokio::time::interval(gateway.config().heartbeat_interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = gateway.presence_check_requested() => {}
            _ = gateway.stopping().cancelled() => break,
        }
        // Read before the heartbeat: every room followed then is listed by then.
        let followed = gateway.following().followed() as u64;
        let node_ok = match gateway
            .backend()
            .heartbeat(gateway.config().heartbeat_ttl)
            .await
        {
            Ok(beat) => {
                match beat.liveness {
                    Liveness::Alive => {}
                    Liveness::New if beaten => {
                        tracing::warn!(
                            "Redis holds no trace of this replica: it lost its data; presence is registered again"
                        );
                        heal = Some(Heal::Lost);
                    }
                    Liveness::New => {}
                    Liveness::Replaced { previous } => heal = Some(Heal::Replaced(previous)),
                }
                beaten = true;
                gateway.set_registered();
                // Twice in a row, so that a room let go meanwhile is not taken
                // for a loss.
                let was_short =
                    std::mem::replace(&mut short, beat.rooms_tracked.is_some_and(|n| n < followed));
                if short && was_short && heal.is_none() {
                    tracing::warn!("Redis lost this replica's list of rooms; listing them again");
                    heal = Some(Heal::Untracked);
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed");
                false
            }
        };
        if node_ok && let Some(how) = heal.take() {
            heal = how.run(&gateway).await.err();
        }
        let configured_ok = heartbeat_configured(&gateway, &configured, &mut epochs).await;
        if node_ok && gateway.take_presence_check() && !check_presence(&gateway).await {
            gateway.request_presence_check();
        }
        gateway.set_redis_ok(node_ok && configured_ok);
        if node_ok {
            gateway.retry_failed_leaves().await;
        }
        metrics::gauge!(m::CONNECTIONS).set(gateway.registry().count() as f64);
    }
}

/// What the heartbeat found lost, to register again.
enum Heal {
    /// Redis lost this replica's presence (and its data): silently.
    Lost,
    /// This replica was taken as dead: under its new id, taking over what
    /// the previous one holds.
    Replaced(String),
    /// Only its list of rooms.
    Untracked,
}

impl Heal {
    /// Lists every room held again, and registers the connections again;
    /// gives itself back when something failed (to try again).
    async fn run(self, gateway: &Gateway) -> Result<(), Self> {
        if let Err(e) = gateway.backend().track(&gateway.following().rooms()).await {
            tracing::warn!(error = %e, "could not list this replica's rooms again; retried");
            return Err(self);
        }
        let how = match &self {
            Self::Untracked => return Ok(()),
            Self::Lost => Restore::Silently,
            Self::Replaced(previous) => Restore::TakingOver(previous),
        };
        if restore_every_room(gateway, how).await {
            Ok(())
        } else {
            Err(self)
        }
    }
}

/// After a resubscription: registers again, silently, the connections Redis
/// no longer holds (it restarted empty, or the room's shard did). True when
/// every room answered.
async fn check_presence(gateway: &Gateway) -> bool {
    restore_every_room(gateway, Restore::Silently).await
}

/// Registers again every room's connections, a few rooms at a time. True
/// when every room answered.
async fn restore_every_room(gateway: &Gateway, how: Restore<'_>) -> bool {
    let rooms: Vec<RoomName> = gateway
        .registry()
        .rooms()
        .into_iter()
        .map(|(room, _)| room)
        .collect();
    let mut all_ok = true;
    for some in rooms.chunks(ROOMS_AT_ONCE) {
        let done = join_all(some.iter().map(|room| restore(gateway, room, how))).await;
        all_ok &= done.into_iter().all(|ok| ok);
    }
    all_ok
}

/// Registers the room's live connections again: silently when Redis lost
/// its data (nobody saw these users leave; the room's event counter starts
/// again), with `user entered` when this replica had been swept as dead
/// (everybody saw them leave). True when Redis answered.
async fn restore(gateway: &Gateway, room: &RoomName, how: Restore<'_>) -> bool {
    let records: Vec<presence::Connection> = gateway
        .registry()
        .in_room(room)
        .iter()
        .map(|c| c.conn.record_in(room))
        .collect();
    match gateway.backend().restore(room, &records, how).await {
        Ok(n) => {
            if n > 0 {
                if how == Restore::Silently {
                    gateway.registry().reset_positions(room);
                }
                metrics::counter!(m::RESTORES).increment(1);
                tracing::info!(connections = n, ?how, %room, "presence restored");
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, %room, "presence restore failed; retried at the next heartbeat");
            false
        }
    }
}

/// The release before's heartbeat in each configured room, and what it
/// learns: a room whose data epoch changed lost its data; a room this
/// replica's heartbeat is gone from swept it as dead. True when every room
/// answered.
async fn heartbeat_configured(
    gateway: &Gateway,
    rooms: &[RoomName],
    epochs: &mut HashMap<RoomName, String>,
) -> bool {
    // A fresh candidate each time: after a data loss the epoch must change.
    let candidate = uuid::Uuid::new_v4().to_string();
    let beats = gateway
        .backend()
        .legacy_heartbeat(rooms, gateway.config().heartbeat_ttl, &candidate)
        .await;
    let mut all_ok = true;
    for (room, beat) in beats {
        match beat {
            Ok(beat) => {
                let known = epochs.get(&room);
                let lost_data = known.is_some_and(|e| *e != beat.epoch);
                let swept = known.is_some() && !beat.was_alive && !lost_data;
                if lost_data || swept {
                    let how = if lost_data {
                        Restore::Silently
                    } else {
                        Restore::Announced
                    };
                    restore(gateway, &room, how).await;
                }
                epochs.insert(room, beat.epoch);
            }
            Err(e) => {
                all_ok = false;
                tracing::warn!(error = %e, %room, "heartbeat failed");
            }
        }
    }
    all_ok
}

/// Sweeps dead replicas, and announces the exits this replica owes. Every
/// replica runs it; each dead replica and each exit is handled once.
pub(crate) async fn sweep(gateway: Arc<Gateway>) {
    let configured: Vec<RoomName> = gateway.config().rooms.iter().cloned().collect();
    let grace = gateway.config().exit_grace;
    let mut ticker = tokio::time::interval(gateway.config().sweep_interval);
    while tick(&gateway, &mut ticker).await {
        match gateway.backend().sweep_dead(grace).await {
            Ok(swept) => {
                if swept.nodes > 0 {
                    tracing::info!(
                        nodes = swept.nodes,
                        rooms = swept.rooms,
                        connections = swept.connections_removed,
                        "dead replicas swept"
                    );
                }
                metrics::counter!(m::SWEEP_CONNECTIONS).increment(swept.connections_removed);
                for (room, at) in swept.exits {
                    gateway.exits().owe(gateway.following(), &room, at).await;
                }
            }
            Err(e) => tracing::debug!(error = %e, "sweep failed"),
        }
        match gateway
            .backend()
            .legacy_sweep(&configured, grace, EXITS_AT_ONCE)
            .await
        {
            Ok(s) => {
                metrics::counter!(m::SWEEP_CONNECTIONS).increment(s.connections_removed);
                metrics::counter!(m::SWEEP_EXITS).increment(s.users_exited);
            }
            Err(e) => tracing::debug!(error = %e, "sweep of the configured rooms failed"),
        }
        announce_exits(&gateway).await;
        gateway.trim_rate_limiter();
    }
}

/// Announces the exits due in the rooms this replica owes exits in, a few
/// rooms at a time; lets go of a room once none is left to come.
async fn announce_exits(gateway: &Gateway) {
    let due = gateway.exits().due_now();
    for some in due.chunks(ROOMS_AT_ONCE) {
        let announced = join_all(some.iter().map(|room| async move {
            (
                room,
                gateway.backend().announce_exits(room, EXITS_AT_ONCE).await,
            )
        }))
        .await;
        for (room, result) in announced {
            match result {
                Ok(exits) => {
                    metrics::counter!(m::SWEEP_EXITS).increment(exits.users_exited);
                    if gateway.exits().announced(room, exits.next) {
                        gateway.following().release(room).await;
                    }
                }
                Err(e) => tracing::debug!(error = %e, %room, "announcing exits failed; retried"),
            }
        }
    }
}

/// Ends connections whose token expired more than the grace ago.
pub(crate) async fn expire_tokens(gateway: Arc<Gateway>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while tick(&gateway, &mut ticker).await {
        let now = now_s();
        for handle in gateway.registry().all() {
            if gateway.expired(&handle.conn, now) {
                gateway.close(&handle, Ending::Server(ErrorCode::TokenExpired));
            }
        }
    }
}

/// Ends handshakes that passed but never completed: when the client goes
/// away before the CONNECT reply reaches it, no connect or disconnect handler
/// ever runs, so a connection still pending a connect timeout after it was
/// admitted is closed and its presence released. One loop for the replica,
/// not a timer per connection.
pub(crate) async fn end_stalled_handshakes(gateway: Arc<Gateway>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while tick(&gateway, &mut ticker).await {
        let Some(admitted_before) = Instant::now().checked_sub(gateway.config().connect_timeout)
        else {
            continue;
        };
        for handle in gateway.registry().pending_since(admitted_before) {
            if handle.conn.state() == State::Pending {
                tracing::info!(sid = %handle.socket.id, "handshake never completed; presence released");
                gateway.close(&handle, Ending::NeverConnected);
            }
        }
    }
}

/// Fetches the JWKS again every `JWKS_REFRESH_S` (when keys come from one),
/// so a key that chat-web stopped publishing stops being trusted.
pub(crate) async fn refresh_keys(gateway: Arc<Gateway>) {
    if !gateway.keys().from_jwks() {
        return;
    }
    let mut ticker = tokio::time::interval(gateway.config().jwks_refresh);
    ticker.tick().await;
    while tick(&gateway, &mut ticker).await {
        if let Err(e) = gateway.keys().refresh().await {
            tracing::warn!(error = %e, "scheduled JWKS refresh failed; the keys in use stay");
        }
    }
}
