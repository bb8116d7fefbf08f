//! History: `history` pages, fitted to the reply bound.

use std::sync::Arc;

use chat_core::ErrorCode;
use chat_core::events::{HISTORY, HistoryAck, HistoryRequest};
use serde_json::value::RawValue;

use super::flow::in_order;
use super::{BudgetClass, Gateway};
use crate::connection::{Conn, Connection};
use crate::deadline::{Deadline, Late};
use crate::sockets::Socket;

impl Gateway {
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
        if self.over_budget(BudgetClass::Events, HISTORY, conn) {
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
}

/// Listens for `history` on a new connection.
pub(super) fn listen(socket: &Socket) {
    socket.on(
        HISTORY,
        in_order(HistoryAck::err(ErrorCode::RateLimited), on_history),
    );
}

async fn on_history(
    g: Arc<Gateway>,
    c: Connection,
    request: Option<HistoryRequest>,
    deadline: Deadline,
) -> Box<RawValue> {
    let page = g
        .history(&c.conn, request.ok_or(ErrorCode::Invalid), deadline)
        .await;
    g.queued_reply(&c, page.get().len());
    page
}
