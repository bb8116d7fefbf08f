//! The claims of a room token (see the contract's "Room token" section).

use serde::{Deserialize, Serialize};

/// The audience a room token is for unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "chat-gateway";
/// The issuer string of the web service unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "chat-web";
/// The default lifetime of a room token, in seconds.
pub const DEFAULT_TOKEN_TTL_S: u64 = 300;

/// Everything a room token asserts. All fields but `sid` are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomClaims {
    /// The web service's issuer string.
    pub iss: String,
    /// The gateway audience.
    pub aud: String,
    /// Stable user id (the identity provider's `sub`).
    pub sub: String,
    /// Display name, plain text, at most 64 characters.
    pub name: String,
    /// The one room this token admits to.
    pub room: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Unique token id.
    pub jti: String,
    /// Opaque id of the web session that minted the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// (v2.0 extension) Set when the user is an administrator
    /// (`ADMIN_GROUPS`), who acts as owner in every public and private room.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
}
