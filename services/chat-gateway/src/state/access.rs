//! Losing access to a room (contract v2.0): a removal, a leave, a lost group
//! or the room's deletion ends the user's connections to it, on every
//! replica, with `session ended` `removed` (or `room_closed`). The store
//! publishes each loss on the room's channel; a replica whose subscription
//! was down asks the store again once it is back.

use std::collections::BTreeMap;

use chat_core::{ErrorCode, RoomName};
use chat_store::StoreError;
use chat_store::events::{AccessLoss, AccessLost};

use super::Gateway;
use crate::connection::{Connection, Ending};

fn code(reason: AccessLoss) -> ErrorCode {
    match reason {
        AccessLoss::Removed => ErrorCode::Removed,
        AccessLoss::RoomClosed => ErrorCode::RoomClosed,
    }
}

impl Gateway {
    /// Ends the connections to `room` of the user who lost access (of
    /// everyone, when the room was deleted).
    pub(crate) fn access_lost(&self, room: &RoomName, lost: &AccessLost) {
        for handle in self.registry.in_room(room) {
            if lost.user.as_ref().is_none_or(|u| *u == handle.conn.user.id) {
                self.close(&handle, Ending::Server(code(lost.reason)));
            }
        }
    }

    /// Losses of access published while the subscription was down were
    /// missed: asks the store, room by room, whether each connection's room
    /// still exists and whether its user lost access after their token was
    /// issued, and ends those that did. Answers how many it ended.
    pub(crate) async fn recheck_access(&self) -> Result<usize, StoreError> {
        let mut by_room: BTreeMap<RoomName, Vec<Connection>> = BTreeMap::new();
        for handle in self.registry.all() {
            for room in handle.conn.rooms() {
                by_room.entry(room).or_default().push(handle.clone());
            }
        }
        let mut ended = 0;
        for (room, handles) in by_room {
            let mut users: Vec<String> = handles.iter().map(|h| h.conn.user.id.clone()).collect();
            users.sort();
            users.dedup();
            let configured = self.config.rooms.find(room.as_str()).is_some();
            let (exists, stamps) = self.backend.access_of(&room, &users, configured).await?;
            for handle in handles {
                let reason = if !exists {
                    Some(ErrorCode::RoomClosed)
                } else {
                    let stamp = users
                        .binary_search(&handle.conn.user.id)
                        .ok()
                        .and_then(|i| stamps.get(i).copied().flatten());
                    stamp
                        .filter(|at| *at >= handle.conn.standing().issued_ms)
                        .map(|_| ErrorCode::Removed)
                };
                if let Some(reason) = reason {
                    self.close(&handle, Ending::Server(reason));
                    ended += 1;
                }
            }
        }
        Ok(ended)
    }
}
