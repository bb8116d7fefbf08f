//! `Gateway`: the state every handler shares, and each client event of the
//! contract, one module per reason to change. A client event's module holds
//! both its handler (what socketioxide calls, reading the event) and the
//! decision behind it, and starts listening for it in its `listen`.
//!
//! Event handlers do not await: socketioxide calls them one at a time, in
//! the order the connection's events arrive, and each only queues its work in
//! the connection's inbox (`flow::in_order`, see [`crate::inbox`]), so one
//! connection's events are handled, acked and delivered in send order. At
//! `MAX_EVENTS_IN_FLIGHT` the connection is not read from until there is
//! room again; an event that was read anyway is refused at once with
//! `rate_limited`.
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

use tokio::sync::{Notify, watch};

use chat_store::Backend;
use chat_store::presence::{self, Snapshot};
use chat_telemetry::trace_context::current_trace_id;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::TokenKeys;
use crate::config::GatewayConfig;
use crate::connection::Conn;
use crate::exits::ExitSchedule;
use crate::following::Following;
use crate::registry::Registry;
use crate::sockets::Socket;

mod access;
mod closing;
mod flow;
mod history;
mod joining;
mod messages;
mod refresh;

/// The gateway, as a handler extracts it.
pub(crate) type Shared = socketioxide::extract::State<Arc<Gateway>>;

/// Listens for every client event of the contract on a new connection.
pub(crate) fn listen(socket: &Socket) {
    messages::listen(socket);
    history::listen(socket);
    refresh::listen(socket);
}

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

/// A per-user budget of client events, keyed by the event's name and the
/// user: each event has a budget of its own, of its class's size.
type Budget = DefaultKeyedRateLimiter<(&'static str, String)>;

/// Which budget a client event draws on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BudgetClass {
    /// What writes to a room (`RATE_PER_SECOND`, `RATE_BURST`).
    Writes,
    /// Everything else (`EVENT_RATE_PER_SECOND`, `EVENT_RATE_BURST`).
    Events,
}

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
    /// The rooms this replica follows: subscribed, and listed in Redis.
    following: Arc<Following>,
    /// The `user exited` this replica owes.
    exits: Arc<ExitSchedule>,
    /// Set once a heartbeat of this replica reached Redis.
    registered: watch::Sender<bool>,
    /// Set when presence is to be checked room by room (after a resubscription).
    presence_check_due: AtomicBool,
    presence_check: Notify,
    /// Work spawned on behalf of connections (event runners, presence releases),
    /// waited for on shutdown.
    tasks: TaskTracker,
    /// Cancelled when the replica starts to stop: background loops end.
    stopping: CancellationToken,
    /// Writes to a room, per event and user.
    writes: Budget,
    /// Other client events, per event and user.
    events: Budget,
    /// Keyed by user and room: spares Redis most keystrokes (the store's
    /// throttle decides across replicas).
    typings: DefaultKeyedRateLimiter<String>,
    /// Handshakes: a reconnect loop is refused before it costs Redis a join.
    handshakes: DefaultKeyedRateLimiter<String>,
    draining: AtomicBool,
    redis_ok: AtomicBool,
    /// Leaves that failed while Redis was away, retried by the heartbeat,
    /// each with whether it ends its connection's hold on the room.
    failed_leaves: Arc<Mutex<Vec<(presence::Connection, bool)>>>,
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
        let quota =
            |per_second, burst| Quota::per_second(nonzero(per_second)).allow_burst(nonzero(burst));
        let (registered, heard) = watch::channel(false);
        let following = Arc::new(Following::new(backend.clone(), heard, config.ack_timeout));
        Self {
            following,
            exits: Arc::new(ExitSchedule::new(config.exit_grace)),
            registered,
            presence_check_due: AtomicBool::new(false),
            presence_check: Notify::new(),
            writes: RateLimiter::keyed(quota(config.rate_per_second, config.rate_burst)),
            events: RateLimiter::keyed(quota(
                config.event_rate_per_second,
                config.event_rate_burst,
            )),
            handshakes: RateLimiter::keyed(quota(
                config.handshake_rate_per_second,
                config.handshake_rate_burst,
            )),
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

    /// Records that a heartbeat of this replica reached Redis: it may join rooms.
    pub(crate) fn set_registered(&self) {
        self.registered.send_replace(true);
    }

    /// Asks the heartbeat to check, room by room, that Redis still holds this
    /// replica's presence (after a resubscription: Redis may have restarted
    /// empty).
    pub(crate) fn request_presence_check(&self) {
        self.presence_check_due.store(true, Ordering::Relaxed);
        self.presence_check.notify_one();
    }

    /// Waits until a presence check is asked for.
    pub(crate) async fn presence_check_requested(&self) {
        self.presence_check.notified().await;
    }

    /// Whether a presence check is due; it is no longer once this said so.
    pub(crate) fn take_presence_check(&self) -> bool {
        self.presence_check_due.swap(false, Ordering::Relaxed)
    }

    /// Ready for traffic: Redis answers commands, the fan-out subscriber is
    /// connected, and the replica is not draining.
    pub(crate) fn is_ready(&self) -> bool {
        self.redis_ok.load(Ordering::Relaxed) && self.backend.is_subscribed() && !self.is_draining()
    }

    /// Forgets rate-limiter entries of users who went quiet.
    pub(crate) fn trim_rate_limiter(&self) {
        self.writes.retain_recent();
        self.events.retain_recent();
        self.typings.retain_recent();
        self.handshakes.retain_recent();
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

    /// The rooms this replica follows.
    pub(crate) fn following(&self) -> &Arc<Following> {
        &self.following
    }

    /// The `user exited` this replica owes.
    pub(crate) fn exits(&self) -> &Arc<ExitSchedule> {
        &self.exits
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
