//! The Redis backend's handle, on Redis 7 or newer, shared by every
//! replica: one Redis, a primary with replicas under Sentinel, or a Redis
//! Cluster (whatever `REDIS_URL` names; each room's keys share one hash
//! slot, see [`crate::schema`]). Each concept's operations on it are in the
//! concept's module ([`crate::presence`], [`crate::history`], …); here is
//! what they share:
//!
//! - [`RedisBackend`]: the clients, and running a script with its metrics.
//! - [`replication`]: waiting for Redis replicas (`REDIS_WAIT_REPLICAS`) on a
//!   client of its own.
//! - [`reply`]: reading the scripts' replies: values, or data as JSON.

pub(crate) mod replication;
pub(crate) mod reply;

use std::sync::Arc;
use std::time::Duration;

use chat_core::RoomName;
use fred::clients::SubscriberClient;
use fred::interfaces::ClusterInterface;
use fred::prelude::*;
use fred::types::Value;
use fred::types::scripts::Script;
use tracing::Instrument;

use crate::connection::RedisSettings;
use crate::error::StoreError;
use crate::node_id::NodeId;
use crate::schema;

/// Room → the shard its channel was subscribed on (on a cluster; `None` on a
/// single Redis, or before the cluster's slot map is known).
pub(crate) type Followed =
    Arc<std::sync::Mutex<std::collections::HashMap<RoomName, Option<fred::types::config::Server>>>>;
use replication::ReplicaWait;

/// A service's handle on Redis, acting for one node id (a gateway replica,
/// or the web service).
#[derive(Clone)]
pub struct RedisBackend {
    pub(crate) client: Client,
    pub(crate) subscriber: Option<SubscriberClient>,
    pub(crate) node: NodeId,
    /// The rooms whose channels the subscriber listens to, each with the
    /// shard it was subscribed on (on a cluster), shared with the subscription.
    pub(crate) followed: Followed,
    /// Waits for the replicas that must hold each write (`REDIS_WAIT_REPLICAS`),
    /// when there are any.
    pub(crate) replicas: Option<Arc<ReplicaWait>>,
    command_timeout: Duration,
    /// On a cluster: every room's shard subscription is where its slot is.
    pub(crate) shards_ok: Arc<std::sync::atomic::AtomicBool>,
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
            node: NodeId::new(node),
            followed: Followed::default(),
            replicas: None,
            command_timeout: Duration::from_secs(2),
            shards_ok: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    /// Connects to `settings.url` (without waiting for Redis) with a command
    /// client, when `subscribe` is set a subscriber, and when
    /// `settings.wait_replicas` is above 0 a client that only waits for
    /// replicas (each `WAIT` for at most half the command timeout).
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
        let mut backend = Self::new(settings.command_client()?, subscriber, node);
        backend.command_timeout = settings.command_timeout;
        if settings.wait_replicas > 0 {
            backend.replicas = Some(Arc::new(ReplicaWait::new(
                settings.command_client()?,
                settings.wait_replicas,
                settings.command_timeout / 2,
            )));
        }
        Ok(backend)
    }

    /// The underlying client, for health checks.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs the room script `script` on `room`'s keys (all in its hash slot),
    /// with the room, its channel and this node before `args`, in a span and
    /// timed.
    pub(crate) async fn run(
        &self,
        operation: &'static str,
        script: &Script,
        room: &RoomName,
        args: Vec<Value>,
    ) -> Result<Value, StoreError> {
        self.run_with_keys(operation, script, room, Vec::new(), args)
            .await
    }

    /// [`RedisBackend::run`] with the script's own keys (each in `room`'s
    /// slot) declared after the room's, from `KEYS[20]`.
    pub(crate) async fn run_with_keys(
        &self,
        operation: &'static str,
        script: &Script,
        room: &RoomName,
        extra_keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<Value, StoreError> {
        // fred checks a script's keys against the cluster's slot map before
        // sending it, and fails at once while it has none (not connected
        // yet): wait for the connection as a single Redis's commands would.
        if self.client.is_clustered() && self.client.cached_cluster_state().is_none() {
            let _ =
                tokio::time::timeout(self.command_timeout, self.client.wait_for_connect()).await;
        }
        let node = self.node.current();
        let mut keys = schema::room_keys(room, &node);
        keys.extend(extra_keys);
        let mut all = Vec::with_capacity(args.len() + 3);
        all.push(Value::from(room.as_str()));
        all.push(Value::from(schema::room_channel(room)));
        all.push(Value::from(&*node));
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
            .evalsha_with_reload(&self.client, keys, all)
            .instrument(span)
            .await
            .map_err(StoreError::redis(operation));
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::histogram!(crate::metrics_names::COMMAND_SECONDS, "operation" => operation, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }
}
