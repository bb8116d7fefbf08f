//! [`Fanout`] on Redis: one subscriber per process listens to the rooms'
//! channels and the revocations channel. After every reconnect it
//! subscribes again and then tells its consumer (`Resubscribed`), which
//! reads back from history what was published while it was away.

use async_trait::async_trait;
use chat_core::RoomName;
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::RedisBackend;
use crate::backend::{Fanout, FanoutEvent, SUBSCRIPTION_CAPACITY, Subscription};
use crate::error::StoreError;
use crate::events::RoomEvent;
use crate::schema;

#[async_trait]
impl Fanout for RedisBackend {
    fn subscribe(&self, rooms: &[RoomName]) -> Result<Subscription, StoreError> {
        let subscriber = self.subscriber.clone().ok_or_else(|| {
            StoreError::Config("this backend was built without a subscriber".into())
        })?;
        let mut channels: Vec<String> = rooms.iter().map(schema::room_channel).collect();
        channels.push(schema::REVOCATIONS_CHANNEL.to_owned());
        let rooms = rooms.to_vec();
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        tokio::spawn(async move {
            // Tracked by the client even while Redis is away, and renewed
            // below after every reconnect.
            if let Err(e) = subscriber.subscribe(channels).await {
                tracing::warn!(error = %e, "subscribe failed; it is retried on reconnect");
            }
            loop {
                let event = tokio::select! {
                    reconnected = reconnects.recv() => match reconnected {
                        Err(RecvError::Closed) => break,
                        Ok(_) | Err(RecvError::Lagged(_)) => match subscriber.resubscribe_all().await {
                            // From here on nothing is missed: the consumer may read the gap back.
                            Ok(()) => FanoutEvent::Resubscribed,
                            Err(e) => {
                                tracing::warn!(error = %e, "resubscribe failed; retried at the next reconnect");
                                continue;
                            }
                        },
                    },
                    message = messages.recv() => match message {
                        Err(RecvError::Closed) => break,
                        Err(RecvError::Lagged(n)) => {
                            tracing::error!(missed = n, "fan-out receiver lagged; reading the gap back");
                            FanoutEvent::Resubscribed
                        }
                        Ok(m) => match decode(&rooms, &m) {
                            Some(event) => event,
                            None => continue,
                        },
                    },
                };
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        });
        Ok(rx)
    }

    fn is_subscribed(&self) -> bool {
        self.subscriber.as_ref().is_some_and(|s| s.is_connected())
    }
}

fn decode(rooms: &[RoomName], message: &fred::types::Message) -> Option<FanoutEvent> {
    let payload = message.value.as_str()?;
    let channel: &str = &message.channel;
    if channel == schema::REVOCATIONS_CHANNEL {
        return Some(FanoutEvent::Revoked(payload.into_owned()));
    }
    let name = schema::room_of_channel(channel)?;
    let room = rooms.iter().find(|r| r.as_str() == name)?.clone();
    match RoomEvent::decode(&payload) {
        Ok(event) => Some(FanoutEvent::Room(room, event)),
        Err(e) => {
            tracing::warn!(error = %e, "undecodable room event");
            None
        }
    }
}
