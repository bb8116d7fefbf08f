//! `Gateway`: the state every handler shares, and the decisions behind each
//! contract event (handshake, send, history, refresh, ending a connection).
//! The Socket.IO glue lives in `handlers`; this module knows no extractors.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chat_core::events::{
    DoneAck, HistoryAck, HistoryRequest, RefreshAck, SESSION_ENDED, SendAck, SessionEnded,
};
use chat_core::{ErrorCode, MessageId, MessageText, UserRef};
use chat_store::Backend;
use chat_store::history::{ChangeOutcome, MessageChange, NewMessage, Replicated};
use chat_store::presence::{self, JoinOutcome, JoinRequest, Snapshot};
use chat_telemetry::trace_context::{current_trace_id, current_traceparent};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::value::RawValue;
use socketioxide::TransportType;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use tracing::field::Empty;

use crate::auth::{TokenKeys, now_s};
use crate::config::GatewayConfig;
use crate::connection::{Closing, Conn, Connection, Ending, State};
use crate::deadline::{Deadline, Late};
use crate::inbox::Job;
use crate::metrics_names as m;
use crate::registry::Registry;
use crate::sockets::Socket;
use crate::wire::Wire;

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
    pub(crate) config: GatewayConfig,
    /// Token verification keys.
    pub(crate) keys: TokenKeys,
    /// Presence, history, fan-out and revocations (Redis, or memory in the single-process mode).
    pub(crate) backend: Arc<dyn Backend>,
    /// Local connections.
    pub(crate) registry: Registry,
    /// Work spawned on behalf of connections (event runners, presence releases),
    /// waited for on shutdown.
    pub(crate) tasks: TaskTracker,
    /// Cancelled when the replica starts to stop: background loops end.
    pub(crate) stopping: CancellationToken,
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

    /// Checks a handshake and, if it passes, enters the room in Redis and
    /// starts buffering the room's events for the connection.
    pub(crate) async fn handshake(
        self: &Arc<Self>,
        socket: &Socket,
        token: Option<String>,
        since: Option<String>,
    ) -> Result<Joined, ErrorCode> {
        // Never a token in a span or log: only what the handshake decided.
        let span = tracing::info_span!(
            "handshake",
            otel.kind = "server",
            sid = %socket.id,
            room = Empty,
            user.id = Empty,
            outcome = Empty,
            trace_id = Empty,
        );
        record_trace_id(&span);
        let outcome = self
            .try_handshake(socket, token, since)
            .instrument(span.clone())
            .await;
        let label = outcome
            .as_ref()
            .map(|_| "ok")
            .unwrap_or_else(|e| e.as_str());
        span.record("outcome", label);
        if let Ok(joined) = &outcome {
            span.record("room", joined.conn.room.as_str());
            span.record("user.id", joined.conn.user.id.as_str());
        }
        metrics::counter!(m::HANDSHAKES, "outcome" => label).increment(1);
        outcome
    }

    async fn try_handshake(
        self: &Arc<Self>,
        socket: &Socket,
        token: Option<String>,
        since: Option<String>,
    ) -> Result<Joined, ErrorCode> {
        if self.is_draining() {
            return Err(ErrorCode::ServerBusy);
        }
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or(ErrorCode::TokenMissing)?;
        let claims = self.keys.verify(&token, now_s()).await.map_err(|e| {
            // Why, for the operator; never the token itself.
            tracing::info!(code = %e.code(), reason = %e, "handshake refused");
            e.code()
        })?;
        let room = self
            .config
            .rooms
            .find(&claims.room)
            .cloned()
            .ok_or(ErrorCode::RoomUnknown)?;
        if self.handshakes.check_key(&claims.sub).is_err() {
            return Err(ErrorCode::RateLimited);
        }
        let since = since.and_then(|s| s.parse::<MessageId>().ok());
        let record = presence::Connection {
            room,
            conn: socket.id.to_string(),
            user: UserRef {
                id: claims.sub,
                name: claims.name,
            },
        };
        // Bytes are counted on the TCP connection of a WebSocket opened
        // directly; a session that began as long-polling has no one connection.
        let wire = (socket.transport_type() == TransportType::Websocket)
            .then(|| socket.req_parts().extensions.get::<Wire>().cloned())
            .flatten();
        let conn = Arc::new(Conn::new(record, claims.sid, claims.exp, wire));
        let handle = Connection {
            socket: socket.clone(),
            conn: conn.clone(),
        };
        // From here a revocation or the drain finds the connection in the
        // registry, even before it is live.
        self.registry.admit(handle.clone())?;
        let session = conn.session();
        let record = conn.record();
        let request = JoinRequest {
            connection: &record,
            session: session.as_deref(),
            since,
            history_limit: chat_core::events::HISTORY_PAGE_MAX,
        };
        let outcome =
            tokio::time::timeout(self.config.ack_timeout, self.backend.join(request, false)).await;
        match outcome {
            Ok(Ok(JoinOutcome::Joined(snapshot))) => {
                if conn.state() != State::Pending {
                    // Ended (revoked, drained) while the join was on its way:
                    // its release may have reached Redis first. Release again
                    // (releasing is idempotent); going live then tells the client.
                    self.tasks.spawn(self.release(record));
                }
                Ok(Joined {
                    conn,
                    snapshot,
                    since_given: since.is_some(),
                })
            }
            Ok(Ok(JoinOutcome::Revoked)) => {
                // Nothing was registered in Redis: only the local slot to give back.
                self.close(&handle, Ending::Refused);
                Err(ErrorCode::TokenRevoked)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "handshake could not join: Redis unavailable");
                // A join whose reply was lost may still have registered.
                self.close(&handle, Ending::NeverConnected);
                Err(ErrorCode::ServerBusy)
            }
            Err(_) => {
                tracing::warn!("handshake could not join: Redis timed out");
                self.close(&handle, Ending::NeverConnected);
                Err(ErrorCode::ServerBusy)
            }
        }
    }

    /// Ends a connection, whatever ends it: it leaves the registry (the only
    /// way out of it), its presence in each room it follows is released
    /// (once, however many paths race to end it; never for a refused
    /// handshake, which presence never recorded), and,
    /// when the server ends a live connection, the client is told
    /// `session ended` and the socket is closed at once. A pending connection
    /// is told when its handshake would have completed ([`Gateway::go_live`]).
    pub(crate) fn close(&self, handle: &Connection, ending: Ending) {
        let Closing::Started { was } = handle.conn.begin_close(ending) else {
            return;
        };
        self.registry.remove(handle);
        if let Ending::Server(reason) = ending {
            metrics::counter!(m::SESSIONS_ENDED, "reason" => reason.as_str()).increment(1);
            if was == State::Live {
                say_goodbye(handle, Some(reason));
            }
        }
        if ending != Ending::Refused {
            for room in handle.conn.rooms() {
                let release = self.release(handle.conn.record_in(&room));
                self.tasks.spawn(release);
            }
        }
    }

    /// After `welcome` was written: makes the connection live, or closes it if
    /// it was ended meanwhile (revoked, drained, too slow for its buffered
    /// events) or its token expired during the handshake.
    pub(crate) fn go_live(&self, handle: &Connection, seq: u64) {
        let activated = self
            .registry
            .activate(&handle.conn.room, handle.socket.id, seq);
        match handle.conn.go_live() {
            Err(goodbye) => say_goodbye(handle, goodbye),
            Ok(()) if !activated => {
                // Its buffered events did not fit.
                self.close(handle, Ending::Server(ErrorCode::SlowConsumer));
            }
            Ok(()) if self.expired(&handle.conn, now_s()) => {
                self.close(handle, Ending::Server(ErrorCode::TokenExpired));
            }
            Ok(()) => {}
        }
    }

    /// Whether a connection's token expired more than the grace ago.
    pub(crate) fn expired(&self, conn: &Conn, now: u64) -> bool {
        conn.exp()
            .saturating_add(self.config.token.expiry_grace.as_secs())
            < now
    }

    /// Whether a connection already has `MAX_EVENTS_IN_FLIGHT` client events
    /// received and not yet answered.
    pub(crate) fn is_saturated(&self, conn: &Conn) -> bool {
        conn.inbox.in_flight() >= self.config.max_events_in_flight
    }

    /// Queues a client event's `job` behind the connection's earlier events
    /// (order per connection), starting the connection's runner if it is
    /// idle. A connection that reaches `MAX_EVENTS_IN_FLIGHT` is not read
    /// from until its runner has made room again.
    pub(crate) fn submit(self: &Arc<Self>, conn: &Arc<Conn>, job: Job) {
        let start = conn.inbox.push(job);
        if self.is_saturated(conn)
            && let Some(wire) = &conn.wire
        {
            wire.pause();
        }
        if start {
            let gateway = self.clone();
            let conn = conn.clone();
            self.tasks.spawn(async move {
                while let Some(job) = conn.inbox.next() {
                    if !gateway.is_saturated(&conn)
                        && let Some(wire) = &conn.wire
                    {
                        wire.resume();
                    }
                    job.await;
                }
                if let Some(wire) = &conn.wire {
                    wire.resume();
                }
            });
        }
    }

    /// Ends, with `token_revoked`, the connections of whichever of their web
    /// sessions were logged out: after the subscription that carries logouts
    /// was down, a logout may have been missed. Returns how many sessions
    /// were revoked, or the error that kept Redis from saying.
    pub(crate) async fn recheck_revocations(&self) -> Result<usize, chat_store::StoreError> {
        let handles = self.registry.all();
        let sessions: BTreeSet<Arc<str>> =
            handles.iter().filter_map(|h| h.conn.session()).collect();
        let sessions: Vec<String> = sessions.iter().map(|s| s.to_string()).collect();
        let revoked = self.backend.revoked_among(&sessions).await?;
        for handle in handles {
            if handle
                .conn
                .session()
                .is_some_and(|s| revoked.iter().any(|r| **r == *s))
            {
                self.close(&handle, Ending::Server(ErrorCode::TokenRevoked));
            }
        }
        Ok(revoked.len())
    }

    /// Releases a connection's presence; retried by the heartbeat if Redis is away.
    fn release(&self, record: presence::Connection) -> impl Future<Output = ()> + Send + 'static {
        let backend = self.backend.clone();
        let grace = self.config.exit_grace;
        let failed = self.failed_leaves.clone();
        async move {
            if let Err(e) = backend.leave(&record, grace).await {
                tracing::warn!(error = %e, conn = %record.conn, "leave failed; will retry");
                failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(record);
            }
        }
    }

    /// Retries the leaves that failed while Redis was away.
    pub(crate) async fn retry_failed_leaves(&self) {
        let pending =
            std::mem::take(&mut *self.failed_leaves.lock().unwrap_or_else(|e| e.into_inner()));
        for record in pending {
            self.release(record).await;
        }
    }

    /// Handles `message sent`, answering by `deadline`. Whatever ends it (an
    /// answer, or the deadline passing) is counted and recorded on its span.
    pub(crate) async fn send_message(
        &self,
        conn: &Conn,
        text: Result<String, ErrorCode>,
        deadline: Deadline,
    ) -> SendAck {
        let span = tracing::info_span!(
            "message sent",
            otel.kind = "server",
            room = conn.room.as_str(),
            user.id = conn.user.id.as_str(),
            message.id = Empty,
            outcome = Empty,
            trace_id = Empty,
        );
        record_trace_id(&span);
        let ack = deadline
            .within(self.try_send(conn, text))
            .instrument(span.clone())
            .await
            .unwrap_or_else(|Late| SendAck::err(ErrorCode::Unavailable));
        let label = match &ack {
            SendAck::Ok { id, .. } => {
                span.record("message.id", id.to_string());
                "ok"
            }
            SendAck::Err { error, .. } => error.as_str(),
        };
        span.record("outcome", label);
        metrics::counter!(m::ACKS, "outcome" => label).increment(1);
        ack
    }

    async fn try_send(&self, conn: &Conn, text: Result<String, ErrorCode>) -> SendAck {
        let text = match text.and_then(|t| MessageText::parse(t, self.config.max_message_chars)) {
            Ok(text) => text,
            Err(code) => return SendAck::err(code),
        };
        if over_budget(&self.sends, conn) {
            return SendAck::err(ErrorCode::RateLimited);
        }
        // A message whose replicas did not confirm it in time was stored and
        // delivered all the same: the same text sent next is that message,
        // sent again because its ack said `unavailable`. Its replicas are
        // waited for again; it is not stored twice.
        let id = match conn.resend_of(text.as_str()) {
            Some(id) => id,
            None => match self.store(conn, &text).await {
                Ok(id) => id,
                Err(refusal) => return refusal,
            },
        };
        self.ack_when_replicated(conn, id).await
    }

    /// Stores and publishes a message of `conn`.
    async fn store(&self, conn: &Conn, text: &MessageText) -> Result<MessageId, SendAck> {
        let room = &conn.room;
        // The trace travels with the message, so every replica that
        // delivers it joins this trace.
        let traceparent = current_traceparent();
        let message = NewMessage {
            room,
            user: &conn.user,
            text,
            floor: self.registry.last_id(room).max(conn.last_sent()),
            trace: traceparent.as_deref(),
        };
        match self.backend.send(message).await {
            Ok(message_id) => {
                conn.sent(message_id);
                if self.config.waits_for_replicas() {
                    // Before the wait, which the ack's deadline may cut short.
                    conn.awaiting_replicas(message_id, text.as_str());
                }
                Ok(message_id)
            }
            Err(e) => {
                tracing::warn!(error = %e, "message not stored");
                Err(SendAck::err(ErrorCode::Unavailable))
            }
        }
    }

    /// `{ ok: true, id }` once the Redis replicas hold message `id` (at once
    /// without `REDIS_WAIT_REPLICAS`); `unavailable` when they do not in
    /// time (the event's deadline). The message stays stored and delivered
    /// either way: `ok` promises that it survives a failover, which only the
    /// replicas can.
    async fn ack_when_replicated(&self, conn: &Conn, id: MessageId) -> SendAck {
        match self.backend.replicated(&conn.room, Some(id)).await {
            Ok(Replicated::Held) => {
                conn.settled(id);
                SendAck::ok(id)
            }
            Ok(Replicated::Lost) => {
                conn.settled(id);
                tracing::warn!(message.id = %id, "message lost with a failed Redis primary; sent again, it is stored anew");
                SendAck::err(ErrorCode::Unavailable)
            }
            Err(e) => {
                tracing::warn!(error = %e, message.id = %id, "message stored, not confirmed by the Redis replicas");
                SendAck::err(ErrorCode::Unavailable)
            }
        }
    }

    /// Handles `history`, answering by `deadline`; the ack comes serialized,
    /// so what it adds to the bytes waiting for the client can be counted.
    pub(crate) async fn history(
        &self,
        conn: &Conn,
        request: Result<HistoryRequest, ErrorCode>,
        deadline: Deadline,
    ) -> Box<RawValue> {
        let ack = deadline
            .within(self.read_history(conn, request))
            .await
            .unwrap_or_else(|Late| HistoryAck::err(ErrorCode::Unavailable));
        serde_json::value::to_raw_value(&ack)
            .unwrap_or_else(|_| unreachable!("a history ack always serializes"))
    }

    async fn read_history(
        &self,
        conn: &Conn,
        request: Result<HistoryRequest, ErrorCode>,
    ) -> HistoryAck {
        let request = match request {
            Ok(r) if (1..=chat_core::events::HISTORY_PAGE_MAX).contains(&r.limit) => r,
            _ => return HistoryAck::err(ErrorCode::Invalid),
        };
        if over_budget(&self.history_reads, conn) {
            return HistoryAck::err(ErrorCode::RateLimited);
        }
        let read = self
            .backend
            .history_before(&conn.room, request.before, request.limit);
        match read.await {
            Ok(messages) => HistoryAck::fitted(messages, self.config.reply_max_bytes()),
            Err(e) => {
                tracing::warn!(error = %e, "history not read");
                HistoryAck::err(ErrorCode::Unavailable)
            }
        }
    }

    /// Handles `refresh`: a new token for the same user and room moves the
    /// connection's expiry and binds it to the new token's web session.
    /// Fails closed: unless Redis confirms that neither session was logged
    /// out by `deadline`, the answer is `unavailable`.
    pub(crate) async fn refresh(
        &self,
        conn: &Conn,
        token: Result<String, ErrorCode>,
        deadline: Deadline,
    ) -> RefreshAck {
        deadline
            .within(self.try_refresh(conn, token))
            .await
            .unwrap_or_else(|Late| RefreshAck::err(ErrorCode::Unavailable))
    }

    async fn try_refresh(&self, conn: &Conn, token: Result<String, ErrorCode>) -> RefreshAck {
        let Ok(token) = token else {
            return RefreshAck::err(ErrorCode::TokenInvalid);
        };
        if over_budget(&self.refreshes, conn) {
            return RefreshAck::err(ErrorCode::RateLimited);
        }
        let claims = match self.keys.verify(&token, now_s()).await {
            Ok(c) => c,
            Err(e) => return RefreshAck::err(e.code()),
        };
        if claims.sub != conn.user.id || claims.room != conn.room.as_str() {
            return RefreshAck::err(ErrorCode::TokenInvalid);
        }
        let sessions: Vec<String> = [claims.sid.clone(), conn.session().map(|s| s.to_string())]
            .into_iter()
            .flatten()
            .collect();
        match self.backend.revoked_among(&sessions).await {
            Ok(revoked) if revoked.is_empty() => {}
            Ok(_) => return RefreshAck::err(ErrorCode::TokenRevoked),
            Err(e) => {
                tracing::warn!(error = %e, "refresh refused: revocations not readable");
                return RefreshAck::err(ErrorCode::Unavailable);
            }
        }
        RefreshAck::ok(conn.refreshed(claims.sid, claims.exp))
    }

    /// Handles `message edit` (with the new text) and `message delete`
    /// (without): only the author's, of a message still in the kept history;
    /// `unavailable` when not done by `deadline`.
    pub(crate) async fn change_message(
        &self,
        conn: &Conn,
        request: Result<(MessageId, Option<String>), ErrorCode>,
        deadline: Deadline,
    ) -> DoneAck {
        deadline
            .within(self.try_change(conn, request))
            .await
            .unwrap_or_else(|Late| DoneAck::err(ErrorCode::Unavailable))
    }

    async fn try_change(
        &self,
        conn: &Conn,
        request: Result<(MessageId, Option<String>), ErrorCode>,
    ) -> DoneAck {
        let (id, text) = match request {
            Ok(r) => r,
            Err(code) => return DoneAck::err(code),
        };
        let text = match text.map(|t| MessageText::parse(t, self.config.max_message_chars)) {
            Some(Err(code)) => return DoneAck::err(code),
            Some(Ok(text)) => Some(text),
            None => None,
        };
        if over_budget(&self.edits, conn) {
            return DoneAck::err(ErrorCode::RateLimited);
        }
        let change = MessageChange {
            room: &conn.room,
            id,
            user_id: &conn.user.id,
            text: text.as_ref(),
        };
        match self.backend.change(change).await {
            Ok(ChangeOutcome::Done) => self.ack_change_when_replicated(conn).await,
            Ok(ChangeOutcome::NotFound) => DoneAck::err(ErrorCode::NotFound),
            Ok(ChangeOutcome::Forbidden) => DoneAck::err(ErrorCode::Forbidden),
            Err(e) => {
                tracing::warn!(error = %e, "change not stored");
                DoneAck::err(ErrorCode::Unavailable)
            }
        }
    }

    /// `{ ok: true }` for a stored edit or deletion once the Redis replicas
    /// hold it (at once without `REDIS_WAIT_REPLICAS`), else `unavailable`;
    /// it stays stored (an edit sent again is stored again, a deletion sent
    /// again is `not_found`).
    async fn ack_change_when_replicated(&self, conn: &Conn) -> DoneAck {
        match self.backend.replicated(&conn.room, None).await {
            Ok(_) => DoneAck::ok(),
            Err(e) => {
                tracing::warn!(error = %e, "change stored, not confirmed by the Redis replicas");
                DoneAck::err(ErrorCode::Unavailable)
            }
        }
    }

    /// Handles `read`: moves the user's read marker in the room, for all
    /// their devices; `unavailable` when not done by `deadline`.
    pub(crate) async fn mark_read(
        &self,
        conn: &Conn,
        id: Result<MessageId, ErrorCode>,
        deadline: Deadline,
    ) -> DoneAck {
        deadline
            .within(self.try_mark_read(conn, id))
            .await
            .unwrap_or_else(|Late| DoneAck::err(ErrorCode::Unavailable))
    }

    async fn try_mark_read(&self, conn: &Conn, id: Result<MessageId, ErrorCode>) -> DoneAck {
        let id = match id {
            Ok(id) => id,
            Err(code) => return DoneAck::err(code),
        };
        if over_budget(&self.reads, conn) {
            return DoneAck::err(ErrorCode::RateLimited);
        }
        let mark = self.backend.mark_read(&conn.room, &conn.user.id, id);
        match mark.await {
            Ok(()) => DoneAck::ok(),
            Err(e) => {
                tracing::warn!(error = %e, "read marker not stored");
                DoneAck::err(ErrorCode::Unavailable)
            }
        }
    }

    /// Handles `typing`: at most one `user typing` per user per
    /// `TYPING_THROTTLE_MS` reaches the room, whichever replicas the user's
    /// tabs are on; the rest are dropped without a word, as is one not
    /// published by `deadline`.
    pub(crate) async fn typing(&self, conn: &Conn, deadline: Deadline) {
        let user = &conn.user;
        let room = &conn.room;
        if self
            .typings
            .check_key(&format!("{}\t{room}", user.id))
            .is_err()
        {
            return;
        }
        let publish = self.backend.typing(room, user, typing_throttle());
        match deadline.within(publish).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "typing not published"),
            Err(Late) => tracing::debug!("typing not published: Redis timed out"),
        }
    }

    /// Records that a reply of `bytes` the server built (`welcome`, a
    /// `history` page) was queued for a connection: see [`Wire::queued_reply`].
    pub(crate) fn queued_reply(&self, handle: &Connection, bytes: usize) {
        if let Some(wire) = &handle.conn.wire
            && !wire.queued_reply(bytes)
        {
            self.close(handle, Ending::Server(ErrorCode::SlowConsumer));
        }
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
}

