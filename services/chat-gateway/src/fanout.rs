//! The receiving half of the fan-out: one subscription per replica delivers
//! every room's events and every revocation, in publish order, to the
//! registry.

use std::sync::Arc;

use chat_core::{ErrorCode, RoomName};
use chat_store::events::{RoomEvent, RoomEventKind};
use chat_store::{FanoutEvent, Subscription};
use chat_telemetry::trace_context::continue_trace;

use crate::metrics_names as m;
use crate::state::Gateway;

/// Dispatches events until the subscription closes.
pub async fn run(gateway: Arc<Gateway>, mut subscription: Subscription) {
    while let Some(event) = subscription.recv().await {
        match event {
            FanoutEvent::Room(room, event) => {
                metrics::counter!(m::EVENTS_IN).increment(1);
                deliver(&gateway, &room, event);
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

/// Delivers one room event to this replica's connections. A message is
/// delivered inside a span that continues the sender's trace, so one trace
/// shows every replica that delivered it.
fn deliver(gateway: &Gateway, room: &RoomName, event: RoomEvent) {
    let RoomEventKind::Message { id, trace, .. } = &event.kind else {
        gateway.registry.deliver(room, event);
        return;
    };
    let span = tracing::info_span!(
        "deliver message",
        otel.kind = "consumer",
        room = room.as_str(),
        message.id = %id,
        recipients = tracing::field::Empty,
    );
    if let Some(traceparent) = trace {
        continue_trace(&span, traceparent);
    }
    let stored_ms = id.ms;
    let _entered = span.enter();
    let recipients = gateway.registry.deliver(room, event);
    span.record("recipients", recipients);
    metrics::counter!(m::DELIVERIES).increment(recipients as u64);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(stored_ms);
    metrics::histogram!(m::FANOUT_LATENCY).record(now_ms.saturating_sub(stored_ms) as f64 / 1000.0);
}
