//! `chat-gateway`: a stateless Socket.IO replica. It checks the room token
//! on the handshake, joins the connection to its room, and fans room events
//! out through Redis so that any number of replicas behave as one server.
//!
//! # Layout
//! - [`config`]: the typed settings, read through `chat_settings::Env` (shared
//!   `TokenSettings`, `ROOMS`, `RedisSettings`; optional Redis and keys).
//! - [`auth`]: the room-token keys (PEM file or JWKS) and verification.
//! - [`connection`]: one connection: its identity, rooms and life (pending → live → closing → gone).
//! - [`deadline`]: one ack deadline per client event, set on arrival.
//! - [`inbox`]: a connection's client events, one at a time in arrival order.
//! - [`registry`]: this replica's connections per room, their limits, and local delivery.
//! - [`following`]: the rooms this replica follows (subscribed, listed in Redis) while it holds them.
//! - [`exits`]: the `user exited` this replica owes, announced when due.
//! - [`sockets`]: the socketioxide adapter, and events encoded once per room.
//! - [`state`]: `Gateway`, and each client event's handler and decision, one
//!   submodule per reason to change (joining, closing, messages, history,
//!   refresh, flow control).
//! - [`handlers`]: a connection's handshake, `welcome` and disconnect.
//! - [`fanout`]: the Redis subscriber that feeds the registry.
//! - [`maintenance`]: heartbeat, sweeps of dead replicas, due exits, token expiry, JWKS refresh.
//! - [`http`]: health, readiness, metrics and the `Origin` check.
//! - [`server`]: the HTTP/1.1 server: timeouts, connection cap, upgrades.
//! - [`wire`]: a client's TCP connection: bytes owed to it, and a cut switch.
//! - [`metrics_names`]: the Prometheus metric names.
//! - [`startup`]: building the app, running it, draining it.

mod auth;
mod config;
mod connection;
mod deadline;
mod exits;
mod fanout;
mod following;
mod handlers;
mod http;
mod inbox;
mod maintenance;
mod metrics_names;
mod registry;
mod server;
mod sockets;
mod startup;
mod state;
mod wire;

pub use auth::TokenKeys;
pub use config::GatewayConfig;
pub use server::{Served, serve};
pub use startup::{App, Realtime, Running};
