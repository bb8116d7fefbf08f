//! Room names and the list of rooms a deployment offers.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest room name accepted, in characters.
pub const MAX_ROOM_NAME_LEN: usize = 64;

/// Room ids that name pages and routes of their own (`/api/rooms/directory`,
/// `/api/rooms/direct`): never a room's id.
pub const RESERVED: [&str; 2] = ["directory", "direct"];

/// A room name: 1 to 64 ASCII letters, digits, `-`, `_` or `.`.
///
/// The narrow alphabet keeps names safe inside Redis keys, URLs and log
/// lines. Names are case-sensitive, as the contract says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomName(String);

/// Why a room name or room list was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RoomError {
    /// The name is empty, too long or has a character outside the alphabet.
    #[error("room name {0:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '-', '_' or '.'")]
    BadName(String),
    /// The list names no room at all.
    #[error("the room list is empty")]
    Empty,
    /// The same room is named twice.
    #[error("room {0:?} is listed twice")]
    Duplicate(String),
    #[error("room name {0:?} is reserved")]
    /// A name that routes use for pages of their own.
    Reserved(String),
}

impl RoomName {
    /// Checks a room name.
    pub fn parse(name: &str) -> Result<Self, RoomError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_ROOM_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(RoomError::BadName(name.to_owned()))
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoomName {
    type Error = RoomError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RoomName> for String {
    fn from(value: RoomName) -> Self {
        value.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The rooms a deployment offers, in the order configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomList(Vec<RoomName>);

impl RoomList {
    /// The contract's default: `General,Sports,Music`.
    pub const DEFAULT: &'static str = "General,Sports,Music";

    /// Parses a comma-separated list such as `General,Sports,Music`.
    pub fn parse(list: &str) -> Result<Self, RoomError> {
        let mut rooms: Vec<RoomName> = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let room = RoomName::parse(part)?;
            if RESERVED.contains(&part) {
                return Err(RoomError::Reserved(part.to_owned()));
            }
            if rooms.contains(&room) {
                return Err(RoomError::Duplicate(part.to_owned()));
            }
            rooms.push(room);
        }
        if rooms.is_empty() {
            return Err(RoomError::Empty);
        }
        Ok(Self(rooms))
    }

    /// The room with this exact name, if the deployment has it.
    pub fn find(&self, name: &str) -> Option<&RoomName> {
        self.0.iter().find(|r| r.as_str() == name)
    }

    /// Every room, in configured order.
    pub fn iter(&self) -> impl Iterator<Item = &RoomName> {
        self.0.iter()
    }
}

impl Default for RoomList {
    fn default() -> Self {
        Self::parse(Self::DEFAULT)
            .unwrap_or_else(|_| unreachable!("the default room list is valid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_case_sensitive_and_restricted() {
        assert!(RoomName::parse("General").is_ok());
        assert_ne!(RoomName::parse("general"), RoomName::parse("General"));
        for bad in ["", "a b", "x:y", "ü", &"a".repeat(65), "{room}"] {
            assert!(RoomName::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn room_list_parses_trims_and_refuses_duplicates() {
        let list = RoomList::parse(" General, Sports ,Music").expect("valid list");
        let names: Vec<_> = list.iter().map(RoomName::as_str).collect();
        assert_eq!(names, ["General", "Sports", "Music"]);
        assert!(list.find("Sports").is_some());
        assert!(list.find("sports").is_none());
        assert_eq!(
            RoomList::parse("A,A"),
            Err(RoomError::Duplicate("A".into()))
        );
        assert_eq!(RoomList::parse(" , "), Err(RoomError::Empty));
        assert_eq!(
            RoomList::parse("General,directory"),
            Err(RoomError::Reserved("directory".into()))
        );
        assert!(RoomList::parse("direct").is_err());
        assert_eq!(RoomList::default().iter().count(), 3);
    }
}
