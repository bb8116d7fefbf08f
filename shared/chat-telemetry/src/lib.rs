//! Telemetry and process lifecycle shared by every service: logs, traces,
//! the W3C trace context carried inside fanned-out messages, and the
//! shutdown signal.
//!
//! # Layout
//! - [`logging`]: `tracing` to stderr (plain or `LOG_FORMAT=json`), plus the
//!   OpenTelemetry layer when the standard `OTEL_*` variables ask for it, and
//!   an error's cause chain as one log line.
//! - [`trace_context`]: W3C `traceparent` in and out of the current span.
//! - [`prometheus`]: the `/metrics` exporter, installed once per process.
//! - [`shutdown`]: a future that resolves on SIGTERM or Ctrl-C.

pub mod logging;
pub mod prometheus;
pub mod shutdown;
pub mod trace_context;

pub use logging::{Telemetry, cause_chain, init_tracing};
pub use prometheus::prometheus;
pub use shutdown::shutdown_signal;
