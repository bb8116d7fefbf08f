//! A room's messages: [`History`], its types, and its two implementations.
//!
//! On Redis, a capped stream per room; storing and publishing a message is
//! one Lua script, and waiting for replicas is
//! [`crate::redis::replication`]'s. In memory, the same decisions under the
//! hub's lock.

use async_trait::async_trait;
use chat_core::events::{Change, MessageDeleted, MessageEdited, RoomEvent};
use chat_core::{Message, MessageId, MessageText, RoomName, UserRef};
use fred::types::Value;

use crate::error::StoreError;
use crate::memory::{Edit, MemoryBackend, now_ms};
use crate::redis::RedisBackend;
pub use crate::redis::replication::Replicated;
use crate::redis::reply::{self, LuaList};
use crate::rooms::Standing;
use serde::Deserialize;
use serde::de::IntoDeserializer;

crate::scripts::script! {
    /// Store a message and publish it, atomically.
    SEND = "lua/send.lua";
    /// A page of messages before an id.
    HISTORY = "lua/history.lua";
    /// A page of messages after an id.
    HISTORY_AFTER = "lua/history_after.lua";
    /// Edit a message (author only) and publish the edit, atomically.
    EDIT = "lua/edit.lua";
    /// Delete a message (author only) and publish the deletion, atomically.
    DELETE = "lua/delete.lua";
    /// The edits and deletions since an id, of messages up to it.
    CHANGES = "lua/changes.lua";
}

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
    /// Where the sender stands (their token, administrator, a configured room).
    pub standing: Standing,
}

/// What became of a message sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Posted {
    /// Stored and published, with its id.
    Stored(MessageId),
    /// The sender may not post in the room (muted, an announcement room, no
    /// longer allowed in): nothing was stored.
    Forbidden,
}

impl Posted {
    /// The stored message's id, if it was stored.
    pub fn id(self) -> Option<MessageId> {
        match self {
            Self::Stored(id) => Some(id),
            Self::Forbidden => None,
        }
    }
}

/// How many changes (edits, deletions) each room logs at least, for
/// `welcome.changes`.
pub const CHANGES_KEPT: u64 = 1000;

/// What became of an edit or a deletion. The edit and delete scripts return
/// these names (`done`, `not_found`, `forbidden`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOutcome {
    /// Stored and published.
    Done,
    /// No such message in the kept history, or it was deleted.
    NotFound,
    /// The message is someone else's.
    Forbidden,
}

/// An edit or a deletion to store.
#[derive(Debug, Clone, Copy)]
pub struct MessageChange<'a> {
    /// The room.
    pub room: &'a RoomName,
    /// The message.
    pub id: MessageId,
    /// The user asking (the author; to delete, also a moderator).
    pub user_id: &'a str,
    /// The new text, or `None` to delete.
    pub text: Option<&'a MessageText>,
    /// Where the user stands (their token, administrator, a configured room).
    pub standing: Standing,
}