/// Puts the span's trace id among its fields, so JSON log lines written
/// inside it carry it.
fn record_trace_id(span: &tracing::Span) {
    if let Some(trace_id) = span.in_scope(current_trace_id) {
        span.record("trace_id", trace_id);
    }
}

/// Tells the client why (when there is a reason) and closes the socket at
/// once: through its TCP connection's cut switch when there is one, since a
/// client that stopped reading may have no room left for a polite close.
fn say_goodbye(handle: &Connection, reason: Option<ErrorCode>) {
    let socket = &handle.socket;
    if let Some(reason) = reason {
        let _ = socket.emit(SESSION_ENDED, &SessionEnded { reason });
    }
    let closed = socket.clone().disconnect().is_ok();
    if let Some(wire) = &handle.conn.wire
        && (!closed || reason == Some(ErrorCode::SlowConsumer))
    {
        wire.cut();
    } else if !closed {
        tracing::debug!(sid = %socket.id, "disconnect deferred: buffer full");
    }
}

/// The contract's typing throttle.
fn typing_throttle() -> std::time::Duration {
    std::time::Duration::from_millis(chat_core::events::TYPING_THROTTLE_MS)
}

/// Takes one cell of `budget` for the connection's user; when there is none,
/// true. A connection that pipelines past its budget (more of its events
/// wait behind this one) is then not read from until there is a cell again:
/// what it sends meanwhile would only be refused, at the cost of other
/// users' time. A client that waits for its acks is never held.
fn over_budget(budget: &Budget, conn: &Conn) -> bool {
    match budget.check_key(&conn.user.id) {
        Ok(()) => false,
        Err(not_until) => {
            if let Some(wire) = &conn.wire
                && conn.inbox.in_flight() > 1
            {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                wire.hold_for(spread(wait, rand::random()));
            }
            true
        }
    }
}

