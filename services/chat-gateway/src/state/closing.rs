//! Closing: the one way a connection ends, whatever ends it (revocation,
//! expiry, slow consumer, drain, the client leaving, a handshake never
//! completed or refused), and the release of its presence.

use std::collections::BTreeSet;
use std::sync::Arc;

use chat_core::ErrorCode;
use chat_core::events::{SESSION_ENDED, SessionEnded};
use chat_store::presence;

use super::Gateway;
use crate::connection::{Closing, Connection, Ending, State};
use crate::metrics_names as m;

impl Gateway {
    /// Ends a connection, whatever ends it: it leaves the registry (the only
    /// way out of it), its presence in each room it follows is released
    /// (once, however many paths race to end it; never for a refused
    /// handshake, which presence never recorded) and then its hold on the
    /// room ([`crate::following`]), and,
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
        for room in handle.conn.rooms() {
            if ending == Ending::Refused {
                let following = self.following.clone();
                self.tasks
                    .spawn(async move { following.release(&room).await });
            } else {
                let release = self.release(handle.conn.record_in(&room), true);
                self.tasks.spawn(release);
            }
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

    /// Releases a connection's presence in a room, owes the user's
    /// `user exited` there if it was their last connection, and then, when
    /// `holding`, lets go of the connection's hold on the room. Retried by
    /// the heartbeat while Redis does not answer (the room stays held until
    /// then).
    pub(super) fn release(
        &self,
        record: presence::Connection,
        holding: bool,
    ) -> impl Future<Output = ()> + Send + 'static {
        let backend = self.backend.clone();
        let grace = self.config.exit_grace;
        let following = self.following.clone();
        let exits = self.exits.clone();
        let failed = self.failed_leaves.clone();
        async move {
            match backend.leave(&record, grace).await {
                Ok(due) => {
                    if let Some(at) = due {
                        exits.owe(&following, &record.room, at).await;
                    }
                    if holding {
                        following.release(&record.room).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, conn = %record.conn, "leave failed; will retry");
                    failed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((record, holding));
                }
            }
        }
    }

    /// Retries the leaves that failed while Redis was away.
    pub(crate) async fn retry_failed_leaves(&self) {
        let pending =
            std::mem::take(&mut *self.failed_leaves.lock().unwrap_or_else(|e| e.into_inner()));
        for (record, holding) in pending {
            self.release(record, holding).await;
        }
    }
}

/// Tells the client why (when there is a reason) and closes the socket at
/// once: through its TCP connection's cut switch when there is one, since a
/// client that stopped reading may have no room left for a polite close.
pub(super) fn say_goodbye(handle: &Connection, reason: Option<ErrorCode>) {
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
