//! Chat messages: their ids, the rules for their text and their wire shape.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::codes::ErrorCode;
use crate::user::UserRef;

/// The contract's default limit on a message's length, in code points.
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 2000;

/// A message id, `<ms>-<seq>` like a Redis Stream id, ordered as a pair of
/// numbers within a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageId {
    /// Milliseconds since the epoch when the store accepted the message.
    pub ms: u64,
    /// Sequence within that millisecond.
    pub seq: u64,
}

/// A string that is not of the form `<ms>-<seq>`.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("message id {0:?} is not of the form <ms>-<seq>")]
pub struct BadMessageId(pub String);

impl MessageId {
    /// The smallest id strictly greater than this one.
    pub fn next(self) -> Self {
        Self {
            ms: self.ms,
            seq: self.seq.saturating_add(1),
        }
    }
}

impl FromStr for MessageId {
    type Err = BadMessageId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMessageId(s.chars().take(64).collect());
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 20 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(bad());
        }
        Ok(Self {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl Serialize for MessageId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MessageId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The text of a message that passed the contract's checks: not blank, at
/// most the configured number of code points, no control character but
/// newline and tab. Kept exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    /// Checks `text` against the rules; `max_chars` counts Unicode code points.
    pub fn parse(text: String, max_chars: usize) -> Result<Self, ErrorCode> {
        if text.trim().is_empty() {
            return Err(ErrorCode::Empty);
        }
        // Cheap bound first: a string of n bytes has at most n code points.
        if text.len() > max_chars && text.chars().count() > max_chars {
            return Err(ErrorCode::TooLong);
        }
        // C0 and C1 controls and DEL (`char::is_control`) cost up to 6 bytes
        // each in JSON and mean nothing in a chat line.
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(ErrorCode::Invalid);
        }
        Ok(Self(text))
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A message as clients receive it: `{ id, room, user: {id, name}, text, ts }`,
/// plus `edited_ts` once it was edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Its id within the room.
    pub id: MessageId,
    /// The room it was sent to.
    pub room: String,
    /// Who sent it.
    pub user: UserRef,
    /// The text exactly as sent.
    pub text: String,
    /// When the store accepted it, in milliseconds since the epoch.
    pub ts: u64,
    /// When it was last edited (ms), if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_ts: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_as_pairs_of_numbers_not_strings() {
        let a: MessageId = "999-5".parse().expect("id");
        let b: MessageId = "1000-0".parse().expect("id");
        let c: MessageId = "1000-10".parse().expect("id");
        let d: MessageId = "1000-9".parse().expect("id");
        assert!(a < b && b < d && d < c);
        assert_eq!(c.to_string(), "1000-10");
        assert_eq!(d.next(), c);
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1-2-3",
            "a-1",
            "1 -2",
            "+1-2",
            "99999999999999999999999-1",
        ] {
            assert!(
                bad.parse::<MessageId>().is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn text_rules_follow_the_contract() {
        assert_eq!(
            MessageText::parse(" \n\t".into(), 10),
            Err(ErrorCode::Empty)
        );
        assert_eq!(MessageText::parse(String::new(), 10), Err(ErrorCode::Empty));
        // 2000 code points of a 4-byte character pass; 2001 do not.
        assert!(MessageText::parse("😀".repeat(2000), 2000).is_ok());
        assert_eq!(
            MessageText::parse("😀".repeat(2001), 2000),
            Err(ErrorCode::TooLong)
        );
        for control in [
            '\u{0}', '\u{1}', '\r', '\u{1b}', '\u{7f}', '\u{80}', '\u{9f}',
        ] {
            assert_eq!(
                MessageText::parse(format!("a{control}b"), 2000),
                Err(ErrorCode::Invalid),
                "{control:?}"
            );
        }
        assert!(MessageText::parse("two\nlines\tand a tab".into(), 2000).is_ok());
        let kept = MessageText::parse("  <b>hi</b>  ".into(), 2000).expect("valid");
        assert_eq!(kept.as_str(), "  <b>hi</b>  ");
    }

    #[test]
    fn message_serializes_to_the_contract_shape() {
        let m = Message {
            id: MessageId { ms: 1, seq: 2 },
            room: "General".into(),
            user: UserRef {
                id: "u1".into(),
                name: "Ann".into(),
            },
            text: "hi".into(),
            ts: 1,
            edited_ts: None,
        };
        let json = serde_json::to_value(&m).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"id":"1-2","room":"General","user":{"id":"u1","name":"Ann"},"text":"hi","ts":1})
        );
    }
}
