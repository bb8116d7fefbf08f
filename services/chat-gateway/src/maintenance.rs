//! The background work that keeps presence true:
//! - the heartbeat, which also notices that Redis lost its data (or that this
//!   replica was swept as dead) and registers the live connections again;
//! - the sweep of dead replicas and of users whose exit grace has passed;
//! - the token-expiry check of live connections;
//! - the disconnection of slow consumers.

use std::sync::Arc;
use std::time::Duration;

use chat_core::ErrorCode;
use chat_core::events::{SESSION_ENDED, SessionEnded};
use chat_store::presence::Connection;
use tokio::sync::mpsc;

use crate::auth::now_s;
use crate::metrics_names as m;
use crate::registry::Conn;
use crate::state::Gateway;

/// Refreshes this replica's heartbeat and heals presence after a data loss.
pub async fn heartbeat(gateway: Arc<Gateway>) {
    let mut epoch: Option<String> = None;
    let mut ticker = tokio::time::interval(gateway.config.heartbeat_interval);
    loop {
        ticker.tick().await;
        // A fresh candidate each time: after a data loss the epoch must change.
        let candidate = uuid::Uuid::new_v4().to_string();
        match gateway
            .backend
            .heartbeat(gateway.config.heartbeat_ttl, &candidate)
            .await
        {
            Ok(beat) => {
                gateway.set_redis_ok(true);
                let lost_data = epoch.as_ref().is_some_and(|e| *e != beat.epoch);
                let swept = epoch.is_some() && !beat.was_alive && !lost_data;
                if lost_data {
                    gateway.registry.reset_positions();
                }
                if lost_data || swept {
                    restore(&gateway, lost_data).await;
                }
                epoch = Some(beat.epoch);
                gateway.retry_failed_leaves().await;
            }
            Err(e) => {
                gateway.set_redis_ok(false);
                tracing::warn!(error = %e, "heartbeat failed");
            }
        }
        metrics::gauge!(m::CONNECTIONS).set(gateway.registry.count() as f64);
    }
}

/// Registers every live connection again: silently when Redis lost its data
/// (nobody saw these users leave), with `user entered` when this replica had
/// been swept as dead (everybody saw them leave).
async fn restore(gateway: &Gateway, silent: bool) {
    let records: Vec<Connection> = gateway
        .registry
        .all()
        .iter()
        .map(|c| c.id.record.clone())
        .collect();
    match gateway.backend.restore(&records, silent).await {
        Ok(n) => {
            metrics::counter!(m::RESTORES).increment(1);
            tracing::info!(connections = n, silent, "presence restored");
        }
        Err(e) => {
            tracing::warn!(error = %e, "presence restore failed; retried at the next heartbeat")
        }
    }
}

/// Sweeps dead replicas and announces due exits. Every replica runs it; each
/// dead replica and each exit is handled by exactly one of them.
pub async fn sweep(gateway: Arc<Gateway>) {
    let mut ticker = tokio::time::interval(gateway.config.sweep_interval);
    loop {
        ticker.tick().await;
        match gateway.backend.sweep(gateway.config.exit_grace, 1000).await {
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
pub async fn expire_tokens(gateway: Arc<Gateway>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let grace = gateway.config.token_expiry_grace.as_secs();
    loop {
        ticker.tick().await;
        let now = now_s();
        for conn in gateway.registry.all() {
            if conn.id.exp().saturating_add(grace) < now {
                gateway
                    .registry
                    .remove(&conn.id.record.room, conn.socket.id);
                gateway.end(&conn, ErrorCode::TokenExpired);
            }
        }
    }
}

/// Disconnects slow consumers. Their buffer is full, so the goodbye may have
/// to wait for room: try for a while; engine.io's heartbeat closes the
/// connection anyway once it cannot queue a ping.
pub async fn drop_slow_consumers(
    gateway: Arc<Gateway>,
    mut slow: mpsc::UnboundedReceiver<Arc<Conn>>,
) {
    while let Some(conn) = slow.recv().await {
        gateway
            .registry
            .remove(&conn.id.record.room, conn.socket.id);
        tracing::info!(sid = %conn.socket.id, "slow consumer dropped");
        metrics::counter!(m::SESSIONS_ENDED, "reason" => ErrorCode::SlowConsumer.as_str())
            .increment(1);
        tokio::spawn(async move {
            let goodbye = SessionEnded {
                reason: ErrorCode::SlowConsumer,
            };
            let mut said = false;
            for _ in 0..100 {
                if !conn.socket.connected() {
                    return;
                }
                said = said || conn.socket.emit(SESSION_ENDED, &goodbye).is_ok();
                if said && conn.socket.clone().disconnect().is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
}
