//! Everything the chat keeps in Redis, behind one key schema both services
//! share: presence, history, the fan-out of room events and session
//! revocations.
//!
//! Only this crate talks to Redis (or stands in for it in memory). Every decision that takes more than one
//! command (first in, last out, sweeping a dead replica, storing and
//! publishing a message) is one Lua script, so replicas never race.
//!
//! # Layout
//! - [`backend`]: the traits (`Presence`, `History`, `Reads`, `Signals`, `Fanout`, `Revocations`).
//! - [`redis`]: the Redis backend, for production.
//! - [`memory`]: the in-memory backend, for the single-process mode.
//! - [`schema`]: key and channel names, in one place.
//! - [`connection`]: building fred clients with reconnects and timeouts.
//! - [`error`]: the store's error type.
//! - [`scripts`]: the Lua scripts and their shared prelude.
//! - [`presence`]: the types of joining, leaving, heartbeats and sweeps.
//! - [`history`]: the types of storing and paging messages.
//! - [`events`]: a room event as published to every replica, and decoding it.

pub mod backend;
pub mod connection;
pub mod error;
pub mod events;
pub mod history;
pub mod memory;
pub mod presence;
pub mod redis;
pub mod schema;
pub mod scripts;

pub use backend::{
    Backend, Fanout, FanoutEvent, History, Presence, Reads, Revocations, Signals, Subscription,
};
pub use error::StoreError;
pub use memory::{MemoryBackend, MemoryHub};
pub use redis::RedisBackend;
