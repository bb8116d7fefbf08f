//! The Redis backend: presence, history, fan-out and revocations on one
//! Redis (7 or newer), shared by every replica.
//!
//! - [`presence`]: joining, leaving, heartbeats and sweeps (Lua scripts).
//! - [`history`]: storing and paging messages (Lua scripts).
//! - [`fanout`]: the subscriber that turns channel messages into events.
//! - [`revocation`]: logged-out web sessions.

mod fanout;
mod history;
mod presence;
mod revocation;

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::Value;
use fred::types::scripts::Script;
use serde_json::value::RawValue;
use tracing::Instrument;

use crate::backend::Backend;
use crate::connection::RedisSettings;
use crate::error::StoreError;
use crate::schema::PREFIX;

/// Seconds each Redis script took, by `operation` and `outcome`.
pub const COMMAND_SECONDS: &str = "chat_store_redis_command_seconds";
/// Reconnections of this process's Redis clients.
pub const RECONNECTS: &str = "chat_store_redis_reconnects_total";

/// A service's handle on Redis, acting for one node id (a gateway replica,
/// or the web service).
#[derive(Clone)]
pub struct RedisBackend {
    pub(crate) client: Client,
    pub(crate) subscriber: Option<SubscriberClient>,
    pub(crate) node: String,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl RedisBackend {
    /// A backend acting for `node` (unique per process run). Without a
    /// subscriber it can do everything but [`Fanout::subscribe`](crate::backend::Fanout::subscribe).
    pub fn new(
        client: Client,
        subscriber: Option<SubscriberClient>,
        node: impl Into<String>,
    ) -> Self {
        Self {
            client,
            subscriber,
            node: node.into(),
        }
    }

    /// Connects to `settings.url` (without waiting for Redis) with a command
    /// client and, when `subscribe` is set, a subscriber.
    pub fn connect(
        settings: &RedisSettings,
        subscribe: bool,
        node: impl Into<String>,
    ) -> Result<Self, StoreError> {
        let subscriber = if subscribe {
            Some(settings.subscriber_client()?)
        } else {
            None
        };
        Ok(Self::new(settings.command_client()?, subscriber, node))
    }

    /// The underlying client, for health checks.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `script` with the key prefix as its first argument, in a span
    /// and timed.
    pub(crate) async fn run(
        &self,
        operation: &'static str,
        script: &Script,
        args: Vec<Value>,
    ) -> Result<Value, StoreError> {
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Value::from(PREFIX));
        all.extend(args);
        let span = tracing::info_span!(
            "redis",
            otel.name = operation,
            otel.kind = "client",
            db.system.name = "redis",
            db.operation.name = "EVALSHA",
        );
        let started = std::time::Instant::now();
        let result = script
            .evalsha_with_reload(&self.client, (), all)
            .instrument(span)
            .await
            .map_err(StoreError::redis(operation));
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!(COMMAND_SECONDS, "operation" => operation, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }
}

/// Reply helpers: the scripts answer nested arrays of strings and integers.
pub(crate) mod reply {
    use super::*;

    pub(crate) fn array(operation: &'static str, value: Value) -> Result<Vec<Value>, StoreError> {
        match value {
            Value::Array(items) => Ok(items),
            Value::Null => Ok(Vec::new()),
            other => Err(StoreError::reply(
                operation,
                format!("expected an array, got {other:?}"),
            )),
        }
    }

    pub(crate) fn string(operation: &'static str, value: Value) -> Result<String, StoreError> {
        match value {
            // `&str` to `String` by copy: `to_string` would go through `Display`.
            Value::String(s) => Ok(String::from(&*s)),
            Value::Bytes(b) => String::from_utf8(b.to_vec())
                .map_err(|e| StoreError::reply(operation, e.to_string())),
            Value::Integer(i) => Ok(i.to_string()),
            other => Err(StoreError::reply(
                operation,
                format!("expected a string, got {other:?}"),
            )),
        }
    }

    pub(crate) fn integer(operation: &'static str, value: Value) -> Result<i64, StoreError> {
        match value {
            Value::Integer(i) => Ok(i),
            other => string(operation, other)?
                .parse()
                .map_err(|e: std::num::ParseIntError| StoreError::reply(operation, e.to_string())),
        }
    }

    pub(crate) fn messages(
        operation: &'static str,
        value: Value,
    ) -> Result<Vec<Box<RawValue>>, StoreError> {
        array(operation, value)?
            .into_iter()
            .map(|v| {
                let json = string(operation, v)?;
                RawValue::from_string(json).map_err(|e| StoreError::reply(operation, e.to_string()))
            })
            .collect()
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn ping(&self) -> Result<(), StoreError> {
        crate::connection::ping(&self.client).await
    }
}
