//! The error codes of the wire contract.
//!
//! Handshake refusals, negative acks and `session ended` reasons all use these
//! strings; keeping them in one enum means a typo cannot reach a client.

use serde::{Serialize, Serializer};

/// Every code the contract names, for refusals, acks and session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// No token in the CONNECT auth payload.
    TokenMissing,
    /// The token is malformed, badly signed or has the wrong claims.
    TokenInvalid,
    /// The token's `exp` has passed.
    TokenExpired,
    /// The web session that minted the token was logged out.
    TokenRevoked,
    /// The token names a room this deployment does not have.
    RoomUnknown,
    /// The replica is at its connection limit or draining.
    ServerBusy,
    /// This user already holds as many connections on this replica as allowed.
    TooManyConnections,
    /// A payload of the wrong type.
    Invalid,
    /// A message that is empty after trimming whitespace.
    Empty,
    /// A message longer than the configured limit.
    TooLong,
    /// The sender is over the per-user rate.
    RateLimited,
    /// The store (Redis) could not be reached in time.
    Unavailable,
    /// No such message in the kept history (or it was deleted).
    NotFound,
    /// The user may not do that (not the author, no such role, muted, an
    /// announcement room).
    Forbidden,
    /// The replica is shutting down; reconnect elsewhere.
    Shutdown,
    /// The client reads too slowly and was disconnected.
    SlowConsumer,
    /// The user may no longer read the room (removed, left, lost a group).
    Removed,
    /// The room was deleted.
    RoomClosed,
}

impl ErrorCode {
    /// The code exactly as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TokenMissing => "token_missing",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenRevoked => "token_revoked",
            Self::RoomUnknown => "room_unknown",
            Self::ServerBusy => "server_busy",
            Self::TooManyConnections => "too_many_connections",
            Self::Invalid => "invalid",
            Self::Empty => "empty",
            Self::TooLong => "too_long",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::NotFound => "not_found",
            Self::Forbidden => "forbidden",
            Self::Shutdown => "shutdown",
            Self::SlowConsumer => "slow_consumer",
            Self::Removed => "removed",
            Self::RoomClosed => "room_closed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for ErrorCode {}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
