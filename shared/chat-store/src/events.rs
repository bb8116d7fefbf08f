//! The events every replica receives on a room's channel.
//!
//! The Lua scripts publish them as JSON: `{seq, kind, ...}`. `seq` counts the
//! room's events, so a connection that is joining can tell which events its
//! snapshot already holds. A message event carries the message in the
//! contract's shape under `message`, made by the one function that makes it
//! (`message_json` in `lua/prelude.lua`), so a replica forwards those bytes
//! to its clients as they are:
//! `{"seq":7,"kind":"message","id":"5-1","tp":"00-…","message":{…}}`, and
//! `{"seq":8,"kind":"entered","user":{"id":…,"name":…}}`.

use chat_core::{MessageId, UserRef};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::StoreError;

/// One event published to a room.
#[derive(Debug)]
pub struct RoomEvent {
    /// Position among the room's events.
    pub seq: u64,
    /// What happened.
    pub kind: RoomEventKind,
}

/// What happened in a room.
#[derive(Debug)]
pub enum RoomEventKind {
    /// A message was stored.
    Message {
        /// Its id.
        id: MessageId,
        /// The `Message` payload, as JSON.
        payload: Box<RawValue>,
        /// W3C trace context of the send, if any.
        trace: Option<String>,
    },
    /// A user's first connection appeared.
    Entered(UserRef),
    /// A user's last connection is gone.
    Exited(UserRef),
    /// A user is typing (throttled by the store; never stored).
    Typing(UserRef),
    /// A message was edited.
    Edited {
        /// Its id.
        id: MessageId,
        /// The `message edited` payload, as JSON.
        payload: Box<RawValue>,
    },
    /// A message was deleted.
    Deleted {
        /// Its id.
        id: MessageId,
        /// The `message deleted` payload, as JSON.
        payload: Box<RawValue>,
    },
}

/// The one reader of a published room event.
#[derive(Deserialize)]
struct Envelope<'a> {
    seq: u64,
    kind: &'a str,
    id: Option<MessageId>,
    user: Option<UserRef>,
    tp: Option<String>,
    message: Option<Box<RawValue>>,
    change: Option<Box<RawValue>>,
}

impl RoomEvent {
    /// Decodes an event as published by the scripts.
    pub fn decode(json: &str) -> Result<Self, StoreError> {
        let bad = |detail: String| StoreError::reply("room event", detail);
        let Envelope {
            seq,
            kind,
            id,
            user,
            tp,
            message,
            change,
        } = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let user = || user.ok_or_else(|| bad("an event without its user".into()));
        let kind = match kind {
            "message" => {
                let (Some(id), Some(payload)) = (id, message) else {
                    return Err(bad("a message event without its id or message".into()));
                };
                RoomEventKind::Message {
                    id,
                    payload,
                    trace: tp,
                }
            }
            "entered" => RoomEventKind::Entered(user()?),
            "exited" => RoomEventKind::Exited(user()?),
            "typing" => RoomEventKind::Typing(user()?),
            "edited" | "deleted" => {
                let (Some(id), Some(payload)) = (id, change) else {
                    return Err(bad("a change event without its id or change".into()));
                };
                if kind == "edited" {
                    RoomEventKind::Edited { id, payload }
                } else {
                    RoomEventKind::Deleted { id, payload }
                }
            }
            other => return Err(bad(format!("unknown kind {other:?}"))),
        };
        Ok(Self { seq, kind })
    }
}

/// The id of a message payload (a `Message` serialized as JSON).
pub fn message_id(payload: &RawValue) -> Result<MessageId, String> {
    #[derive(Deserialize)]
    struct Id {
        id: MessageId,
    }
    serde_json::from_str::<Id>(payload.get())
        .map(|m| m.id)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_events_carry_the_message_as_published() {
        let json = r#"{"seq":7,"kind":"message","id":"5-1","tp":"00-abc-def-01","message":{"id":"5-1","room":"General","user":{"id":"u","name":"Ann"},"text":"hi \/ <b>","ts":5}}"#;
        let event = RoomEvent::decode(json).expect("decodes");
        assert_eq!(event.seq, 7);
        let RoomEventKind::Message { id, payload, trace } = event.kind else {
            panic!("not a message")
        };
        assert_eq!(id, MessageId { ms: 5, seq: 1 });
        assert_eq!(trace.as_deref(), Some("00-abc-def-01"));
        let value: serde_json::Value = serde_json::from_str(payload.get()).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"id":"5-1","room":"General","user":{"id":"u","name":"Ann"},"text":"hi / <b>","ts":5})
        );
    }

    #[test]
    fn presence_events_and_garbage() {
        let event =
            RoomEvent::decode(r#"{"seq":1,"kind":"exited","user":{"id":"u","name":"Ann"}}"#)
                .expect("decodes");
        assert!(matches!(event.kind, RoomEventKind::Exited(u) if u.name == "Ann"));
        let event =
            RoomEvent::decode(r#"{"seq":2,"kind":"typing","user":{"id":"u","name":"Ann"}}"#)
                .expect("decodes");
        assert!(matches!(event.kind, RoomEventKind::Typing(u) if u.id == "u"));
        let event = RoomEvent::decode(
            r#"{"seq":3,"kind":"deleted","id":"5-1","change":{"id":"5-1","room":"General"}}"#,
        )
        .expect("decodes");
        assert!(matches!(event.kind, RoomEventKind::Deleted { id, .. } if id.ms == 5));
        assert!(RoomEvent::decode(r#"{"seq":3,"kind":"edited","id":"5-1"}"#).is_err());
        assert!(RoomEvent::decode("{}").is_err());
        assert!(
            RoomEvent::decode(r#"{"seq":1,"kind":"nope","user":{"id":"u","name":"n"}}"#).is_err()
        );
    }
}
