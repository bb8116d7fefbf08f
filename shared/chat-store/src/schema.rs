//! The Redis key and channel schema, shared by the gateway and the web service.
//!
//! Everything one room needs carries the room's hash tag, `{room}`, so it
//! lives in one hash slot: on Redis Cluster a room is one shard's business,
//! every script touches one slot, and rooms spread over the shards.
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `chat:room:{R}:users` | hash | user id → live connection count (0 while leaving) |
//! | `chat:room:{R}:names` | hash | user id → display name |
//! | `chat:room:{R}:conns` | hash | connection id → user id |
//! | `chat:room:{R}:history` | stream | the room's messages, capped |
//! | `chat:room:{R}:seq` | string | counter of events published to the room |
//! | `chat:room:{R}:leaving` | sorted set | user id → when `user exited` is due (ms) |
//! | `chat:room:{R}:nodes` | set | (configured rooms, for the release before: docs/UPGRADES.md) gateway replicas that heartbeat in the room |
//! | `chat:room:{R}:alive:{node}` | string | (the same) a replica's heartbeat in the room, with a TTL |
//! | `chat:room:{R}:node:{node}` | set | `conn\tuser` of a replica's connections in the room |
//! | `chat:room:{R}:changed` | hash | message id → its edit (`{t, e}`: text, edited ms) or deletion (`{d: 1}`) |
//! | `chat:room:{R}:changes` | stream | which message (`i`) was edited or deleted when (the entry id), capped |
//! | `chat:room:{R}:count` | string | how many messages were ever sent to the room |
//! | `chat:room:{R}:reads` | hash | user id → the room's `count` at their read marker |
//! | `chat:room:{R}:epoch` | string | (configured rooms, for the release before) a random value set once; its change means the room's shard lost its data |
//! | `chat:room:{R}:synced` | string | written before each `WAIT` for the room's slot (`REDIS_WAIT_REPLICAS`), so that the `WAIT` covers every write made before it |
//! | `chat:room:{R}:meta` | hash | a made room's settings (see the rooms module); absent for a configured room never changed |
//! | `chat:room:{R}:members` | hash | user id → role (`owner`, `moderator`, `member`) |
//! | `chat:room:{R}:mutes` | hash | user id → muted until (ms) |
//! | `chat:room:{R}:removed` | hash | user id → when they last lost access to the room (ms): older tokens are refused |
//! | `chat:room:{R}:audit` | stream | who changed what in the room: `a` actor, `x` action, `t` target, `d` detail (JSON), capped |
//! | `chat:revoked:<sid>` | string | a logged-out web session, with a TTL |
//! | `chat:{nodes}` | set | the gateway replicas (nodes) alive, or not yet found dead |
//! | `chat:{nodes}:alive:<node>` | string | a node's liveness, with a TTL its heartbeat renews |
//! | `chat:{nodes}:taken` | sorted set | node → when a sweeper took it as dead (ms), until its sweep ends |
//! | `chat:{nodes}:swept` | sorted set | node → when its sweep ended (ms), kept an hour: a node that comes back learns it was swept |
//! | `chat:node:{N}:rooms` | set | the rooms where node `N` has, or recently had, connections or exits to announce: what its sweeper sweeps |
//!
//! (`{node}` above is a placeholder, not a hash tag: only `{R}`, `{nodes}`
//! and `{N}` are in braces. The four `chat:{nodes}…` keys share one hash slot,
//! so that one script decides a node's liveness; `chat:node:{N}:rooms` is in
//! the node's own slot, and a room's keys in the room's: a sweep touches each
//! with a command or script of its own.)
//!
//! A key that one concept's script alone uses is named in that concept's
//! module, with its row, built by [`room_key`] so that it shares the room's
//! slot: `chat:room:{R}:typing:{user}` in [`crate::signals`].
//!
//! Channels: `chat:room:{R}:events` carries a room's events (see
//! [`crate::events`]) over sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`), so on a
//! cluster each is served by its room's shard; `chat:revocations` carries the
//! `sid` of each logout over classic pub/sub, which reaches every shard.
//!
//! The web service's sessions are kept by `tower-sessions-redis-store` under
//! their bare session ids (it has no prefix option).

use chat_core::RoomName;

/// The prefix of every key and channel.
pub const PREFIX: &str = "chat:";

/// The channel that carries the `sid` of every logged-out web session.
pub const REVOCATIONS_CHANNEL: &str = "chat:revocations";

/// The start of every key of `room`: `chat:room:{R}:`.
fn room_base(room: &RoomName) -> String {
    format!("{PREFIX}room:{{{room}}}:")
}

/// `room`'s key called `name`, `chat:room:{R}:<name>`: in the room's hash slot.
pub fn room_key(room: &RoomName, name: &str) -> String {
    format!("{}{name}", room_base(room))
}

