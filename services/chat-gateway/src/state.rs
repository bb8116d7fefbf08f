//! `Gateway`: the state every handler shares, and the decisions behind each
//! contract event (handshake, send, history, refresh, ending a connection).
//! The Socket.IO glue lives in `handlers`; this module knows no extractors.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chat_core::events::{
    HistoryAck, HistoryRequest, RefreshAck, SESSION_ENDED, SendAck, SessionEnded,
};
use chat_core::{ErrorCode, MessageId, MessageText, UserRef};
use chat_store::Backend;
use chat_store::history::NewMessage;
use chat_store::presence::{Connection, JoinOutcome, JoinRequest, Snapshot};
use chat_telemetry::trace_context::{current_trace_id, current_traceparent};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tracing::Instrument;
use tracing::field::Empty;

use crate::auth::{TokenKeys, now_s};
use crate::config::GatewayConfig;
use crate::metrics_names as m;
use crate::registry::{Conn, Identity, Registry};
use crate::sockets::Socket;

/// What a successful handshake leaves for the connect handler.
#[derive(Debug)]
pub struct Joined {
    /// Who connected.
    pub id: Arc<Identity>,
    /// The room as it stood when the connection entered it.
    pub snapshot: Snapshot,
}

/// The shared state of one gateway replica.
pub struct Gateway {
    /// Settings.
    pub config: GatewayConfig,
    /// Token verification keys.
    pub keys: TokenKeys,
    /// Presence, history, fan-out and revocations (Redis, or memory in the single-process mode).
    pub backend: Arc<dyn Backend>,
    /// Local connections.
    pub registry: Registry,
    limiter: DefaultKeyedRateLimiter<String>,
    draining: AtomicBool,
    redis_ok: AtomicBool,
    /// Leaves that failed while Redis was away, retried by the heartbeat.
    failed_leaves: Mutex<Vec<Connection>>,
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
    pub fn new(
        config: GatewayConfig,
        keys: TokenKeys,
        backend: Arc<dyn Backend>,
        registry: Registry,
    ) -> Self {
        let quota = Quota::per_second(nonzero(config.rate_per_second))
            .allow_burst(nonzero(config.rate_burst));
        Self {
            config,
            keys,
            backend,
            registry,
            limiter: RateLimiter::keyed(quota),
            draining: AtomicBool::new(false),
            redis_ok: AtomicBool::new(false),
            failed_leaves: Mutex::new(Vec::new()),
        }
    }

