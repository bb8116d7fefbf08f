//! The receiving half of the fan-out: one subscription per replica delivers
//! every room's events and every revocation, in publish order, to the
//! registry.
//!
//! Pub/sub is at most once: while the subscription is down, events are lost.
//! So after every resubscription the replica reads back from history the
//! messages it missed in each room it holds connections in, asks Redis which
//! of its connections' web sessions were logged out meanwhile, and has the
//! heartbeat check that Redis still holds its presence (a Redis that
//! restarted empty dropped the subscription too).

use std::sync::Arc;
use std::time::Duration;

use chat_core::events::{Change, MessageDeleted, MessageEdited, RoomEvent};
use chat_core::{ErrorCode, RoomName};
use chat_store::events::Published;
use chat_store::{FanoutEvent, Subscription};
use chat_telemetry::trace_context::continue_trace;

use crate::connection::Ending;
use crate::metrics_names as m;
use crate::state::Gateway;

/// How long the revocation check after a resubscription waits between tries
/// while Redis does not answer it.
const RECHECK_RETRY: Duration = Duration::from_secs(2);

/// Dispatches events until the subscription closes or the replica stops.
pub(crate) async fn run(gateway: Arc<Gateway>, mut subscription: Subscription) {
    loop {
        let event = tokio::select! {
            event = subscription.recv() => event,
            _ = gateway.stopping().cancelled() => None,
        };
        let Some(event) = event else { break };
        match event {
            FanoutEvent::Room(room, event) => {
                metrics::counter!(m::EVENTS_IN).increment(1);
                deliver(&gateway, &room, event);
            }
            FanoutEvent::Resubscribed => {
                gateway.request_presence_check();
                read_back_gap(&gateway).await;
                gateway.tasks().spawn(recheck_revocations(gateway.clone()));
            }
            FanoutEvent::AccessLost(room, lost) => gateway.access_lost(&room, &lost),
            FanoutEvent::Revoked(sid) => {
                for handle in gateway.registry().by_session(&sid) {
                    gateway.close(&handle, Ending::Server(ErrorCode::TokenRevoked));
                }
            }
        }
    }
}

/// Logouts and losses of access published while the subscription was down
/// were missed: ask Redis which live sessions were logged out and who lost
/// access to their rooms, retrying until it answers.
async fn recheck_revocations(gateway: Arc<Gateway>) {
    while !gateway.stopping().is_cancelled() {
        let rechecked = async {
            let revoked = gateway.recheck_revocations().await?;
            Ok::<_, chat_store::StoreError>((revoked, gateway.recheck_access().await?))
        };
        match rechecked.await {
            Ok((revoked, removed)) => {
                if revoked + removed > 0 {
                    tracing::info!(
                        sessions = revoked,
                        removed,
                        "logouts or losses of access missed while unsubscribed; connections ended"
                    );
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "revocation check after resubscribing failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(RECHECK_RETRY) => {}
                    _ = gateway.stopping().cancelled() => {}
                }
            }
        }
    }
}

/// After the subscription was lost, delivers the messages each room got
/// meanwhile, read back from history, before any newer live event (which
/// waits in the subscription). Messages already delivered are skipped by the
/// registry, so nothing is lost, doubled or reordered.
async fn read_back_gap(gateway: &Gateway) {
    const PAGE: usize = 100;
    for (room, last) in gateway.registry().rooms() {
        let Some(mut last) = last else {
            continue;
        };
        let room = &room;
        read_back_changes(gateway, room, last).await;
        loop {
            let page = gateway.backend().history_after(room, last, PAGE);
            let page = match tokio::time::timeout(gateway.config().ack_timeout, page).await {
                Ok(Ok(page)) => page,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, %room, "could not read back the gap");
                    break;
                }
                Err(_) => {
                    tracing::warn!(%room, "reading back the gap timed out");
                    break;
                }
            };
            let full = page.len() == PAGE;
            for message in page {
                last = message.id;
                metrics::counter!(m::READ_BACK).increment(1);
                // Unknown position among the room's events: never skipped.
                deliver(
                    gateway,
                    room,
                    read_back(RoomEvent::MessageReceived(message)),
                );
            }
            if !full {
                break;
            }
        }
    }
}

/// Delivers the edits and deletions made meanwhile to messages up to
/// `last`, the newest this replica had delivered (newer ones are read back
/// as they stand now). Delivering one again does no harm.
async fn read_back_changes(gateway: &Gateway, room: &RoomName, last: chat_core::MessageId) {
    let read = gateway.backend().changes_after(room, last);
    let changes = match tokio::time::timeout(gateway.config().ack_timeout, read).await {
        Ok(Ok(changes)) => changes,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, %room, "could not read back the changes");
            return;
        }
        Err(_) => {
            tracing::warn!(%room, "reading back the changes timed out");
            return;
        }
    };
    for change in changes {
        let event = match change {
            Change::Edited {
                id,
                text,
                edited_ts,
            } => RoomEvent::MessageEdited(MessageEdited {
                id,
                room: room.to_string(),
                text,
                edited_ts,
            }),
            Change::Deleted { id, .. } => RoomEvent::MessageDeleted(MessageDeleted {
                id,
                room: room.to_string(),
            }),
        };
        deliver(gateway, room, read_back(event));
    }
}

/// An event read back after a gap: its position among the room's events is
/// unknown, so no connection's snapshot skips it.
fn read_back(event: RoomEvent) -> Published {
    Published {
        seq: u64::MAX,
        trace: None,
        event,
    }
}

/// Delivers one room event to this replica's connections. A message is
/// delivered inside a span that continues the sender's trace, so one trace
/// shows every replica that delivered it.
fn deliver(gateway: &Gateway, room: &RoomName, published: Published) {
    let RoomEvent::MessageReceived(message) = &published.event else {
        let (_, slow) = gateway.registry().deliver(room, &published);
        close_slow(gateway, slow);
        return;
    };
    let span = tracing::info_span!(
        "deliver message",
        otel.kind = "consumer",
        room = room.as_str(),
        message.id = %message.id,
        recipients = tracing::field::Empty,
    );
    if let Some(traceparent) = &published.trace {
        continue_trace(&span, traceparent);
    }
    let stored_ms = message.id.ms;
    let _entered = span.enter();
    let (recipients, slow) = gateway.registry().deliver(room, &published);
    close_slow(gateway, slow);
    span.record("recipients", recipients);
    metrics::counter!(m::DELIVERIES).increment(recipients as u64);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(stored_ms);
    metrics::histogram!(m::FANOUT_LATENCY).record(now_ms.saturating_sub(stored_ms) as f64 / 1000.0);
}

/// Closes the connections a delivery found too slow to keep up.
fn close_slow(gateway: &Gateway, slow: Vec<crate::connection::Connection>) {
    for handle in slow {
        tracing::info!(sid = %handle.socket.id, "slow consumer dropped");
        gateway.close(&handle, Ending::Server(ErrorCode::SlowConsumer));
    }
}
