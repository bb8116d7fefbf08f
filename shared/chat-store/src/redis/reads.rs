//! [`Reads`] on Redis: a message counter and a hash of read markers per
//! room, so an unread count is two reads, whatever the history holds.

use async_trait::async_trait;
use chat_core::{MessageId, RoomName};
use fred::prelude::*;
use fred::types::Value;

use super::{RedisBackend, reply};
use crate::backend::{Reads, UNREAD_MAX};
use crate::error::StoreError;
use crate::{schema, scripts};

#[async_trait]
impl Reads for RedisBackend {
    async fn mark_read(
        &self,
        room: &RoomName,
        user_id: &str,
        id: MessageId,
    ) -> Result<(), StoreError> {
        const OP: &str = "mark read";
        let args = vec![
            Value::from(user_id),
            Value::from(id.to_string()),
            Value::from(UNREAD_MAX as i64),
        ];
        reply::integer(OP, self.run(OP, &scripts::READ, room, args).await?).map(|_| ())
    }

    async fn unread_counts(
        &self,
        rooms: &[RoomName],
        user_id: &str,
    ) -> Result<Vec<(RoomName, u64)>, StoreError> {
        const OP: &str = "read unread counts";
        let pipeline = self.client.pipeline();
        for room in rooms {
            pipeline
                .hget::<(), _, _>(schema::room_reads(room), user_id)
                .await
                .map_err(StoreError::redis(OP))?;
            pipeline
                .get::<(), _>(schema::room_count(room))
                .await
                .map_err(StoreError::redis(OP))?;
        }
        let values: Vec<Option<i64>> = pipeline.all().await.map_err(StoreError::redis(OP))?;
        if values.len() != rooms.len() * 2 {
            return Err(StoreError::reply(OP, "a short reply"));
        }
        Ok(rooms
            .iter()
            .zip(values.chunks(2))
            .map(|(room, pair)| {
                let unread = match (pair[0], pair[1]) {
                    (Some(marker), count) => count.unwrap_or(0).saturating_sub(marker),
                    (None, _) => 0,
                };
                (
                    room.clone(),
                    u64::try_from(unread).unwrap_or(0).min(UNREAD_MAX),
                )
            })
            .collect())
    }
}