    /// Checks a handshake and, if it passes, enters the room in Redis and
    /// starts buffering the room's events for the connection.
    pub async fn handshake(
        &self,
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
            span.record("room", joined.id.record.room.as_str());
            span.record("user.id", joined.id.record.user.id.as_str());
        }
        metrics::counter!(m::HANDSHAKES, "outcome" => label).increment(1);
        outcome
    }

    async fn try_handshake(
        &self,
        socket: &Socket,
        token: Option<String>,
        since: Option<String>,
    ) -> Result<Joined, ErrorCode> {
        if self.is_draining() || self.registry.count() >= self.config.max_connections {
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
        let since = since.and_then(|s| s.parse::<MessageId>().ok());
        let id = Arc::new(Identity {
            record: Connection {
                room,
                conn: socket.id.to_string(),
                user: UserRef {
                    id: claims.sub,
                    name: claims.name,
                },
            },
            session: claims.sid,
            exp: claims.exp.into(),
        });
        self.registry.add_pending(Arc::new(Conn {
            socket: socket.clone(),
            id: id.clone(),
        }));
        let request = JoinRequest {
            connection: &id.record,
            session: id.session.as_deref(),
            since,
            history_limit: chat_core::events::HISTORY_PAGE_MAX,
        };
        let outcome =
            tokio::time::timeout(self.config.ack_timeout, self.backend.join(request, false)).await;
        match outcome {
            Ok(Ok(JoinOutcome::Joined(snapshot))) => Ok(Joined { id, snapshot }),
            Ok(Ok(JoinOutcome::Revoked)) => {
                self.registry.remove(&id.record.room, socket.id);
                Err(ErrorCode::TokenRevoked)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "handshake could not join: Redis unavailable");
                self.forget_failed_join(socket, &id.record).await;
                Err(ErrorCode::ServerBusy)
            }
            Err(_) => {
                tracing::warn!("handshake could not join: Redis timed out");
                self.forget_failed_join(socket, &id.record).await;
                Err(ErrorCode::ServerBusy)
            }
        }
    }

    /// A join whose reply was lost may still have registered: release it.
    async fn forget_failed_join(&self, socket: &Socket, record: &Connection) {
        self.registry.remove(&record.room, socket.id);
        self.leave(record.clone()).await;
    }

    /// Releases a connection's presence; retried later if Redis is away.
    pub async fn leave(&self, record: Connection) {
        if let Err(e) = self.backend.leave(&record, self.config.exit_grace).await {
            tracing::warn!(error = %e, conn = %record.conn, "leave failed; will retry");
            self.failed_leaves
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(record);
        }
    }

    /// Retries the leaves that failed while Redis was away.
    pub async fn retry_failed_leaves(&self) {
        let pending =
            std::mem::take(&mut *self.failed_leaves.lock().unwrap_or_else(|e| e.into_inner()));
        for record in pending {
            self.leave(record).await;
        }
    }

    /// Handles `message sent`.
    pub async fn send_message(&self, id: &Identity, text: Result<String, ErrorCode>) -> SendAck {
        let span = tracing::info_span!(
            "message sent",
            otel.kind = "server",
            room = id.record.room.as_str(),
            user.id = id.record.user.id.as_str(),
            message.id = Empty,
            outcome = Empty,
            trace_id = Empty,
        );
        record_trace_id(&span);
        let ack = self.try_send(id, text).instrument(span.clone()).await;
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

    async fn try_send(&self, id: &Identity, text: Result<String, ErrorCode>) -> SendAck {
        let text = match text.and_then(|t| MessageText::parse(t, self.config.max_message_chars)) {
            Ok(text) => text,
            Err(code) => return SendAck::err(code),
        };
        if self.limiter.check_key(&id.record.user.id).is_err() {
            return SendAck::err(ErrorCode::RateLimited);
        }
        let room = &id.record.room;
        // The trace travels with the message, so every replica that
        // delivers it joins this trace.
        let traceparent = current_traceparent();
        let message = NewMessage {
            room,
            user: &id.record.user,
            text: &text,
            floor: self.registry.last_id(room),
            trace: traceparent.as_deref(),
        };
        match tokio::time::timeout(self.config.ack_timeout, self.backend.send(message)).await {
            Ok(Ok(message_id)) => SendAck::ok(message_id),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "message not stored");
                SendAck::err(ErrorCode::Unavailable)
            }
            Err(_) => SendAck::err(ErrorCode::Unavailable),
        }
    }

    /// Handles `history`.
    pub async fn history(
        &self,
        id: &Identity,
        request: Result<HistoryRequest, ErrorCode>,
    ) -> HistoryAck {
        let request = match request {
            Ok(r) if (1..=chat_core::events::HISTORY_PAGE_MAX).contains(&r.limit) => r,
            _ => return HistoryAck::err(ErrorCode::Invalid),
        };
        let read = self
            .backend
            .history_before(&id.record.room, request.before, request.limit);
        match tokio::time::timeout(self.config.ack_timeout, read).await {
            Ok(Ok(messages)) => HistoryAck::ok(messages),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "history not read");
                HistoryAck::err(ErrorCode::Unavailable)
            }
            Err(_) => HistoryAck::err(ErrorCode::Unavailable),
        }
    }

    /// Handles `refresh`: a new token for the same user and room moves the
    /// connection's expiry.
    pub async fn refresh(&self, id: &Identity, token: Result<String, ErrorCode>) -> RefreshAck {
        let Ok(token) = token else {
            return RefreshAck::err(ErrorCode::TokenInvalid);
        };
        let claims = match self.keys.verify(&token, now_s()).await {
            Ok(c) => c,
            Err(e) => return RefreshAck::err(e.code()),
        };
        if claims.sub != id.record.user.id || claims.room != id.record.room.as_str() {
            return RefreshAck::err(ErrorCode::TokenInvalid);
        }
        for sid in [claims.sid.as_deref(), id.session.as_deref()]
            .into_iter()
            .flatten()
        {
            let check = self.backend.is_revoked(sid);
            if let Ok(Ok(true)) = tokio::time::timeout(self.config.ack_timeout, check).await {
                return RefreshAck::err(ErrorCode::TokenRevoked);
            }
        }
        id.exp.fetch_max(claims.exp, Ordering::Relaxed);
        RefreshAck::ok(id.exp())
    }

    /// Tells a connection why, then closes it.
    pub fn end(&self, conn: &Conn, reason: ErrorCode) {
        metrics::counter!(m::SESSIONS_ENDED, "reason" => reason.as_str()).increment(1);
        let _ = conn.socket.emit(SESSION_ENDED, &SessionEnded { reason });
        if conn.socket.clone().disconnect().is_err() {
            tracing::debug!(sid = %conn.socket.id, "disconnect deferred: buffer full");
        }
    }

    /// Whether SIGTERM has started the drain.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts the drain: new handshakes get `server_busy`.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Records whether Redis answered the last heartbeat.
    pub fn set_redis_ok(&self, ok: bool) {
        self.redis_ok.store(ok, Ordering::Relaxed);
    }

    /// Ready for traffic: Redis answers commands, the fan-out subscriber is
    /// connected, and the replica is not draining.
    pub fn is_ready(&self) -> bool {
        self.redis_ok.load(Ordering::Relaxed) && self.backend.is_subscribed() && !self.is_draining()
    }

    /// Forgets rate-limiter entries of users who went quiet.
    pub fn trim_rate_limiter(&self) {
        self.limiter.retain_recent();
    }
}

/// Puts the span's trace id among its fields, so JSON log lines written
/// inside it carry it.
fn record_trace_id(span: &tracing::Span) {
    if let Some(trace_id) = span.in_scope(current_trace_id) {
        span.record("trace_id", trace_id);
    }
}

fn nonzero(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN)
}
