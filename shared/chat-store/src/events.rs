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
//! Each replica decodes an event here, once, into a [`RoomEvent`] of
//! `chat-core`; the gateway serializes that for the wire. The first
//! release's events keep the field names it published, so old and new
//! replicas read each other's events during a rolling upgrade
//! (docs/UPGRADES.md). Every event added since is published as
//! `{seq, kind: "<wire name>", data: <payload>}` and decoded by
//! [`RoomEvent::from_wire`]: a new event needs nothing here.

use chat_core::events::{MessageDeleted, MessageEdited, RoomEvent};
use chat_core::{Message, MessageId, RoomName, UserRef};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use crate::error::StoreError;

/// One event as published to a room's channel.
#[derive(Debug, Clone)]
pub struct Published {
    /// Position among the room's events.
    pub seq: u64,
    /// W3C trace context of the request that caused it, if any.
    pub trace: Option<String>,
    /// What happened.
    pub event: RoomEvent,
}

/// An edit's or a deletion's record: a deletion has no text.
#[derive(Deserialize)]
struct ChangeRecord {
    id: MessageId,
    room: String,
    text: Option<String>,
    edited_ts: Option<u64>,
}

/// The one reader of a published room event. The kinds of the first
/// release (`message`, `entered`, …) carry their fields beside `kind`;
/// every later event is `{seq, kind: "<wire name>", data: <payload>}`.
#[derive(Deserialize)]
struct Envelope<'a> {
    seq: u64,
    kind: &'a str,
    user: Option<UserRef>,
    tp: Option<String>,
    message: Option<Message>,
    change: Option<ChangeRecord>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

impl Published {
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
            data,
        } = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let user = || user.ok_or_else(|| bad("an event without its user".into()));
        let event = match (kind, change) {
            ("message", _) => RoomEvent::MessageReceived(
                message.ok_or_else(|| bad("a message event without its message".into()))?,
            ),
            ("entered", _) => RoomEvent::UserEntered(user()?),
            ("exited", _) => RoomEvent::UserExited(user()?),
            ("typing", _) => RoomEvent::UserTyping(user()?),
            (
                "edited",
                Some(ChangeRecord {
                    id,
                    room,
                    text: Some(text),
                    edited_ts: Some(edited_ts),
                }),
            ) => RoomEvent::MessageEdited(MessageEdited {
                id,
                room,
                text,
                edited_ts,
            }),
            ("deleted", Some(ChangeRecord { id, room, .. })) => {
                RoomEvent::MessageDeleted(MessageDeleted { id, room })
            }
            ("edited" | "deleted", _) => {
                return Err(bad(format!("a {kind} event without its change")));
            }
            (name, _) => {
                let data = data.map_or("null", RawValue::get);
                RoomEvent::from_wire(name, data)
                    .ok_or_else(|| bad(format!("unknown kind {name:?}")))?
                    .map_err(|e| bad(format!("{name}: {e}")))?
            }
        };
        Ok(Self {
            seq,
            trace: tp,
            event,
        })
    }
}

/// Why someone's connections to a room end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLoss {
    /// Removed, left, or lost the group that let them in.
    Removed,
    /// The room was deleted.
    RoomClosed,
}

/// Someone lost access to a room: every replica ends their connections to it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessLost {
    /// Whose connections end (`None`: everyone's, the room was deleted).
    pub user: Option<String>,
    /// Why.
    pub reason: AccessLoss,
}

/// The kind of a published [`AccessLost`] (never sent to clients).
const ACCESS_LOST: &str = "access_lost";

/// Decodes what a room's channel carried: a room event, or a loss of access.
pub fn decode_room_event(room: RoomName, json: &str) -> Result<FanoutEvent, StoreError> {
    #[derive(Deserialize)]
    struct Kind<'a> {
        kind: &'a str,
    }
    let kind: Kind<'_> =
        serde_json::from_str(json).map_err(|e| StoreError::reply("room event", e.to_string()))?;
    if kind.kind == ACCESS_LOST {
        let lost: AccessLost = serde_json::from_str(json)
            .map_err(|e| StoreError::reply("access lost", e.to_string()))?;
        return Ok(FanoutEvent::AccessLost(room, lost));
    }
    Ok(FanoutEvent::Room(room, Published::decode(json)?))
}

/// How many fan-out events may wait for the consumer before the producer waits.
pub const SUBSCRIPTION_CAPACITY: usize = 65_536;

