//! The events every replica receives on a room's channel.
//!
//! The Lua scripts publish them as data, one `cjson`-encoded map each:
//! `{seq, kind, ...}`. `seq` counts the room's events, so a connection that
//! is joining can tell which events its snapshot already holds. A message
//! event carries the stored message as a record whose fields are those of
//! [`chat_core::Message`] (`message_record` in `lua/prelude.lua`), an edit or
//! deletion the fields of [`MessageEdited`] or [`MessageDeleted`]:
//! `{"seq":7,"kind":"message","id":"5-1","tp":"00-…","message":{…}}`,
//! `{"seq":8,"kind":"entered","user":{"id":…,"name":…}}`.
//!
//! Each replica decodes an event here, once, into those `chat-core` types;
//! the wire JSON is made from them by the gateway. The field names are the
//! ones the previous release published, so old and new replicas read each
//! other's events during a rolling upgrade (docs/UPGRADES.md).

use chat_core::events::{MessageDeleted, MessageEdited};
use chat_core::{Message, MessageId, UserRef};
use serde::Deserialize;

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
#[derive(Debug, Clone)]
pub enum RoomEventKind {
    /// A message was stored.
    Message {
        /// The message.
        message: Message,
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
    Edited(MessageEdited),
    /// A message was deleted.
    Deleted(MessageDeleted),
}

/// An edit's or a deletion's record: a deletion has no text.
#[derive(Deserialize)]
struct ChangeRecord {
    id: MessageId,
    room: String,
    text: Option<String>,
    edited_ts: Option<u64>,
}

/// The one reader of a published room event.
#[derive(Deserialize)]
struct Envelope<'a> {
    seq: u64,
    kind: &'a str,
    user: Option<UserRef>,
    tp: Option<String>,
    message: Option<Message>,
    change: Option<ChangeRecord>,
}

impl RoomEvent {
    /// Decodes an event as published by the scripts.
    pub fn decode(json: &str) -> Result<Self, StoreError> {
        let bad = |detail: String| StoreError::reply("room event", detail);
        let Envelope {
            seq,
            kind,
            user,
            tp,
            message,
            change,
        } = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let user = || user.ok_or_else(|| bad("an event without its user".into()));
        let kind = match (kind, change) {
            ("message", _) => RoomEventKind::Message {
                message: message
                    .ok_or_else(|| bad("a message event without its message".into()))?,
                trace: tp,
            },
            ("entered", _) => RoomEventKind::Entered(user()?),
            ("exited", _) => RoomEventKind::Exited(user()?),
            ("typing", _) => RoomEventKind::Typing(user()?),
            (
                "edited",
                Some(ChangeRecord {
                    id,
                    room,
                    text: Some(text),
                    edited_ts: Some(edited_ts),
                }),
            ) => RoomEventKind::Edited(MessageEdited {
                id,
                room,
                text,
                edited_ts,
            }),
            ("deleted", Some(ChangeRecord { id, room, .. })) => {
                RoomEventKind::Deleted(MessageDeleted { id, room })
            }
            ("edited" | "deleted", _) => {
                return Err(bad(format!("a {kind} event without its change")));
            }
            (other, _) => return Err(bad(format!("unknown kind {other:?}"))),
        };
        Ok(Self { seq, kind })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published by the previous release's scripts, which built this JSON
    /// by string concatenation: the decoder reads it as its own.
    const PREVIOUS_RELEASE_MESSAGE: &str = r#"{"seq":7,"kind":"message","id":"5-1","tp":"00-abc-def-01","message":{"id":"5-1","room":"General","user":{"id":"u","name":"Ann"},"text":"hi \/ <b>","ts":5}}"#;

    #[test]
    fn message_events_decode_into_the_message() {
        let event = RoomEvent::decode(PREVIOUS_RELEASE_MESSAGE).expect("decodes");
        assert_eq!(event.seq, 7);
        let RoomEventKind::Message { message, trace } = event.kind else {
            panic!("not a message")
        };
        assert_eq!(trace.as_deref(), Some("00-abc-def-01"));
        assert_eq!(message.id, MessageId { ms: 5, seq: 1 });
        assert_eq!(message.text, "hi / <b>");
        assert_eq!(message.user.name, "Ann");
        assert_eq!(message.edited_ts, None);
    }

    #[test]
    fn presence_and_change_events_and_garbage() {
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
        assert!(matches!(event.kind, RoomEventKind::Deleted(d) if d.id.ms == 5));
        let event = RoomEvent::decode(
            r#"{"seq":4,"kind":"edited","id":"5-1","change":{"room":"General","edited_ts":9,"id":"5-1","text":"x"}}"#,
        )
        .expect("decodes");
        assert!(
            matches!(event.kind, RoomEventKind::Edited(e) if e.text == "x" && e.edited_ts == 9)
        );
        assert!(RoomEvent::decode(r#"{"seq":3,"kind":"edited","id":"5-1"}"#).is_err());
        assert!(
            RoomEvent::decode(
                r#"{"seq":3,"kind":"edited","change":{"id":"5-1","room":"General"}}"#
            )
            .is_err(),
            "an edit without its text"
        );
        assert!(RoomEvent::decode("{}").is_err());
        assert!(
            RoomEvent::decode(r#"{"seq":1,"kind":"nope","user":{"id":"u","name":"n"}}"#).is_err()
        );
    }
}