/// Hash of user id → live connection count in `room`.
pub fn room_users(room: &RoomName) -> String {
    format!("{}users", room_base(room))
}

/// The (sharded) channel of `room`'s events.
pub fn room_channel(room: &RoomName) -> String {
    format!("{}events", room_base(room))
}

/// The room a channel name belongs to, if it is a room channel.
pub fn room_of_channel(channel: &str) -> Option<&str> {
    channel
        .strip_prefix(PREFIX)?
        .strip_prefix("room:{")?
        .strip_suffix("}:events")
}

/// Every key a room script declares, in the order the scripts' prelude reads
/// them (`lua/prelude.lua`), for `node` acting in `room`.
pub fn room_keys(room: &RoomName, node: &str) -> Vec<String> {
    let base = room_base(room);
    [
        "users", "names", "conns", "history", "seq", "leaving", "nodes", "epoch",
    ]
    .iter()
    .map(|k| format!("{base}{k}"))
    .chain([
        format!("{base}alive:{node}"),
        format!("{base}node:{node}"),
        format!("{base}changed"),
        format!("{base}changes"),
        format!("{base}count"),
        format!("{base}reads"),
        format!("{base}meta"),
        format!("{base}members"),
        format!("{base}mutes"),
        format!("{base}removed"),
        format!("{base}audit"),
    ])
    .collect()
}

/// Hash of user id → the message count at their read marker in `room`.
pub fn room_reads(room: &RoomName) -> String {
    format!("{}reads", room_base(room))
}

/// How many messages were ever sent to `room`.
pub fn room_count(room: &RoomName) -> String {
    format!("{}count", room_base(room))
}

/// The key written before each `WAIT` for `room`'s hash slot (see
/// [`crate::redis`]'s replication module).
pub fn room_synced(room: &RoomName) -> String {
    format!("{}synced", room_base(room))
}

/// The history stream of `room`.
pub fn room_history(room: &RoomName) -> String {
    format!("{}history", room_base(room))
}

/// The set of live nodes; every liveness key is in its hash slot.
pub const NODES: &str = "chat:{nodes}";

/// The nodes taken as dead, by when (ms), until their sweep ends.
pub const NODES_TAKEN: &str = "chat:{nodes}:taken";

/// The nodes swept, by when (ms).
pub const NODES_SWEPT: &str = "chat:{nodes}:swept";

/// The start of every node's alive key (the node id follows it).
pub const NODE_ALIVE_PREFIX: &str = "chat:{nodes}:alive:";

/// `node`'s alive key, renewed by its heartbeat.
pub fn node_alive(node: &str) -> String {
    format!("{NODE_ALIVE_PREFIX}{node}")
}

/// The rooms where `node` has, or recently had, connections or exits to announce.
pub fn node_rooms(node: &str) -> String {
    format!("{PREFIX}node:{{{node}}}:rooms")
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
        assert_eq!(room_channel(&room), "chat:room:{Sports}:events");
        assert_eq!(room_of_channel(&room_channel(&room)), Some("Sports"));
        assert_eq!(room_of_channel(REVOCATIONS_CHANNEL), None);
        assert_eq!(room_users(&room), "chat:room:{Sports}:users");
        assert_eq!(revoked("abc"), "chat:revoked:abc");
    }

    #[test]
    fn every_liveness_key_shares_one_hash_slot_and_a_node_s_rooms_have_their_own() {
        let slot = fred::util::redis_keyslot(NODES.as_bytes());
        for key in [
            NODES_TAKEN,
            NODES_SWEPT,
            &node_alive("n1"),
            &node_alive("n2.3"),
        ] {
            assert_eq!(fred::util::redis_keyslot(key.as_bytes()), slot, "{key}");
        }
        assert_eq!(node_rooms("n1"), "chat:node:{n1}:rooms");
        assert_ne!(
            fred::util::redis_keyslot(node_rooms("n1").as_bytes()),
            fred::util::redis_keyslot(node_rooms("n2").as_bytes())
        );
    }

    #[test]
    fn a_rooms_keys_and_channel_share_one_hash_slot() {
        let room = RoomName::parse("General").expect("room");
        let slot = fred::util::redis_keyslot(room_channel(&room).as_bytes());
        let mut keys = room_keys(&room, "n1");
        assert_eq!(keys.len(), 19);
        keys.push(room_key(&room, "typing:user{with}braces"));
        keys.push(room_synced(&room));
        keys.push(room_history(&room));
        for key in keys {
            assert_eq!(fred::util::redis_keyslot(key.as_bytes()), slot, "{key}");
        }
        let other = RoomName::parse("Music").expect("room");
        assert_ne!(
            fred::util::redis_keyslot(room_users(&other).as_bytes()),
            slot
        );
    }
}
