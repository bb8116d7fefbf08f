//! `chat-gateway`: a stateless Socket.IO replica. It checks the room token
//! on the handshake, joins the connection to its room, and fans room events
//! out through Redis so that any number of replicas behave as one server.
//!
//! # Layout
//! - [`config`]: the settings, from environment variables.
//! - [`auth`]: the room-token keys (PEM file or JWKS) and verification.
//! - [`registry`]: this replica's connections per room and local delivery.
//! - [`sockets`]: the socketioxide adapter, and events encoded once per room.
//! - [`state`]: `Gateway`, the decisions behind each contract event.
//! - [`handlers`]: the Socket.IO middleware and event handlers.
//! - [`fanout`]: the Redis subscriber that feeds the registry.
//! - [`maintenance`]: heartbeat, sweeps, token expiry, slow consumers.
//! - [`http`]: health, readiness, metrics and the `Origin` check.
//! - [`metrics_names`]: the Prometheus metric names.
//! - [`startup`]: building the app, running it, draining it.

pub mod auth;
pub mod config;
pub mod fanout;
pub mod handlers;
pub mod http;
pub mod maintenance;
pub mod metrics_names;
pub mod registry;
pub mod sockets;
pub mod startup;
pub mod state;

pub use config::GatewayConfig;
pub use startup::{App, Realtime, Running};
