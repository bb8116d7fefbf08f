//! Refresh: a new token for a live connection, checked against revocations.

use std::sync::Arc;

use chat_core::ErrorCode;
use chat_core::events::{REFRESH, RefreshAck};

use super::flow::in_order;
use super::{BudgetClass, Gateway};
use crate::auth::now_s;
use crate::connection::{Conn, Connection};
use crate::deadline::{Deadline, Late};
use crate::sockets::Socket;

impl Gateway {
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
        if self.over_budget(BudgetClass::Events, REFRESH, conn) {
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
        RefreshAck::ok(conn.refreshed(claims.sid, claims.exp, claims.iat.saturating_mul(1000)))
    }
}

/// Listens for `refresh` on a new connection.
pub(super) fn listen(socket: &Socket) {
    socket.on(
        REFRESH,
        in_order(RefreshAck::err(ErrorCode::RateLimited), on_refresh),
    );
}

async fn on_refresh(
    g: Arc<Gateway>,
    c: Connection,
    token: Option<String>,
    deadline: Deadline,
) -> RefreshAck {
    g.refresh(&c.conn, token.ok_or(ErrorCode::TokenInvalid), deadline)
        .await
}
