//! `Gateway`: the state every handler shares, and the decisions behind each
//! contract event, one module per reason to change. The Socket.IO glue lives
//! in `handlers`; these modules know no extractors.
//!
//! - `joining`: the handshake, and a connection going live after `welcome`.
//! - `closing`: ending a connection, whatever ends it, and releasing its presence.
//! - `messages`: `message sent`, `message edit`/`message delete`, `read`, `typing`.
//! - `history`: `history` pages.
//! - `refresh`: `refresh`, a new token for a live connection.
//! - `flow`: a connection's inbox runner, budgets and the bytes owed to it.
//!
//! The fields are private: other modules reach what they need through the
//! accessors below.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chat_store::Backend;
use chat_store::presence::{self, Snapshot};
use chat_telemetry::trace_context::current_trace_id;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::TokenKeys;
use crate::config::GatewayConfig;
use crate::connection::Conn;
use crate::registry::Registry;

mod closing;
mod flow;
mod history;
mod joining;
mod messages;
mod refresh;

/// What a successful handshake leaves for the connect handler.
#[derive(Debug)]
pub(crate) struct Joined {
    /// The connection, pending.
    pub(crate) conn: Arc<Conn>,
    /// The room as it stood when the connection entered it.
    pub(crate) snapshot: Snapshot,
    /// Whether the client asked for what it missed since a message.
    pub(crate) since_given: bool,
}

/// A per-user budget of one kind of client event.
type Budget = DefaultKeyedRateLimiter<String>;

/// The shared state of one gateway replica.
pub(crate) struct Gateway {
    /// Settings.
    config: GatewayConfig,
    /// Token verification keys.
    keys: TokenKeys,
    /// Presence, history, fan-out and revocations (Redis, or memory in the single-process mode).
    backend: Arc<dyn Backend>,
    /// Local connections.
    registry: Registry,
    /// Work spawned on behalf of connections (event runners, presence releases),
    /// waited for on shutdown.
    tasks: TaskTracker,
    /// Cancelled when the replica starts to stop: background loops end.
    stopping: CancellationToken,
    sends: Budget,
    history_reads: Budget,
    refreshes: Budget,
    edits: Budget,
    reads: Budget,
    /// Keyed by user and room: spares Redis most keystrokes (the store's
    /// throttle decides across replicas).
    typings: Budget,
    /// Handshakes: a reconnect loop is refused before it costs Redis a join.
    handshakes: Budget,
    draining: AtomicBool,
    redis_ok: AtomicBool,
    /// Leaves that failed while Redis was away, retried by the heartbeat.
    failed_leaves: Arc<Mutex<Vec<presence::Connection>>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("node", &self.backend.node())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Assembles the state.
    pub(crate) fn new(
        config: GatewayConfig,
        keys: TokenKeys,
        backend: Arc<dyn Backend>,
        registry: Registry,
    ) -> Self {
        let budget = |per_second, burst| {
            RateLimiter::keyed(Quota::per_second(nonzero(per_second)).allow_burst(nonzero(burst)))
        };
        Self {
            sends: budget(config.rate_per_second, config.rate_burst),
            history_reads: budget(config.event_rate_per_second, config.event_rate_burst),
            edits: budget(config.rate_per_second, config.rate_burst),
            reads: budget(config.rate_per_second, config.rate_burst),
            refreshes: budget(config.event_rate_per_second, config.event_rate_burst),
            handshakes: budget(
                config.handshake_rate_per_second,
                config.handshake_rate_burst,
            ),
            typings: RateLimiter::keyed(
                Quota::with_period(typing_throttle() / 2)
                    .unwrap_or_else(|| Quota::per_second(nonzero(1))),
            ),
            config,
            keys,
            backend,
            registry,
            tasks: TaskTracker::new(),
            stopping: CancellationToken::new(),
            draining: AtomicBool::new(false),
            redis_ok: AtomicBool::new(false),
            failed_leaves: Arc::default(),
        }
    }

    /// Whether a connection's token expired more than the grace ago.
    pub(crate) fn expired(&self, conn: &Conn, now: u64) -> bool {
        conn.exp()
            .saturating_add(self.config.token.expiry_grace.as_secs())
            < now
    }

    /// Whether SIGTERM has started the drain.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts the drain: new handshakes get `server_busy`.
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Records whether Redis answered the last heartbeat.
    pub(crate) fn set_redis_ok(&self, ok: bool) {
        self.redis_ok.store(ok, Ordering::Relaxed);
    }

    /// Ready for traffic: Redis answers commands, the fan-out subscriber is
    /// connected, and the replica is not draining.
    pub(crate) fn is_ready(&self) -> bool {
        self.redis_ok.load(Ordering::Relaxed) && self.backend.is_subscribed() && !self.is_draining()
    }

    /// Forgets rate-limiter entries of users who went quiet.
    pub(crate) fn trim_rate_limiter(&self) {
        for budget in [
            &self.sends,
            &self.history_reads,
            &self.refreshes,
            &self.edits,
            &self.reads,
            &self.typings,
            &self.handshakes,
        ] {
            budget.retain_recent();
        }
    }

    /// Settings.
    pub(crate) fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Token verification keys.
    pub(crate) fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Presence, history, fan-out and revocations.
    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// This replica's connections.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Work spawned on behalf of connections, waited for on shutdown.
    pub(crate) fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Cancelled when the replica starts to stop.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }
}

/// Puts the span's trace id among its fields, so JSON log lines written
/// inside it carry it.
fn record_trace_id(span: &tracing::Span) {
    if let Some(trace_id) = span.in_scope(current_trace_id) {
        span.record("trace_id", trace_id);
    }
}

/// The contract's typing throttle.
fn typing_throttle() -> std::time::Duration {
    std::time::Duration::from_millis(chat_core::events::TYPING_THROTTLE_MS)
}

/// `n`, or 1 for a budget configured as 0.
fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN)
}
