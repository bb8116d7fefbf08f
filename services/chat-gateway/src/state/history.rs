//! History: `history` pages, fitted to the reply bound.

use chat_core::ErrorCode;
use chat_core::events::{HistoryAck, HistoryRequest};
use serde_json::value::RawValue;

use super::Gateway;
use super::flow::over_budget;
use crate::connection::Conn;
use crate::deadline::{Deadline, Late};

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
}
