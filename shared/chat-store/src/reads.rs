//! Read markers and unread counts: [`Reads`] and its two implementations.
//!
//! On Redis, a message counter and a hash of read markers per room, so an
//! unread count is two reads, whatever the history holds.

use async_trait::async_trait;
use chat_core::{MessageId, RoomName};
use fred::prelude::*;
use fred::types::Value;

use crate::error::StoreError;
use crate::memory::MemoryBackend;
use crate::redis::RedisBackend;
use crate::redis::reply;
use crate::schema;

crate::scripts::script! {
    /// Move a user's read marker forward; answer their unread count.
    READ = "lua/read.lua";
}

use chat_core::events::UNREAD_MAX;

/// Each user's read marker per room, shared by all their devices.
#[async_trait]
pub trait Reads: Send + Sync {
    /// Marks `room` read by `user_id` up to message `id` (never backwards).
    async fn mark_read(
        &self,
        room: &RoomName,
        user_id: &str,
        id: MessageId,
    ) -> Result<(), StoreError>;
    /// How many messages of each of `rooms` came after `user_id`'s read
    /// marker (0 without one, at most [`UNREAD_MAX`]): a few reads per room,
    /// never a scan of the history.
    async fn unread_counts(
        &self,
        rooms: &[RoomName],
        user_id: &str,
    ) -> Result<Vec<(RoomName, u64)>, StoreError>;
}

// On Redis.

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
        reply::integer(OP, self.run(OP, &READ, room, args).await?).map(|_| ())
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

// In memory.

#[async_trait]
impl Reads for MemoryBackend {
    async fn mark_read(
        &self,
        room: &RoomName,
        user_id: &str,
        id: MessageId,
    ) -> Result<(), StoreError> {
        let mut s = self.hub.lock();
        let state = s.rooms.entry(room.clone()).or_default();
        // The count at the first message after `id` that is still there, less
        // one: what Redis reads from that entry (`read.lua`).
        let after = state
            .history
            .entries
            .iter()
            .skip_while(|(m, _, _)| *m <= id || state.history.is_deleted(m))
            .count();
        let marker = state.history.count.saturating_sub(after as u64);
        let old = state
            .reads
            .markers
            .entry(user_id.to_owned())
            .or_insert(marker);
        *old = (*old).max(marker);
        Ok(())
    }

    async fn unread_counts(
        &self,
        rooms: &[RoomName],
        user_id: &str,
    ) -> Result<Vec<(RoomName, u64)>, StoreError> {
        Ok(self.hub.lock().count_per_room(rooms, |room| {
            room.reads.unread_of(user_id, room.history.count)
        }))
    }
}
