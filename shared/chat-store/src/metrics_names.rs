//! The store's Prometheus metric names, in one place.

/// Seconds each Redis script took, by `operation` and `outcome`.
pub const COMMAND_SECONDS: &str = "chat_store_redis_command_seconds";
/// Reconnections of this process's Redis clients.
pub const RECONNECTS: &str = "chat_store_redis_reconnects_total";
