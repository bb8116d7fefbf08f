//! Telemetry and process lifecycle shared by both services: logging set-up
//! and the shutdown signal.
//!
//! # Layout
//! - [`logging`]: `tracing` subscriber, plain or JSON (`LOG_FORMAT=json`).
//! - [`shutdown`]: a future that resolves on SIGTERM or Ctrl-C.

pub mod logging;
pub mod shutdown;

pub use logging::init_tracing;
pub use shutdown::shutdown_signal;
