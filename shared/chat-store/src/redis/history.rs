//! [`History`] on Redis: a capped stream per room; storing and publishing a
//! message is one Lua script.

use async_trait::async_trait;
use chat_core::{MessageId, RoomName};
use fred::types::Value;
use serde_json::value::RawValue;

use super::{RedisBackend, reply};
use crate::backend::History;
use crate::error::StoreError;
use crate::history::{HISTORY_KEPT, NewMessage};
use crate::scripts;

#[async_trait]
impl History for RedisBackend {
    /// Stores a message and publishes it to every replica in one atomic step.
    async fn send(&self, message: NewMessage<'_>) -> Result<MessageId, StoreError> {
        const OP: &str = "send message";
        let args = vec![
            Value::from(message.user.id.as_str()),
            Value::from(message.user.name.as_str()),
            Value::from(message.text.as_str()),
            Value::from(message.floor.map(|f| f.to_string()).unwrap_or_default()),
            Value::from(HISTORY_KEPT as i64),
            Value::from(message.trace.unwrap_or_default()),
        ];
        let id = reply::string(OP, self.run(OP, &scripts::SEND, message.room, args).await?)?;
        let id = id
            .parse()
            .map_err(|e: chat_core::message::BadMessageId| StoreError::reply(OP, e.to_string()))?;
        self.wait_for_replicas(message.room).await?;
        Ok(id)
    }

    async fn history_after(
        &self,
        room: &RoomName,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<(MessageId, Box<RawValue>)>, StoreError> {
        const OP: &str = "read history after";
        let args = vec![Value::from(after.to_string()), Value::from(limit as i64)];
        let reply = self.run(OP, &scripts::HISTORY_AFTER, room, args).await?;
        let messages = reply::messages(OP, reply)?;
        messages
            .into_iter()
            .map(|m| {
                Ok((
                    crate::events::message_id(&m).map_err(|e| StoreError::reply(OP, e))?,
                    m,
                ))
            })
            .collect()
    }

    async fn history_before(
        &self,
        room: &RoomName,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<Box<RawValue>>, StoreError> {
        const OP: &str = "read history";
        let args = vec![Value::from(before.to_string()), Value::from(limit as i64)];
        reply::messages(OP, self.run(OP, &scripts::HISTORY, room, args).await?)
    }
}
