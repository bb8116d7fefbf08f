//! [`Signals`] on Redis: one script per signal, in the room's slot.

use std::time::Duration;

use async_trait::async_trait;
use chat_core::{RoomName, UserRef};
use fred::types::Value;

use super::{RedisBackend, reply};
use crate::backend::Signals;
use crate::error::StoreError;
use crate::{schema, scripts};

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
        let keys = vec![schema::room_typing(room, &user.id)];
        let args = vec![
            Value::from(user.id.as_str()),
            Value::from(user.name.as_str()),
            Value::from(throttle_ms),
        ];
        let published = self
            .run_with_keys(OP, &scripts::TYPING, room, keys, args)
            .await?;
        Ok(reply::integer(OP, published)? == 1)
    }
}
