//! chat-telemetry
