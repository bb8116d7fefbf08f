//! Names of the gateway's Prometheus metrics, in one place.

/// Handshakes, by `outcome` (`ok` or the refusal code).
pub(crate) const HANDSHAKES: &str = "chat_gateway_handshakes_total";
/// `message sent` acks, by `outcome` (`ok` or the error code).
pub(crate) const ACKS: &str = "chat_gateway_acks_total";
/// Room events delivered from Redis to this replica.
pub(crate) const EVENTS_IN: &str = "chat_gateway_room_events_total";
/// Connections closed by the server, by `reason`.
pub(crate) const SESSIONS_ENDED: &str = "chat_gateway_sessions_ended_total";
/// Connections open on this replica.
pub(crate) const CONNECTIONS: &str = "chat_gateway_connections";
/// Presence sweeps run, and what they removed.
pub(crate) const SWEEP_CONNECTIONS: &str = "chat_gateway_swept_connections_total";
/// Users announced as exited by sweeps.
pub(crate) const SWEEP_EXITS: &str = "chat_gateway_swept_exits_total";
/// Presence restorations after Redis lost data.
pub(crate) const RESTORES: &str = "chat_gateway_presence_restores_total";
/// Messages written to this replica's connections.
pub(crate) const DELIVERIES: &str = "chat_gateway_deliveries_total";
/// Seconds from a message's storage to its delivery on this replica.
pub(crate) const FANOUT_LATENCY: &str = "chat_gateway_fanout_latency_seconds";
/// Messages read back from history after the fan-out subscription was lost.
pub(crate) const READ_BACK: &str = "chat_gateway_read_back_total";
