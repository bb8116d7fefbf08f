//! Settings, read one way by every binary.
//!
//! Each binary's `main` builds one [`Env`] (reading `.env` once, then the
//! process environment) and hands it to the services' `Config`s, which read
//! every variable through it: name → typed value, a default when unset, a
//! range where one applies, and one [`SettingError`] that names the variable
//! and says what is wrong. Tests build an [`Env`] from a map instead.
//!
//! Settings both services read live here once ([`TokenSettings`],
//! [`RoomsSetting`]); Redis's are `chat_store::connection::RedisSettings`,
//! read through the same [`Env`]. A part a deployment may leave out (Redis,
//! key files, the identity provider in the single-process run) is read as an
//! `Option`; a service that needs it says so with [`SettingError::Missing`].
//!
//! # Layout
//! - [`error`]: the one error a bad or missing setting gives.
//! - [`env`]: the reader (`.env` and the process environment, or a map).
//! - [`shared`]: settings both services read (`JWT_*`, `TOKEN_EXPIRY_GRACE_S`, `ROOMS`).

pub mod env;
pub mod error;
pub mod shared;

pub use env::Env;
pub use error::SettingError;
pub use shared::{RoomsSetting, TokenSettings};
