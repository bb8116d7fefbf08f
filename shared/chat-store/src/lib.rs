//! Everything the chat keeps in Redis, behind one key schema both services
//! share: presence, history, the fan-out of room events and session
//! revocations.
//!
//! Only this crate talks to Redis (or stands in for it in memory). Every decision that takes more than one
//! command (first in, last out, sweeping a dead replica, storing and
//! publishing a message) is one Lua script, so replicas never race.
//!
//! # Layout
//! One module per concept, each holding its trait, its types, its scripts
//! and both of its implementations (on Redis, in memory) side by side:
//! - [`presence`]: joining, leaving, replicas' liveness, sweeps of dead ones, exits.
//! - [`history`]: storing, paging, editing and deleting messages.
//! - [`reads`]: read markers and unread counts.
//! - [`signals`]: typing, throttled and published, never stored.
//! - [`fanout`]: delivering room events and revocations to every replica.
//! - [`revocations`]: logged-out web sessions.
//! - [`rooms`]: rooms as data: settings, members, roles, mutes, audit.
//! - [`directory`]: finding rooms and people (lists, the directory, direct
//!   conversations, who signed in), derived from rooms.
//!
//! And what they share:
//! - [`backend`]: the whole backend (`Backend`: all six, and `ping`).
//! - [`redis`]: the Redis backend's handle, running scripts, replies, replication.
//! - [`memory`]: the in-memory backend's handle and its state (a part per concept).
//! - [`schema`]: Redis key and channel names, in one place.
//! - [`scripts`]: the Lua scripts and their shared prelude.
//! - [`events`]: a room event as published to every replica, decoding it, and
//!   what a subscription hands on.
//! - [`metrics_names`]: the store's metric names.
//! - [`connection`]: building fred clients with reconnects and timeouts.
//! - `node_id`: the id of the replica a handle acts for (a new one after it
//!   was taken as dead while alive).
//! - [`error`]: the store's error type.

pub mod backend;
pub mod connection;
pub mod directory;
pub mod error;
pub mod events;
pub mod fanout;
pub mod history;
pub mod memory;
pub mod metrics_names;
mod node_id;
pub mod presence;
pub mod reads;
pub mod redis;
pub mod revocations;
pub mod rooms;
pub mod schema;
pub mod scripts;
pub mod signals;

pub use backend::{
    Backend, Directory, Fanout, FanoutEvent, History, Presence, Reads, Revocations, Rooms, Signals,
    Subscription,
};
pub use error::StoreError;
pub use memory::{MemoryBackend, MemoryHub};
pub use redis::RedisBackend;
