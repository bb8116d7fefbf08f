//! The chat's domain: rooms, users, messages, the contract's error codes, the
//! Socket.IO wire events and the room token (JWT) that admits a user to a room.
//!
//! This crate does no I/O and has no async code, so both services and every
//! test can use it without pulling in a runtime.
//!
//! # Layout
//! - [`codes`]: the contract's error codes, one enum with `as_str()`.
//! - [`room`]: validated room names and the configured room list.
//! - [`user`]: user ids and display names.
//! - [`message`]: message ids, message text rules and the `Message` payload.
//! - [`events`]: names and payloads of the Socket.IO events.
//! - [`claims`]: the claims a room token carries.
//! - [`keys`]: Ed25519 PEM key files, JWKs (`jsonwebtoken`'s) with their
//!   thumbprint as `kid`, and the JWKS document as served.
//! - [`token`]: minting and verifying room tokens.

pub mod access;
pub mod claims;
pub mod codes;
pub mod events;
pub mod keys;
pub mod message;
pub mod room;
pub mod token;
pub mod user;

pub use claims::RoomClaims;
pub use codes::ErrorCode;
pub use message::{Message, MessageId, MessageText};
pub use room::{RoomList, RoomName};
pub use user::{DisplayName, UserId, UserRef};