/// Each room's messages.
#[async_trait]
pub trait History: Send + Sync {
    /// Stores a message and publishes it to every subscriber in one atomic step.
    /// It is not yet known to be held by any Redis replica: where the
    /// deployment asks for that, [`History::replicated`] says when it is.
    /// Refused (`Posted::Forbidden`) where the sender may not post, decided
    /// in the same step.
    async fn send(&self, message: NewMessage<'_>) -> Result<Posted, StoreError>;
    /// Waits until as many Redis replicas as the deployment asks for
    /// (`REDIS_WAIT_REPLICAS`) hold everything written to `room` so far, and
    /// `message` (when given) among it; answers at once when it asks for none.
    /// Fails when they do not within the store's wait (the writes stay
    /// stored; asking again waits again). Waiting holds up nothing but its
    /// callers.
    async fn replicated(
        &self,
        room: &RoomName,
        message: Option<MessageId>,
    ) -> Result<Replicated, StoreError>;
    /// Up to `limit` messages just after `after`, oldest first.
    async fn history_after(
        &self,
        room: &RoomName,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;
    /// Up to `limit` messages just before `before`, oldest first.
    async fn history_before(
        &self,
        room: &RoomName,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError>;
    /// Edits (its author) or deletes (its author, or the room's owners and
    /// moderators) a message, storing the change
    /// and publishing it in one atomic step: after the message itself, and
    /// never an edit after the deletion. Like [`History::send`], it does not
    /// wait for Redis replicas.
    async fn change(&self, change: MessageChange<'_>) -> Result<ChangeOutcome, StoreError>;
    /// The edits and deletions made since `since` to messages at or before
    /// it, each message once, as it stands now.
    async fn changes_after(
        &self,
        room: &RoomName,
        since: MessageId,
    ) -> Result<Vec<Change>, StoreError>;
}

// On Redis.

#[async_trait]
impl History for RedisBackend {
    /// Stores a message and publishes it to every replica in one atomic step.
    async fn send(&self, message: NewMessage<'_>) -> Result<Posted, StoreError> {
        const OP: &str = "send message";
        let mut args = vec![
            Value::from(message.user.id.as_str()),
            Value::from(message.user.name.as_str()),
            Value::from(message.text.as_str()),
            Value::from(message.floor.map(|f| f.to_string()).unwrap_or_default()),
            Value::from(HISTORY_KEPT as i64),
            Value::from(message.trace.unwrap_or_default()),
        ];
        args.extend(message.standing.args());
        let id = reply::string(OP, self.run(OP, &SEND, message.room, args).await?)?;
        if id == "forbidden" {
            return Ok(Posted::Forbidden);
        }
        let id = id
            .parse()
            .map_err(|e: chat_core::message::BadMessageId| StoreError::reply(OP, e.to_string()))?;
        Ok(Posted::Stored(id))
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
        let reply = self.run(OP, &HISTORY_AFTER, room, args).await?;
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
        let reply = self.run(OP, &HISTORY, room, args).await?;
        Ok(reply::json::<LuaList<Message>>(OP, reply)?.0)
    }

    async fn change(&self, change: MessageChange<'_>) -> Result<ChangeOutcome, StoreError> {
        let (op, script, args): (&'static str, _, _) = match change.text {
            Some(text) => (
                "edit message",
                &EDIT,
                vec![
                    Value::from(change.id.to_string()),
                    Value::from(change.user_id),
                    Value::from(text.as_str()),
                    Value::from(CHANGES_KEPT as i64),
                ]
                .into_iter()
                .chain(change.standing.args())
                .collect(),
            ),
            None => (
                "delete message",
                &DELETE,
                vec![
                    Value::from(change.id.to_string()),
                    Value::from(change.user_id),
                    Value::from(CHANGES_KEPT as i64),
                ]
                .into_iter()
                .chain(change.standing.args())
                .collect(),
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
        let reply = self.run(OP, &CHANGES, room, args).await?;
        Ok(reply::json::<LuaList<Change>>(OP, reply)?.0)
    }
}

// In memory.

#[async_trait]
impl History for MemoryBackend {
    /// One process holds everything: there are no replicas to wait for.
    async fn replicated(
        &self,
        _room: &RoomName,
        _message: Option<MessageId>,
    ) -> Result<Replicated, StoreError> {
        Ok(Replicated::Held)
    }

    async fn send(&self, message: NewMessage<'_>) -> Result<Posted, StoreError> {
        let mut s = self.hub.lock();
        let room = s.rooms.entry(message.room.clone()).or_default();
        if !room.data.may_post(&message.user.id, message.standing) {
            return Ok(Posted::Forbidden);
        }
        let now = now_ms();
        let mut id = match room.history.last_id {
            Some(last) if last.ms >= now => last.next(),
            _ => MessageId { ms: now, seq: 0 },
        };
        if let Some(floor) = message.floor
            && id <= floor
        {
            id = floor.next();
        }
        room.history.last_id = Some(id);
        room.history.count += 1;
        room.history.entries.push_back((
            id,
            message.user.clone(),
            message.text.as_str().to_owned(),
        ));
        while room.history.entries.len() as u64 > HISTORY_KEPT {
            if let Some((gone, _, _)) = room.history.entries.pop_front() {
                room.history.max_deleted = Some(gone);
            }
        }
        let stored = Message {
            id,
            room: message.room.to_string(),
            user: message.user.clone(),
            text: message.text.as_str().to_owned(),
            ts: id.ms,
            edited_ts: None,
        };
        let trace = message.trace.map(str::to_owned);
        s.publish(message.room, RoomEvent::MessageReceived(stored), trace);
        Ok(Posted::Stored(id))
    }

    async fn history_after(
        &self,
        room: &RoomName,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let s = self.hub.lock();
        let Some(state) = s.rooms.get(room) else {
            return Ok(Vec::new());
        };
        let newer = state
            .history
            .entries
            .iter()
            .filter(|(id, _, _)| *id > after);
        let mut page = state.history.visible(room, newer);
        page.truncate(limit);
        Ok(page)
    }

    async fn history_before(
        &self,
        room: &RoomName,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let s = self.hub.lock();
        let Some(state) = s.rooms.get(room) else {
            return Ok(Vec::new());
        };
        let older = state
            .history
            .entries
            .iter()
            .filter(|(id, _, _)| *id < before);
        let page = state.history.visible(room, older);
        let skip = page.len().saturating_sub(limit);
        Ok(page.into_iter().skip(skip).collect())
    }

    async fn change(&self, change: MessageChange<'_>) -> Result<ChangeOutcome, StoreError> {
        let mut s = self.hub.lock();
        let Some(room) = s.rooms.get_mut(change.room) else {
            return Ok(ChangeOutcome::NotFound);
        };
        let Some((_, author, _)) = room
            .history
            .entries
            .iter()
            .find(|(id, _, _)| *id == change.id)
        else {
            return Ok(ChangeOutcome::NotFound);
        };
        if room.history.is_deleted(&change.id) {
            return Ok(ChangeOutcome::NotFound);
        }
        let allowed = match change.text {
            Some(_) => {
                author.id == change.user_id && room.data.may_post(change.user_id, change.standing)
            }
            None => room
                .data
                .may_delete(change.user_id, &author.id, change.standing),
        };
        if !allowed {
            return Ok(ChangeOutcome::Forbidden);
        }
        if change.text.is_none() && author.id != change.user_id {
            let (author, id) = (author.id.clone(), change.id.to_string());
            room.data.record(
                change.user_id,
                "message_deleted",
                Some(&author),
                serde_json::json!({ "id": id }),
            );
        }
        let now = now_ms();
        let (edit, event) = match change.text {
            Some(text) => (
                Edit::Text(text.as_str().to_owned(), now),
                RoomEvent::MessageEdited(MessageEdited {
                    id: change.id,
                    room: change.room.to_string(),
                    text: text.as_str().to_owned(),
                    edited_ts: now,
                }),
            ),
            None => (
                Edit::Deleted,
                RoomEvent::MessageDeleted(MessageDeleted {
                    id: change.id,
                    room: change.room.to_string(),
                }),
            ),
        };
        room.history.changed.insert(change.id, edit);
        room.history.changes.push_back((now, change.id));
        while room.history.changes.len() as u64 > CHANGES_KEPT {
            if let Some((at, _)) = room.history.changes.pop_front() {
                room.history.changes_trimmed_ms = Some(at);
            }
        }
        if let Some((oldest, _, _)) = room.history.entries.front().cloned() {
            room.history.changed.retain(|id, _| *id >= oldest);
        }
        s.publish(change.room, event, None);
        Ok(ChangeOutcome::Done)
    }

    async fn changes_after(
        &self,
        room: &RoomName,
        since: MessageId,
    ) -> Result<Vec<Change>, StoreError> {
        let s = self.hub.lock();
        Ok(s.rooms
            .get(room)
            .map(|r| r.history.changes_since(since))
            .unwrap_or_default())
    }
}
