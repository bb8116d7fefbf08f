//! [`History`] on Redis: a capped stream per room; storing and publishing a
//! message is one Lua script. Waiting for replicas is [`super::replication`]'s.

use async_trait::async_trait;
use chat_core::events::Change;
use chat_core::{Message, MessageId, RoomName};
use fred::types::Value;
use serde::Deserialize;
use serde::de::IntoDeserializer;

use super::RedisBackend;
use super::reply::{self, LuaList};
use crate::backend::History;
use crate::error::StoreError;
use crate::history::{
    CHANGES_KEPT, ChangeOutcome, HISTORY_KEPT, MessageChange, NewMessage, Replicated,
};
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
        Ok(id)
    }

    async fn replicated(
        &self,
        room: &RoomName,
        message: Option<MessageId>,
    ) -> Result<Replicated, StoreError> {
        match &self.replicas {
            Some(replicas) => replicas.replicated(room, message).await,
            None => Ok(Replicated::Held),
        }
    }

    async fn history_after(
        &self,
        room: &RoomName,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        const OP: &str = "read history after";
        let args = vec![Value::from(after.to_string()), Value::from(limit as i64)];
        let reply = self.run(OP, &scripts::HISTORY_AFTER, room, args).await?;
        Ok(reply::json::<LuaList<Message>>(OP, reply)?.0)
    }

    async fn history_before(
        &self,
        room: &RoomName,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        const OP: &str = "read history";
        let args = vec![Value::from(before.to_string()), Value::from(limit as i64)];
        let reply = self.run(OP, &scripts::HISTORY, room, args).await?;
        Ok(reply::json::<LuaList<Message>>(OP, reply)?.0)
    }

    async fn change(&self, change: MessageChange<'_>) -> Result<ChangeOutcome, StoreError> {
        let (op, script, args): (&'static str, _, _) = match change.text {
            Some(text) => (
                "edit message",
                &scripts::EDIT,
                vec![
                    Value::from(change.id.to_string()),
                    Value::from(change.user_id),
                    Value::from(text.as_str()),
                    Value::from(CHANGES_KEPT as i64),
                ],
            ),
            None => (
                "delete message",
                &scripts::DELETE,
                vec![
                    Value::from(change.id.to_string()),
                    Value::from(change.user_id),
                    Value::from(CHANGES_KEPT as i64),
                ],
            ),
        };
        let outcome = reply::string(op, self.run(op, script, change.room, args).await?)?;
        ChangeOutcome::deserialize(outcome.as_str().into_deserializer())
            .map_err(|e: serde::de::value::Error| StoreError::reply(op, e.to_string()))
    }

    async fn changes_after(
        &self,
        room: &RoomName,
        since: MessageId,
    ) -> Result<Vec<Change>, StoreError> {
        const OP: &str = "read changes";
        let args = vec![Value::from(since.to_string())];
        let reply = self.run(OP, &scripts::CHANGES, room, args).await?;
        Ok(reply::json::<LuaList<Change>>(OP, reply)?.0)
    }
}
