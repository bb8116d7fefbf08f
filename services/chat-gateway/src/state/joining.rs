//! Joining: the handshake (token, room, limits, the join in Redis) and the
//! connection going live once its `welcome` is out.

use std::sync::Arc;

use chat_core::{ErrorCode, MessageId, RoomName, UserRef};
use chat_store::presence::{self, JoinOutcome, JoinRequest};
use chat_store::rooms::Standing;
use socketioxide::TransportType;
use tracing::Instrument;
use tracing::field::Empty;

use super::closing::say_goodbye;
use super::{Gateway, Joined, record_trace_id};
use crate::auth::now_s;
use crate::connection::{Conn, Connection, Ending, State};
use crate::metrics_names as m;
use crate::sockets::Socket;
use crate::wire::Wire;

impl Gateway {
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
        // Any room that exists: a configured one, or one whose settings the
        // join below finds (it refuses the others, registering nothing).
        let room = RoomName::parse(&claims.room).map_err(|_| ErrorCode::RoomUnknown)?;
        let standing = Standing {
            issued_ms: claims.iat.saturating_mul(1000),
            admin: claims.admin,
            configured: self.config.rooms.find(&claims.room).is_some(),
        };
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
        let conn =
            Arc::new(Conn::new(record, claims.sid, claims.exp, wire).with_standing(standing));
        let handle = Connection {
            socket: socket.clone(),
            conn: conn.clone(),
        };
        // The connection holds its room from here until its presence is
        // released (see `close`).
        let hold = self.following.hold(&conn.room);
        // From here a revocation or the drain finds the connection in the
        // registry, even before it is live.
        if let Err(code) = self.registry.admit(handle.clone()) {
            let (following, room) = (self.following.clone(), conn.room.clone());
            self.tasks
                .spawn(async move { following.release(&room).await });
            return Err(code);
        }
        // The room's events, and the room on this node's list, before the
        // join takes its snapshot: nothing published after it is missed, and
        // a sweeper of this replica would sweep the room.
        if let Err(e) = self.following.ready(&conn.room, hold).await {
            tracing::warn!(error = %e, "handshake could not follow the room");
            self.close(&handle, Ending::Refused);
            return Err(ErrorCode::ServerBusy);
        }
        let session = conn.session();
        let record = conn.record();
        let request = JoinRequest {
            connection: &record,
            session: session.as_deref(),
            since,
            history_limit: chat_core::events::HISTORY_PAGE_MAX,
            standing,
        };
        let outcome =
            tokio::time::timeout(self.config.ack_timeout, self.backend.join(request, false)).await;
        match outcome {
            Ok(Ok(JoinOutcome::Joined(snapshot))) => {
                if conn.state() != State::Pending {
                    // Ended (revoked, drained) while the join was on its way:
                    // its release may have reached Redis first. Leave again
                    // (leaving is idempotent; the room is held by the first
                    // release); going live then tells the client.
                    self.tasks.spawn(self.release(record, false));
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
            Ok(Ok(JoinOutcome::Unknown)) => {
                self.close(&handle, Ending::Refused);
                Err(ErrorCode::RoomUnknown)
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
}
