//! Room events and revocations, delivered to every replica: [`Fanout`],
//! what it delivers, and its two implementations.
//!
//! On Redis, one subscriber per process listens to the rooms'
//! sharded channels (`SSUBSCRIBE`) and the revocations channel. After every
//! reconnect it subscribes again and then tells its consumer
//! (`Resubscribed`), which reads back from history what was published while
//! it was away.
//!
//! On Redis Cluster, a room's channel is served by the shard that owns the
//! room's hash slot. When that slot moves (a failover, a migration), Redis
//! ends the shard subscription with a `sunsubscribe` push that fred drops,
//! so the subscription would be gone without a word. The subscriber therefore
//! re-reads the cluster's slot map every [`SHARD_CHECK_INTERVAL`] and
//! subscribes again (and reports `Resubscribed`) for the rooms whose shard
//! changed; until it has, the subscription does not count as live.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chat_core::RoomName;
use fred::prelude::*;

use crate::error::StoreError;
use crate::events::{FanoutEvent, SUBSCRIPTION_CAPACITY, Subscription, decode_room_event};
use crate::memory::MemoryBackend;
use crate::redis::RedisBackend;
use crate::schema;
use fred::clients::SubscriberClient;
use fred::types::config::Server;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// Delivery of room events and revocations to every replica.
#[async_trait]
pub trait Fanout: Send + Sync {
    /// Starts receiving the events of `rooms` and every revocation.
    fn subscribe(&self, rooms: &[RoomName]) -> Result<Subscription, StoreError>;
    /// Whether the subscription is live right now.
    fn is_subscribed(&self) -> bool;
}

// On Redis.

/// How often a subscriber on Redis Cluster checks that each room's shard
/// subscription is still where the room's hash slot is.
const SHARD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

#[async_trait]
impl Fanout for RedisBackend {
    fn subscribe(&self, rooms: &[RoomName]) -> Result<Subscription, StoreError> {
        let subscriber = self.subscriber.clone().ok_or_else(|| {
            StoreError::Config("this backend was built without a subscriber".into())
        })?;
        let channels: Vec<String> = rooms.iter().map(schema::room_channel).collect();
        let rooms = rooms.to_vec();
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let shards_ok = self.shards_ok.clone();
        tokio::spawn(async move {
            // Tracked by the client even while Redis is away, and renewed
            // below after every reconnect.
            if let Err(e) = subscribe_all(&subscriber, &channels).await {
                tracing::warn!(error = %e, "subscribe failed; it is retried on reconnect");
            }
            let mut shards = ShardWatch::new(&subscriber, &channels, shards_ok);
            let mut check = tokio::time::interval(SHARD_CHECK_INTERVAL);
            loop {
                let event = tokio::select! {
                    reconnected = reconnects.recv() => match reconnected {
                        Err(RecvError::Closed) => break,
                        // Not fred's resubscribe_all: it sends an empty PSUBSCRIBE, which Redis refuses.
                        Ok(_) | Err(RecvError::Lagged(_)) => match subscribe_all(&subscriber, &channels).await {
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
                    _ = check.tick(), if subscriber.is_clustered() => {
                        if shards.moved().await {
                            FanoutEvent::Resubscribed
                        } else {
                            continue;
                        }
                    }
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
            && self.shards_ok.load(Ordering::Relaxed)
    }
}

async fn subscribe_all(
    subscriber: &SubscriberClient,
    channels: &[String],
) -> Result<(), fred::error::Error> {
    subscriber.subscribe(schema::REVOCATIONS_CHANNEL).await?;
    for channel in channels {
        // One by one: on a cluster each goes to its own shard.
        subscriber.ssubscribe(channel.as_str()).await?;
    }
    Ok(())
}

/// Where each room's channel was subscribed, on a cluster.
struct ShardWatch {
    subscriber: SubscriberClient,
    channels: Vec<String>,
    owners: HashMap<String, Server>,
    ok: Arc<AtomicBool>,
}

impl ShardWatch {
    fn new(subscriber: &SubscriberClient, channels: &[String], ok: Arc<AtomicBool>) -> Self {
        let mut watch = Self {
            subscriber: subscriber.clone(),
            channels: channels.to_vec(),
            owners: HashMap::new(),
            ok,
        };
        watch.owners = watch.current_owners();
        watch
    }

    fn current_owners(&self) -> HashMap<String, Server> {
        let Some(state) = self.subscriber.cached_cluster_state() else {
            return HashMap::new();
        };
        self.channels
            .iter()
            .filter_map(|c| {
                let slot = fred::util::redis_keyslot(c.as_bytes());
                state.get_server(slot).map(|s| (c.clone(), s.clone()))
            })
            .collect()
    }

    /// Re-reads the slot map; subscribes again to the channels whose shard
    /// changed. True when it did (events may have been missed).
    async fn moved(&mut self) -> bool {
        if let Err(e) = self.subscriber.sync_cluster().await {
            tracing::warn!(error = %e, "could not read the cluster's slot map");
            self.ok.store(false, Ordering::Relaxed);
            return false;
        }
        let now = self.current_owners();
        let moved: Vec<&String> = self
            .channels
            .iter()
            .filter(|c| now.get(*c) != self.owners.get(*c))
            .collect();
        if moved.is_empty() {
            self.ok.store(true, Ordering::Relaxed);
            return false;
        }
        for channel in &moved {
            tracing::info!(%channel, "room's shard moved; subscribing again");
            if let Err(e) = self.subscriber.ssubscribe(channel.as_str()).await {
                tracing::warn!(error = %e, %channel, "shard subscription failed; retried");
                self.ok.store(false, Ordering::Relaxed);
                return false;
            }
        }
        self.owners = now;
        self.ok.store(true, Ordering::Relaxed);
        true
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
    match decode_room_event(room, &payload) {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::warn!(error = %e, "undecodable room event");
            None
        }
    }
}

// In memory.

#[async_trait]
impl Fanout for MemoryBackend {
    fn subscribe(&self, rooms: &[RoomName]) -> Result<Subscription, StoreError> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        self.hub.lock().subscribers.push((rooms.to_vec(), tx));
        Ok(rx)
    }

    fn is_subscribed(&self) -> bool {
        true
    }
}
