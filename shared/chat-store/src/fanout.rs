//! Room events and revocations, delivered to every replica: [`Fanout`],
//! what it delivers, and its two implementations.
//!
//! A replica receives the events of the rooms it follows, and only those:
//! it follows a room while it holds a connection there ([`Fanout::follow`],
//! confirmed before the connection's join takes its snapshot, so the
//! connection misses nothing between the two), and stops after the last one
//! leaves ([`Fanout::unfollow`]). A room nobody on the replica is in costs it
//! no subscription.
//!
//! On Redis, one subscriber per process listens to the followed rooms'
//! sharded channels (`SSUBSCRIBE`) and to the revocations channel. After every
//! reconnect it subscribes again to every room followed then, and tells its
//! consumer (`Resubscribed`), which reads back from history what was
//! published while it was away.
//!
//! On Redis Cluster, a room's channel is served by the shard that owns the
//! room's hash slot. When that slot moves (a failover, a migration), Redis
//! ends the shard subscription with a `sunsubscribe` push that fred drops,
//! so the subscription would be gone without a word. The subscriber therefore
//! re-reads the cluster's slot map every [`SHARD_CHECK_INTERVAL`] and
//! subscribes again (and reports `Resubscribed`) for the followed rooms whose
//! shard changed since they were subscribed; until it has, the subscription
//! does not count as live.

use std::time::Duration;

use async_trait::async_trait;
use chat_core::RoomName;
use fred::prelude::*;

use crate::error::StoreError;
use crate::events::{FanoutEvent, SUBSCRIPTION_CAPACITY, Subscription, decode_room_event};
use crate::memory::MemoryBackend;
use crate::redis::{Followed, RedisBackend};
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
    /// Starts receiving every revocation, and the events of the rooms this
    /// handle follows ([`Fanout::follow`]), in publish order.
    fn subscribe(&self) -> Result<Subscription, StoreError>;
    /// Starts receiving `room`'s events: once this returns, nothing published
    /// to the room is missed (until [`Fanout::unfollow`]).
    async fn follow(&self, room: &RoomName) -> Result<(), StoreError>;
    /// Stops receiving `room`'s events.
    async fn unfollow(&self, room: &RoomName) -> Result<(), StoreError>;
    /// Whether the subscription is live right now.
    fn is_subscribed(&self) -> bool;
}

// On Redis.

/// How often a subscriber on Redis Cluster checks that each room's shard
/// subscription is still where the room's hash slot is.
const SHARD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

impl RedisBackend {
    fn subscriber(&self) -> Result<&SubscriberClient, StoreError> {
        self.subscriber
            .as_ref()
            .ok_or_else(|| StoreError::Config("this backend was built without a subscriber".into()))
    }
}