/// Something every subscriber is told.
#[derive(Debug)]
pub enum FanoutEvent {
    /// An event in a room.
    Room(RoomName, Published),
    /// A web session was logged out: end its connections.
    Revoked(String),
    /// Someone lost access to a room: end their connections to it.
    AccessLost(RoomName, AccessLost),
    /// The subscription was lost and is back: events published meanwhile
    /// were missed, and the rooms' messages since then should be read back.
    Resubscribed,
}

/// The events of the subscribed rooms and every revocation, in publish order.
pub type Subscription = mpsc::Receiver<FanoutEvent>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Published by the previous release's scripts, which built this JSON
    /// by string concatenation: the decoder reads it as its own.
    const PREVIOUS_RELEASE_MESSAGE: &str = r#"{"seq":7,"kind":"message","id":"5-1","tp":"00-abc-def-01","message":{"id":"5-1","room":"General","user":{"id":"u","name":"Ann"},"text":"hi \/ <b>","ts":5}}"#;

    #[test]
    fn message_events_decode_into_the_message() {
        let event = Published::decode(PREVIOUS_RELEASE_MESSAGE).expect("decodes");
        assert_eq!(event.seq, 7);
        assert_eq!(event.trace.as_deref(), Some("00-abc-def-01"));
        let RoomEvent::MessageReceived(message) = event.event else {
            panic!("not a message")
        };
        assert_eq!(message.id, MessageId { ms: 5, seq: 1 });
        assert_eq!(message.text, "hi / <b>");
        assert_eq!(message.user.name, "Ann");
        assert_eq!(message.edited_ts, None);
    }

    #[test]
    fn presence_and_change_events_and_garbage() {
        let event =
            Published::decode(r#"{"seq":1,"kind":"exited","user":{"id":"u","name":"Ann"}}"#)
                .expect("decodes");
        assert!(matches!(event.event, RoomEvent::UserExited(u) if u.name == "Ann"));
        let event =
            Published::decode(r#"{"seq":2,"kind":"typing","user":{"id":"u","name":"Ann"}}"#)
                .expect("decodes");
        assert!(matches!(event.event, RoomEvent::UserTyping(u) if u.id == "u"));
        let event = Published::decode(
            r#"{"seq":3,"kind":"deleted","id":"5-1","change":{"id":"5-1","room":"General"}}"#,
        )
        .expect("decodes");
        assert!(matches!(event.event, RoomEvent::MessageDeleted(d) if d.id.ms == 5));
        let event = Published::decode(
            r#"{"seq":4,"kind":"edited","id":"5-1","change":{"room":"General","edited_ts":9,"id":"5-1","text":"x"}}"#,
        )
        .expect("decodes");
        assert!(
            matches!(event.event, RoomEvent::MessageEdited(e) if e.text == "x" && e.edited_ts == 9)
        );
        assert!(Published::decode(r#"{"seq":3,"kind":"edited","id":"5-1"}"#).is_err());
        assert!(
            Published::decode(
                r#"{"seq":3,"kind":"edited","change":{"id":"5-1","room":"General"}}"#
            )
            .is_err(),
            "an edit without its text"
        );
        assert!(Published::decode("{}").is_err());
        assert!(
            Published::decode(r#"{"seq":1,"kind":"nope","user":{"id":"u","name":"n"}}"#).is_err()
        );
    }

    #[test]
    fn later_events_are_published_under_their_wire_name() {
        let event =
            Published::decode(r#"{"seq":5,"kind":"user typing","data":{"id":"u","name":"Ann"}}"#)
                .expect("decodes");
        assert!(matches!(event.event, RoomEvent::UserTyping(u) if u.id == "u"));
        assert!(Published::decode(r#"{"seq":5,"kind":"user typing"}"#).is_err());
        let room = RoomName::parse("R").expect("room");
        let lost = decode_room_event(
            room.clone(),
            r#"{"seq":6,"kind":"access_lost","user":"u","reason":"removed"}"#,
        );
        assert!(matches!(
            lost,
            Ok(FanoutEvent::AccessLost(_, AccessLost { user: Some(u), reason: AccessLoss::Removed })) if u == "u"
        ));
        // cjson leaves a nil user out: everyone's connections end.
        let closed = decode_room_event(
            room,
            r#"{"seq":7,"kind":"access_lost","reason":"room_closed"}"#,
        );
        assert!(matches!(
            closed,
            Ok(FanoutEvent::AccessLost(
                _,
                AccessLost {
                    user: None,
                    reason: AccessLoss::RoomClosed
                }
            ))
        ));
        assert!(Published::decode(r#"{"seq":5,"kind":"user typing","data":{}}"#).is_err());
    }
}
