//! The receiving half of the fan-out: one subscription per replica delivers
//! every room's events and every revocation, in publish order, to the
//! registry.

use std::sync::Arc;

use chat_core::ErrorCode;
use chat_store::{FanoutEvent, Subscription};

use crate::metrics_names as m;
use crate::state::Gateway;

/// Dispatches events until the subscription closes.
pub async fn run(gateway: Arc<Gateway>, mut subscription: Subscription) {
    while let Some(event) = subscription.recv().await {
        match event {
            FanoutEvent::Room(room, event) => {
                metrics::counter!(m::EVENTS_IN).increment(1);
                gateway.registry.deliver(&room, event);
            }
            FanoutEvent::Revoked(sid) => {
                for conn in gateway.registry.by_session(&sid) {
                    gateway
                        .registry
                        .remove(&conn.id.record.room, conn.socket.id);
                    gateway.end(&conn, ErrorCode::TokenRevoked);
                }
            }
        }
    }
}
