//! `chat-dev`: the whole product in one process, for trying it on one
//! machine with nothing installed but Rust. The web service and the gateway
//! share one port; presence, history, fan-out and sessions live in memory
//! (the same backend traits the Redis implementation passes); and, unless
//! `OIDC_ISSUER` is set, a development sign-in asks only for a display name.
//!
//! The development sign-in exists only in this crate, so the production
//! binaries (`chat-web`, `chat-gateway`) cannot switch it on, and this
//! binary refuses to listen anywhere but loopback while it is on.
//!
//! # Layout
//! - [`settings`]: what this mode reads from the environment.
//! - [`dev_login`]: the development sign-in routes (the form's page is a
//!   template that `chat-web`, the one crate with askama, renders).
//! - [`startup`]: wiring both services onto one router and one port.

pub mod dev_login;
pub mod settings;
pub mod startup;

pub use settings::DevSettings;
pub use startup::DevApp;
