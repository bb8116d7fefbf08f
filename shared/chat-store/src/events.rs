//! The events every replica receives on a room's channel.
//!
//! The Lua scripts publish them as JSON: `{seq, kind, ...}`. `seq` counts the
//! room's events, so a connection that is joining can tell which events its
//! snapshot already holds. A message event carries the message already
//! serialized in the contract's shape, so a replica forwards it to its
//! clients without serializing it again.

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
}

#[derive(Deserialize)]
struct Envelope<'a> {
    seq: u64,
    kind: &'a str,
    id: Option<MessageId>,
    user: UserRef,
    tp: Option<String>,
}

impl RoomEvent {
    /// Decodes an event as published by the scripts.
    pub fn decode(json: &str) -> Result<Self, StoreError> {
        let bad = |e: serde_json::Error| StoreError::reply("room event", e.to_string());
        let envelope: Envelope<'_> = serde_json::from_str(json).map_err(bad)?;
        let kind = match envelope.kind {
            "message" => {
                let id = envelope
                    .id
                    .ok_or_else(|| StoreError::reply("room event", "message without id"))?;
                // The envelope is the Message itself plus `seq`, `kind` and `tp`:
                // strip those by re-reading only the contract's fields.
                let payload = message_payload(json).map_err(bad)?;
                RoomEventKind::Message {
                    id,
                    payload,
                    trace: envelope.tp,
                }
            }
            "entered" => RoomEventKind::Entered(envelope.user),
            "exited" => RoomEventKind::Exited(envelope.user),
            other => {
                return Err(StoreError::reply(
                    "room event",
                    format!("unknown kind {other:?}"),
                ));
            }
        };
        Ok(Self {
            seq: envelope.seq,
            kind,
        })
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

fn message_payload(json: &str) -> Result<Box<RawValue>, serde_json::Error> {
    #[derive(Deserialize, serde::Serialize)]
    struct Payload<'a> {
        #[serde(borrow)]
        id: &'a RawValue,
        #[serde(borrow)]
        room: &'a RawValue,
        #[serde(borrow)]
        user: &'a RawValue,
        #[serde(borrow)]
        text: &'a RawValue,
        #[serde(borrow)]
        ts: &'a RawValue,
    }
    let payload: Payload<'_> = serde_json::from_str(json)?;
    serde_json::value::to_raw_value(&payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_events_keep_only_the_contract_fields() {
        let json = r#"{"seq":7,"kind":"message","id":"5-1","room":"General","user":{"id":"u","name":"Ann"},"text":"hi \/ <b>","ts":5,"tp":"00-abc-def-01"}"#;
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
        assert!(RoomEvent::decode("{}").is_err());
        assert!(
            RoomEvent::decode(r#"{"seq":1,"kind":"nope","user":{"id":"u","name":"n"}}"#).is_err()
        );
    }
}
