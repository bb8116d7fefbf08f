//! Everything the chat keeps in Redis, behind one key schema both services
//! share: presence, history, the fan-out of room events and session
//! revocations.
//!
//! Only this crate talks to Redis. Every decision that takes more than one
//! command (first in, last out, sweeping a dead replica, storing and
//! publishing a message) is one Lua script, so replicas never race.
//!
//! # Layout
//! - [`schema`]: key and channel names, in one place.
//! - [`connection`]: building fred clients with reconnects and timeouts.
//! - [`error`]: the store's error type.
//! - [`scripts`]: the Lua scripts and their shared prelude.
//! - [`rooms`]: `RoomStore`, a gateway replica's handle on Redis.
//! - [`presence`]: joining, leaving, heartbeats, sweeps and member counts.
//! - [`history`]: storing a message and paging back through a room.
//! - [`events`]: the room events published to every replica, and decoding them.
//! - [`revocation`]: ending the connections of a logged-out web session.

pub mod connection;
pub mod error;
pub mod events;
pub mod history;
pub mod presence;
pub mod revocation;
pub mod rooms;
pub mod schema;
pub mod scripts;

pub use error::StoreError;
pub use rooms::RoomStore;