#[async_trait]
impl Fanout for RedisBackend {
    fn subscribe(&self) -> Result<Subscription, StoreError> {
        let subscriber = self.subscriber()?.clone();
        let followed = self.followed.clone();
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let shards_ok = self.shards_ok.clone();
        tokio::spawn(async move {
            // Tracked by the client even while Redis is away, and renewed
            // below after every reconnect.
            if let Err(e) = subscribe_all(&subscriber, &followed).await {
                tracing::warn!(error = %e, "subscribe failed; it is retried on reconnect");
            }
            let mut shards = ShardWatch {
                subscriber: subscriber.clone(),
                followed: followed.clone(),
                ok: shards_ok,
            };
            let mut check = tokio::time::interval(SHARD_CHECK_INTERVAL);
            loop {
                let event = tokio::select! {
                    reconnected = reconnects.recv() => match reconnected {
                        Err(RecvError::Closed) => break,
                        // Not fred's resubscribe_all: it sends an empty PSUBSCRIBE, which Redis refuses.
                        Ok(_) | Err(RecvError::Lagged(_)) => match subscribe_all(&subscriber, &followed).await {
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
                        Ok(m) => match decode(&m) {
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

    async fn follow(&self, room: &RoomName) -> Result<(), StoreError> {
        let subscriber = self.subscriber()?;
        // Listed first: a resubscription meanwhile subscribes it too.
        lock(&self.followed).entry(room.clone()).or_insert(None);
        let channel = schema::room_channel(room);
        match subscriber.ssubscribe(channel.as_str()).await {
            Ok(()) => {
                let owner = owner_of(subscriber, &channel);
                if let Some(recorded) = lock(&self.followed).get_mut(room) {
                    *recorded = owner;
                }
                Ok(())
            }
            Err(e) => {
                lock(&self.followed).remove(room);
                Err(StoreError::redis("subscribe to a room")(e))
            }
        }
    }

    async fn unfollow(&self, room: &RoomName) -> Result<(), StoreError> {
        let subscriber = self.subscriber()?;
        lock(&self.followed).remove(room);
        subscriber
            .sunsubscribe(schema::room_channel(room))
            .await
            .map_err(StoreError::redis("unsubscribe from a room"))
    }

    fn is_subscribed(&self) -> bool {
        self.subscriber.as_ref().is_some_and(|s| s.is_connected())
            && self.shards_ok.load(Ordering::Relaxed)
    }
}

fn lock(
    followed: &Followed,
) -> std::sync::MutexGuard<'_, std::collections::HashMap<RoomName, Option<Server>>> {
    // A poisoned lock only means a panic elsewhere; the map is still consistent.
    followed.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shard that serves `channel`, by the client's copy of the slot map (on
/// a cluster).
fn owner_of(subscriber: &SubscriberClient, channel: &str) -> Option<Server> {
    let state = subscriber.cached_cluster_state()?;
    state
        .get_server(fred::util::redis_keyslot(channel.as_bytes()))
        .cloned()
}

/// Subscribes to the revocations and to every room followed now.
async fn subscribe_all(
    subscriber: &SubscriberClient,
    followed: &Followed,
) -> Result<(), fred::error::Error> {
    subscriber.subscribe(schema::REVOCATIONS_CHANNEL).await?;
    let rooms: Vec<RoomName> = lock(followed).keys().cloned().collect();
    for room in rooms {
        // One by one: on a cluster each goes to its own shard.
        let channel = schema::room_channel(&room);
        subscriber.ssubscribe(channel.as_str()).await?;
        let owner = owner_of(subscriber, &channel);
        if let Some(recorded) = lock(followed).get_mut(&room) {
            *recorded = owner;
        }
    }
    Ok(())
}

/// Where each followed room's channel was subscribed, checked against the
/// cluster's slot map.
struct ShardWatch {
    subscriber: SubscriberClient,
    followed: Followed,
    ok: Arc<AtomicBool>,
}

impl ShardWatch {
    /// Re-reads the slot map; subscribes again to the channels whose shard
    /// changed. True when it did (events may have been missed).
    async fn moved(&mut self) -> bool {
        if let Err(e) = self.subscriber.sync_cluster().await {
            tracing::warn!(error = %e, "could not read the cluster's slot map");
            self.ok.store(false, Ordering::Relaxed);
            return false;
        }
        let moved: Vec<(RoomName, String, Option<Server>)> = lock(&self.followed)
            .iter()
            .filter_map(|(room, recorded)| {
                let channel = schema::room_channel(room);
                let now = owner_of(&self.subscriber, &channel);
                (now != *recorded).then(|| (room.clone(), channel, now))
            })
            .collect();
        if moved.is_empty() {
            self.ok.store(true, Ordering::Relaxed);
            return false;
        }
        for (room, channel, owner) in moved {
            tracing::info!(%channel, "room's shard moved; subscribing again");
            if let Err(e) = self.subscriber.ssubscribe(channel.as_str()).await {
                tracing::warn!(error = %e, %channel, "shard subscription failed; retried");
                self.ok.store(false, Ordering::Relaxed);
                return false;
            }
            if let Some(recorded) = lock(&self.followed).get_mut(&room) {
                *recorded = owner;
            }
        }
        self.ok.store(true, Ordering::Relaxed);
        true
    }
}

fn decode(message: &fred::types::Message) -> Option<FanoutEvent> {
    let payload = message.value.as_str()?;
    let channel: &str = &message.channel;
    if channel == schema::REVOCATIONS_CHANNEL {
        return Some(FanoutEvent::Revoked(payload.into_owned()));
    }
    let room = RoomName::parse(schema::room_of_channel(channel)?).ok()?;
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
    fn subscribe(&self) -> Result<Subscription, StoreError> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        self.hub
            .lock()
            .subscribers
            .push((self.followed.clone(), tx));
        Ok(rx)
    }

    async fn follow(&self, room: &RoomName) -> Result<(), StoreError> {
        self.followed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(room.clone());
        Ok(())
    }

    async fn unfollow(&self, room: &RoomName) -> Result<(), StoreError> {
        self.followed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(room);
        Ok(())
    }

    fn is_subscribed(&self) -> bool {
        true
    }
}
