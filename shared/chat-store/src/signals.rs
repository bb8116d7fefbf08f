//! Signals published to a room but never stored: [`Signals`] and its two
//! implementations. On Redis, one script per signal, in the room's slot.

use std::time::Duration;

use async_trait::async_trait;
use chat_core::events::RoomEvent;
use chat_core::{RoomName, UserRef};
use fred::types::Value;

use crate::error::StoreError;
use crate::memory::{MemoryBackend, millis, now_ms};
use crate::redis::RedisBackend;
use crate::redis::reply;
use crate::schema;

/// `chat:room:{R}:typing:{user}` (a string): set for the throttle's time
/// after the user's `user typing` was published.
fn typing_key(room: &RoomName, uid: &str) -> String {
    schema::room_key(room, &format!("typing:{uid}"))
}

crate::scripts::script! {
    /// Publish `typing` unless the user's throttle key is set (SET NX PX).
    TYPING = "lua/typing.lua";
}

/// Signals that are published to the room but never stored.
#[async_trait]
pub trait Signals: Send + Sync {
    /// Publishes `user typing` for `user` in `room` unless one was published
    /// for them there within `throttle` (by any replica). Returns whether it
    /// was published.
    async fn typing(
        &self,
        room: &RoomName,
        user: &UserRef,
        throttle: Duration,
    ) -> Result<bool, StoreError>;
}

// On Redis.

#[async_trait]
impl Signals for RedisBackend {
    async fn typing(
        &self,
        room: &RoomName,
        user: &UserRef,
        throttle: Duration,
    ) -> Result<bool, StoreError> {
        const OP: &str = "typing";
        let throttle_ms = i64::try_from(throttle.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
        let keys = vec![typing_key(room, &user.id)];
        let args = vec![
            Value::from(user.id.as_str()),
            Value::from(user.name.as_str()),
            Value::from(throttle_ms),
        ];
        let published = self.run_with_keys(OP, &TYPING, room, keys, args).await?;
        Ok(reply::integer(OP, published)? == 1)
    }
}

// In memory.

#[async_trait]
impl Signals for MemoryBackend {
    async fn typing(
        &self,
        room: &RoomName,
        user: &UserRef,
        throttle: Duration,
    ) -> Result<bool, StoreError> {
        let mut s = self.hub.lock();
        let now = now_ms();
        let state = s.rooms.entry(room.clone()).or_default();
        state.signals.typing.retain(|_, until| *until > now);
        if state.signals.typing.contains_key(&user.id) {
            return Ok(false);
        }
        state
            .signals
            .typing
            .insert(user.id.clone(), now.saturating_add(millis(throttle)));
        s.publish(room, RoomEvent::UserTyping(user.clone()), None);
        Ok(true)
    }
}
