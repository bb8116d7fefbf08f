//! The receiving half of the fan-out: one subscriber per replica listens to
//! every room's channel and to revocations, and hands each event to the
//! registry in the order Redis published it.

use std::sync::Arc;

use chat_core::ErrorCode;
use chat_store::events::RoomEvent;
use chat_store::schema;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use tokio::sync::broadcast::error::RecvError;

use crate::metrics_names as m;
use crate::state::Gateway;

/// Subscribes to the rooms and revocations (restored by fred after every
/// reconnect) and dispatches events until the subscriber closes.
pub async fn run(gateway: Arc<Gateway>, subscriber: SubscriberClient) {
    let mut channels: Vec<String> = gateway
        .config
        .rooms
        .iter()
        .map(schema::room_channel)
        .collect();
    channels.push(schema::REVOCATIONS_CHANNEL.to_owned());
    let mut messages = subscriber.message_rx();
    // `subscribe` is tracked by the client even while Redis is away, and
    // `manage_subscriptions` renews it after every reconnect.
    if let Err(e) = subscriber.subscribe(channels).await {
        tracing::warn!(error = %e, "subscribe failed; it is retried on reconnect");
    }
    loop {
        match messages.recv().await {
            Ok(message) => dispatch(&gateway, &message),
            Err(RecvError::Lagged(n)) => {
                tracing::error!(missed = n, "fan-out receiver lagged; events lost")
            }
            Err(RecvError::Closed) => break,
        }
    }
}

fn dispatch(gateway: &Gateway, message: &fred::types::Message) {
    let Some(payload) = message.value.as_str() else {
        return;
    };
    let channel: &str = &message.channel;
    if channel == schema::REVOCATIONS_CHANNEL {
        for conn in gateway.registry.by_session(&payload) {
            gateway.end(&conn, ErrorCode::TokenRevoked);
        }
        return;
    }
    let Some(room) = schema::room_of_channel(channel).and_then(|r| gateway.config.rooms.find(r))
    else {
        return;
    };
    match RoomEvent::decode(&payload) {
        Ok(event) => {
            metrics::counter!(m::EVENTS_IN).increment(1);
            gateway.registry.deliver(room, event);
        }
        Err(e) => tracing::warn!(error = %e, "undecodable room event"),
    }
}
