//! Who a user is on the wire: a stable id and a display name.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest display name, in Unicode code points (the contract's limit).
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Longest user id accepted, in bytes.
pub const MAX_USER_ID_LEN: usize = 255;

/// Why a user id or display name was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UserError {
    /// The id is empty, too long or holds control characters.
    #[error("user id must be 1 to 255 bytes with no control characters")]
    BadId,
    /// The name is empty, too long or holds control characters.
    #[error("display name must be 1 to 64 characters with no control characters")]
    BadName,
}

/// A stable user id: the identity provider's `sub`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Checks a user id.
    pub fn parse(id: &str) -> Result<Self, UserError> {
        if id.is_empty() || id.len() > MAX_USER_ID_LEN || id.chars().any(char::is_control) {
            return Err(UserError::BadId);
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: plain text, 1 to 64 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// Checks a display name exactly as given (it must already be trimmed).
    pub fn parse(name: &str) -> Result<Self, UserError> {
        let chars = name.chars().count();
        if chars == 0
            || chars > MAX_DISPLAY_NAME_CHARS
            || name.trim() != name
            || name.chars().any(char::is_control)
        {
            return Err(UserError::BadName);
        }
        Ok(Self(name.to_owned()))
    }

    /// Makes a display name from whatever an identity provider or a token
    /// sent: trims it, drops control, bidirectional-override and zero-width
    /// characters and cuts it to 64 characters. Falls back to `fallback`
    /// when nothing is left.
    pub fn sanitize(raw: &str, fallback: &str) -> Self {
        let cleaned: String = raw
            .chars()
            .filter(|c| !c.is_control() && !is_spoofing(*c))
            .collect::<String>()
            .trim()
            .chars()
            .take(MAX_DISPLAY_NAME_CHARS)
            .collect();
        let cleaned = cleaned.trim();
        match Self::parse(cleaned) {
            Ok(name) => name,
            Err(_) if raw != fallback => Self::sanitize(fallback, "user"),
            Err(_) => Self("user".to_owned()),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that make a name look like another (reordering text around
/// it, or invisible): the bidirectional embeddings, overrides and isolates,
/// the directional marks, and the zero-width characters.
pub fn is_spoofing(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner; LRM, RLM
        | '\u{202A}'..='\u{202E}' // LRE, RLE, PDF, LRO, RLO
        | '\u{2060}'..='\u{2064}' // word joiner and invisible operators
        | '\u{2066}'..='\u{2069}' // LRI, RLI, FSI, PDI
        | '\u{061C}' // Arabic letter mark
        | '\u{180E}' // Mongolian vowel separator
        | '\u{FEFF}' // zero-width no-break space
    )
}

/// `{id, name}`: a user as `members`, `user entered` and `Message.user` show it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserRef {
    /// Stable user id.
    pub id: String,
    /// Display name.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_checked_by_code_points() {
        assert!(DisplayName::parse(&"é".repeat(64)).is_ok());
        assert_eq!(DisplayName::parse(&"é".repeat(65)), Err(UserError::BadName));
        assert_eq!(DisplayName::parse(""), Err(UserError::BadName));
        assert_eq!(DisplayName::parse(" Ann"), Err(UserError::BadName));
        assert_eq!(DisplayName::parse("A\u{0}nn"), Err(UserError::BadName));
    }

    #[test]
    fn sanitize_trims_cuts_and_falls_back() {
        assert_eq!(DisplayName::sanitize("  Ann\n ", "x").as_str(), "Ann");
        assert_eq!(
            DisplayName::sanitize(&"b".repeat(100), "x").as_str().len(),
            64
        );
        assert_eq!(
            DisplayName::sanitize(" \t ", "ann@example.com").as_str(),
            "ann@example.com"
        );
        assert_eq!(DisplayName::sanitize("", "").as_str(), "user");
        assert_eq!(
            DisplayName::sanitize("\u{202E}nnA\u{200B}\u{2066}x\u{FEFF}", "x").as_str(),
            "nnAx"
        );
        assert_eq!(
            DisplayName::sanitize("\u{200D}\u{202E}", "Bob").as_str(),
            "Bob"
        );
    }

    #[test]
    fn user_ids_refuse_empty_and_control_characters() {
        assert!(UserId::parse("00u1abcd").is_ok());
        assert_eq!(UserId::parse(""), Err(UserError::BadId));
        assert_eq!(UserId::parse("a\nb"), Err(UserError::BadId));
    }
}
