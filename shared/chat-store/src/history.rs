//! A room's messages: storing one (and publishing it in the same step) and
//! paging back through the history.

use chat_core::{MessageId, MessageText, RoomName, UserRef};
use fred::types::Value;
use serde_json::value::RawValue;

use crate::error::StoreError;
use crate::rooms::{RoomStore, reply};
use crate::scripts;

/// How many messages each room keeps at least (approximate trimming keeps a few more).
pub const HISTORY_KEPT: u64 = 1000;

/// A message to store.
#[derive(Debug)]
pub struct NewMessage<'a> {
    /// The room.
    pub room: &'a RoomName,
    /// The sender.
    pub user: &'a UserRef,
    /// The checked text.
    pub text: &'a MessageText,
    /// The highest id this replica has seen in the room, so ids keep
    /// increasing even after Redis lost the room's stream.
    pub floor: Option<MessageId>,
    /// W3C trace context to carry to every replica.
    pub trace: Option<&'a str>,
}

impl RoomStore {
    /// Stores a message and publishes it to every replica in one atomic step.
    pub async fn send(&self, message: NewMessage<'_>) -> Result<MessageId, StoreError> {
        const OP: &str = "send message";
        let args = vec![
            Value::from(message.room.as_str()),
            Value::from(message.user.id.as_str()),
            Value::from(message.user.name.as_str()),
            Value::from(message.text.as_str()),
            Value::from(message.floor.map(|f| f.to_string()).unwrap_or_default()),
            Value::from(HISTORY_KEPT as i64),
            Value::from(message.trace.unwrap_or_default()),
        ];
        let id = reply::string(OP, self.run(OP, &scripts::SEND, args).await?)?;
        id.parse()
            .map_err(|e: chat_core::message::BadMessageId| StoreError::reply(OP, e.to_string()))
    }

    /// Up to `limit` messages just before `before`, oldest first.
    pub async fn history_before(
        &self,
        room: &RoomName,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<Box<RawValue>>, StoreError> {
        const OP: &str = "read history";
        let args = vec![
            Value::from(room.as_str()),
            Value::from(before.to_string()),
            Value::from(limit as i64),
        ];
        reply::messages(OP, self.run(OP, &scripts::HISTORY, args).await?)
    }
}
