//! Messages: `message sent` (with the resend check and the wait for Redis
//! replicas), `message edit` and `message delete`, `read` and `typing`.

use std::sync::Arc;

use chat_core::events::{
    DeleteRequest, DoneAck, EditRequest, MESSAGE_DELETE, MESSAGE_EDIT, MESSAGE_SENT, READ,
    ReadRequest, SendAck, TYPING,
};
use chat_core::{ErrorCode, MessageId, MessageText};
use chat_store::history::{ChangeOutcome, MessageChange, NewMessage, Posted, Replicated};
use chat_telemetry::trace_context::current_traceparent;
use serde::de::IgnoredAny;
use tracing::Instrument;
use tracing::field::Empty;

use super::flow::in_order;
use super::{BudgetClass, Gateway, record_trace_id, typing_throttle};
use crate::connection::{Conn, Connection};
use crate::deadline::{Deadline, Late};
use crate::metrics_names as m;
use crate::sockets::Socket;

impl Gateway {
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
        if self.over_budget(BudgetClass::Writes, MESSAGE_SENT, conn) {
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
            standing: conn.standing(),
        };
        match self.backend.send(message).await {
            Ok(Posted::Forbidden) => Err(SendAck::err(ErrorCode::Forbidden)),
            Ok(Posted::Stored(message_id)) => {
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

    /// Handles `message edit` (with the new text) and `message delete`
    /// (without): the author's (a deletion also by the room's owners and
    /// moderators), of a message still in the kept history;
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
        if self.over_budget(BudgetClass::Writes, MESSAGE_EDIT, conn) {
            return DoneAck::err(ErrorCode::RateLimited);
        }
        let change = MessageChange {
            room: &conn.room,
            id,
            user_id: &conn.user.id,
            text: text.as_ref(),
            standing: conn.standing(),
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
        if self.over_budget(BudgetClass::Writes, READ, conn) {
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
}

/// Listens for this module's client events on a new connection.
pub(super) fn listen(socket: &Socket) {
    let busy = DoneAck::err(ErrorCode::RateLimited);
    socket.on(
        MESSAGE_SENT,
        in_order(SendAck::err(ErrorCode::RateLimited), on_message_sent),
    );
    socket.on(MESSAGE_EDIT, in_order(busy.clone(), on_message_edit));
    socket.on(MESSAGE_DELETE, in_order(busy.clone(), on_message_delete));
    socket.on(READ, in_order(busy, on_read));
    socket.on(TYPING, in_order((), on_typing));
}

async fn on_message_sent(
    g: Arc<Gateway>,
    c: Connection,
    text: Option<String>,
    deadline: Deadline,
) -> SendAck {
    g.send_message(&c.conn, text.ok_or(ErrorCode::Invalid), deadline)
        .await
}

async fn on_message_edit(
    g: Arc<Gateway>,
    c: Connection,
    request: Option<EditRequest>,
    deadline: Deadline,
) -> DoneAck {
    let request = request.map(|r| (r.id, Some(r.text)));
    g.change_message(&c.conn, request.ok_or(ErrorCode::Invalid), deadline)
        .await
}

async fn on_message_delete(
    g: Arc<Gateway>,
    c: Connection,
    request: Option<DeleteRequest>,
    deadline: Deadline,
) -> DoneAck {
    let request = request.map(|r| (r.id, None));
    g.change_message(&c.conn, request.ok_or(ErrorCode::Invalid), deadline)
        .await
}

async fn on_read(
    g: Arc<Gateway>,
    c: Connection,
    request: Option<ReadRequest>,
    deadline: Deadline,
) -> DoneAck {
    let id = request.map(|r| r.id).ok_or(ErrorCode::Invalid);
    g.mark_read(&c.conn, id, deadline).await
}

/// `typing` has no payload and no ack: should a client ask for one anyway,
/// it gets `null`.
async fn on_typing(g: Arc<Gateway>, c: Connection, _: Option<IgnoredAny>, deadline: Deadline) {
    g.typing(&c.conn, deadline).await;
}