/// The longest a connection over a budget is not read from at a time.
const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

/// The shortest hold: a budget that refills within a few milliseconds would
/// otherwise let a pipelining connection be read from (and refused) again at once.
const MIN_HOLD: std::time::Duration = std::time::Duration::from_millis(50);

/// How long to hold a connection whose budget refills in `wait`: that long
/// stretched by the fraction `random` (0 to 1) of itself, within
/// [`MIN_HOLD`]..[`MAX_HOLD`]. One user's connections share a budget: held for
/// the same time they would all be read from again at the same instant, and the
/// events each had waiting would be refused in one burst that delays everyone
/// else's acks; spread out, those refusals come a few at a time.
fn spread(wait: std::time::Duration, random: f64) -> std::time::Duration {
    let wait = wait.max(MIN_HOLD);
    wait.mul_f64(1.0 + random.clamp(0.0, 1.0)).min(MAX_HOLD)
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{MAX_HOLD, MIN_HOLD, spread};

    #[test]
    fn holds_are_stretched_by_up_to_their_length_within_bounds() {
        let wait = Duration::from_millis(100);
        assert_eq!(spread(wait, 0.0), wait);
        assert_eq!(spread(wait, 0.5), Duration::from_millis(150));
        assert_eq!(spread(wait, 1.0), Duration::from_millis(200));
        assert_eq!(spread(Duration::ZERO, 0.0), MIN_HOLD);
        assert_eq!(spread(Duration::from_millis(900), 1.0), MAX_HOLD);
        assert_eq!(
            spread(wait, 7.0),
            Duration::from_millis(200),
            "fraction clamped"
        );
    }

    #[test]
    fn one_users_connections_are_held_for_different_times() {
        let wait = Duration::from_millis(100);
        let holds: std::collections::HashSet<Duration> =
            (0..20).map(|_| spread(wait, rand::random())).collect();
        assert!(holds.len() > 10, "{holds:?}");
    }
}
