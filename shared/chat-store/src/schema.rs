//! The Redis key and channel schema, shared by the gateway and the web service.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `chat:room:{room}:users` | hash | user id → live connection count (0 while leaving) |
//! | `chat:room:{room}:names` | hash | user id → display name |
//! | `chat:room:{room}:conns` | hash | connection id → user id |
//! | `chat:room:{room}:history` | stream | the room's messages, capped |
//! | `chat:room:{room}:seq` | string | counter of events published to the room |
//! | `chat:leaving` | sorted set | `room\tuser` → when `user exited` is due (ms) |
//! | `chat:nodes` | set | ids of gateway replicas that registered |
//! | `chat:node:{node}:alive` | string | heartbeat of a replica, with a TTL |
//! | `chat:node:{node}:conns` | set | `room\tconn\tuser` of a replica's connections |
//! | `chat:epoch` | string | a random value set once; its change means Redis lost its data |
//! | `chat:revoked:{sid}` | string | a logged-out web session, with a TTL |
//!
//! Channels: `chat:room:{room}:events` carries a room's events (see
//! [`crate::events`]); `chat:revocations` carries the `sid` of each logout.
//!
//! The web service's sessions are kept by `tower-sessions-redis-store` under
//! their bare session ids (it has no prefix option).
//!
//! Keys are built inside the Lua scripts from the same prefix, so the schema
//! assumes a single Redis (or a primary with replicas), not Redis Cluster.

use chat_core::RoomName;

/// The prefix of every key and channel.
pub const PREFIX: &str = "chat:";

/// The channel that carries the `sid` of every logged-out web session.
pub const REVOCATIONS_CHANNEL: &str = "chat:revocations";

/// Hash of user id → live connection count in `room`.
pub fn room_users(room: &RoomName) -> String {
    format!("{PREFIX}room:{room}:users")
}

/// The channel of `room`'s events.
pub fn room_channel(room: &RoomName) -> String {
    format!("{PREFIX}room:{room}:events")
}

/// The room a channel name belongs to, if it is a room channel.
pub fn room_of_channel(channel: &str) -> Option<&str> {
    channel
        .strip_prefix(PREFIX)?
        .strip_prefix("room:")?
        .strip_suffix(":events")
}

/// The marker of a logged-out web session.
pub fn revoked(sid: &str) -> String {
    format!("{PREFIX}revoked:{sid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_channels_round_trip() {
        let room = RoomName::parse("Sports").expect("room");
        assert_eq!(room_channel(&room), "chat:room:Sports:events");
        assert_eq!(room_of_channel(&room_channel(&room)), Some("Sports"));
        assert_eq!(room_of_channel(REVOCATIONS_CHANNEL), None);
        assert_eq!(room_users(&room), "chat:room:Sports:users");
        assert_eq!(revoked("abc"), "chat:revoked:abc");
    }
}
