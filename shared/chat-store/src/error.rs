//! The store's error type.

use thiserror::Error;

/// A store operation that failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// Redis could not be reached, timed out or refused the command.
    #[error("redis {operation} failed: {source}")]
    Redis {
        /// What was being done.
        operation: &'static str,
        /// What fred said.
        #[source]
        source: fred::error::Error,
    },
    /// Redis answered something this code does not understand.
    #[error("unexpected reply to {operation}: {detail}")]
    Reply {
        /// What was being done.
        operation: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// The Redis replicas the deployment asks for (`REDIS_WAIT_REPLICAS`) did
    /// not confirm in time that they hold what was written; it stays written.
    #[error("Redis replicas did not confirm the write: {0}")]
    NotReplicated(String),
    /// The URL or settings are not usable.
    #[error("redis settings: {0}")]
    Config(String),
}

impl StoreError {
    /// Wraps a fred error with what was being done.
    pub fn redis(operation: &'static str) -> impl FnOnce(fred::error::Error) -> Self {
        move |source| Self::Redis { operation, source }
    }

    /// A reply of the wrong shape.
    pub fn reply(operation: &'static str, detail: impl Into<String>) -> Self {
        Self::Reply {
            operation,
            detail: detail.into(),
        }
    }
}
