//! The background work that keeps presence true:
//! - the heartbeat, which also notices that Redis lost its data (or that this
//!   replica was swept as dead) and registers the live connections again;
//! - the sweep of dead replicas and of users whose exit grace has passed;
//! - the token-expiry check of live connections;
//! - the end of handshakes that never completed;
//! - the scheduled re-fetch of the JWKS, so a removed key stops being trusted.
//!
//! Each runs until the replica starts to stop (`Gateway::stopping`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chat_core::{ErrorCode, RoomName};
use chat_store::presence;
use tokio::time::Interval;

use crate::auth::now_s;
use crate::connection::{Ending, State};
use crate::metrics_names as m;
use crate::state::Gateway;

/// Waits for the next tick; false once the replica is stopping.
async fn tick(gateway: &Gateway, ticker: &mut Interval) -> bool {
    tokio::select! {
        _ = ticker.tick() => true,
        _ = gateway.stopping().cancelled() => false,
    }
}

/// Refreshes this replica's heartbeat in every room and heals presence after
/// a data loss, room by room (on a cluster each room's shard can lose its
/// data, or be unreachable long enough for this replica to be swept, alone).
pub(crate) async fn heartbeat(gateway: Arc<Gateway>) {
    let rooms: Vec<RoomName> = gateway.config().rooms.iter().cloned().collect();
    let mut epochs: HashMap<RoomName, String> = HashMap::new();
    let mut ticker = tokio::time::interval(gateway.config().heartbeat_interval);
    while tick(&gateway, &mut ticker).await {
        // A fresh candidate each time: after a data loss the epoch must change.
        let candidate = uuid::Uuid::new_v4().to_string();
        let beats = gateway
            .backend()
            .heartbeat(&rooms, gateway.config().heartbeat_ttl, &candidate)
            .await;
        let mut all_ok = true;
        for (room, beat) in beats {
            match beat {
                Ok(beat) => {
                    let known = epochs.get(&room);
                    let lost_data = known.is_some_and(|e| *e != beat.epoch);
                    let swept = known.is_some() && !beat.was_alive && !lost_data;
                    if lost_data {
                        gateway.registry().reset_positions(&room);
                    }
                    if lost_data || swept {
                        restore(&gateway, &room, lost_data).await;
                    }
                    epochs.insert(room, beat.epoch);
                }
                Err(e) => {
                    all_ok = false;
                    tracing::warn!(error = %e, %room, "heartbeat failed");
                }
            }
        }
        gateway.set_redis_ok(all_ok);
        if all_ok {
            gateway.retry_failed_leaves().await;
        }
        metrics::gauge!(m::CONNECTIONS).set(gateway.registry().count() as f64);
    }
}

/// Registers the room's live connections again: silently when Redis lost
/// its data (nobody saw these users leave), with `user entered` when this
/// replica had been swept as dead (everybody saw them leave).
async fn restore(gateway: &Gateway, room: &RoomName, silent: bool) {
    let records: Vec<presence::Connection> = gateway
        .registry()
        .all()
        .iter()
        .filter(|c| c.conn.follows(room))
        .map(|c| c.conn.record_in(room))
        .collect();
    match gateway.backend().restore(&records, silent).await {
        Ok(n) => {
            metrics::counter!(m::RESTORES).increment(1);
            tracing::info!(connections = n, silent, %room, "presence restored");
        }
        Err(e) => {
            tracing::warn!(error = %e, %room, "presence restore failed; retried at the next heartbeat")
        }
    }
}

/// Sweeps dead replicas and announces due exits. Every replica runs it; each
/// dead replica and each exit is handled by exactly one of them.
pub(crate) async fn sweep(gateway: Arc<Gateway>) {
    let rooms: Vec<RoomName> = gateway.config().rooms.iter().cloned().collect();
    let mut ticker = tokio::time::interval(gateway.config().sweep_interval);
    while tick(&gateway, &mut ticker).await {
        match gateway
            .backend()
            .sweep(&rooms, gateway.config().exit_grace, 1000)
            .await
        {
            Ok(s) => {
                metrics::counter!(m::SWEEP_CONNECTIONS).increment(s.connections_removed);
                metrics::counter!(m::SWEEP_EXITS).increment(s.users_exited);
            }
            Err(e) => tracing::debug!(error = %e, "sweep failed"),
        }
        gateway.trim_rate_limiter();
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
