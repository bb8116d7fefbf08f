//! `RoomStore`: one gateway replica's handle on the shared room state.

use fred::prelude::*;
use fred::types::Value;
use fred::types::scripts::Script;
use serde_json::value::RawValue;

use crate::error::StoreError;
use crate::schema::PREFIX;

/// A gateway replica's view of Redis: presence, history and heartbeats,
/// always on behalf of one node id.
#[derive(Clone)]
pub struct RoomStore {
    pub(crate) client: Client,
    pub(crate) node: String,
}

impl std::fmt::Debug for RoomStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomStore")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl RoomStore {
    /// A store acting for replica `node` (unique per process run).
    pub fn new(client: Client, node: impl Into<String>) -> Self {
        Self {
            client,
            node: node.into(),
        }
    }

    /// The node id this store acts for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The underlying client, for health checks.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `script` with the key prefix as its first argument.
    pub(crate) async fn run(
        &self,
        operation: &'static str,
        script: &Script,
        args: Vec<Value>,
    ) -> Result<Value, StoreError> {
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Value::from(PREFIX));
        all.extend(args);
        script
            .evalsha_with_reload(&self.client, (), all)
            .await
            .map_err(StoreError::redis(operation))
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
            Value::String(s) => Ok(s.to_string()),
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
