//! The rooms this replica follows: those it holds a connection in, or owes a
//! `user exited` in, and no other. Following a room is two things, both
//! confirmed before a connection's join takes its snapshot: its events'
//! channel subscribed (so the connection misses nothing between its snapshot
//! and its `welcome`), and the room on this node's list in Redis (so that if
//! the replica dies, whoever sweeps it sweeps this room; a crash between the
//! two leaves at worst an extra room to sweep). After the last holder lets
//! go, the room is unsubscribed and taken off the list, and forgotten: a room
//! nobody here is in costs this replica nothing.
//!
//! Holders are counted per room: a connection from its admission until its
//! presence is released ([`crate::state`]'s closing), and the exits this
//! replica owes there ([`crate::exits`]). Following and unfollowing one room
//! take turns (one async lock per room, never held with the map's lock), so
//! a connection admitted while the room is being unfollowed waits for that
//! to end and follows it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chat_core::RoomName;
use chat_store::{Backend, StoreError};
use thiserror::Error;
use tokio::sync::watch;

/// Why a room could not be followed.
#[derive(Debug, Error)]
pub(crate) enum FollowError {
    /// Redis refused or did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No heartbeat of this replica reached Redis yet: a sweeper would not
    /// know it, so it joins nothing.
    #[error("this replica is not registered in Redis yet (no heartbeat got through)")]
    NotRegistered,
    /// The task following the room ended before it could say.
    #[error("following the room was interrupted")]
    Interrupted,
}

/// One room followed, or about to be, or being let go.
struct Followed {
    /// Connections and exit schedules holding it.
    holders: usize,
    /// Subscribed and listed, both confirmed.
    active: bool,
    /// Following and unfollowing the room take turns.
    turn: Arc<tokio::sync::Mutex<()>>,
}

/// A holder counted by [`Following::hold`], to be made ready.
#[must_use = "a hold is ready only once `Following::ready` says so"]
pub(crate) struct Hold {
    /// The room's turn, when it is not followed yet.
    turn: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// The rooms this replica follows.
pub(crate) struct Following {
    backend: Arc<dyn Backend>,
    rooms: Mutex<HashMap<RoomName, Followed>>,
    /// Whether a heartbeat of this replica reached Redis.
    registered: watch::Receiver<bool>,
    /// How long following waits for that.
    wait: Duration,
}

impl Following {
    /// Follows rooms on `backend`, once `registered` says this replica's
    /// heartbeat reached Redis (waiting at most `wait` for it).
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        registered: watch::Receiver<bool>,
        wait: Duration,
    ) -> Self {
        Self {
            backend,
            rooms: Mutex::default(),
            registered,
            wait,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomName, Followed>> {
        // A poisoned lock only means a panic elsewhere; the counts are still consistent.
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more holder of `room`, at once. Every hold is matched by
    /// one [`Following::release`], whether or not it was ready.
    pub(crate) fn hold(&self, room: &RoomName) -> Hold {
        let mut rooms = self.lock();
        let followed = rooms.entry(room.clone()).or_insert_with(|| Followed {
            holders: 0,
            active: false,
            turn: Arc::default(),
        });
        followed.holders += 1;
        Hold {
            turn: (!followed.active).then(|| followed.turn.clone()),
        }
    }

    /// Waits until `room`, held by `hold`, is followed: subscribed and
    /// listed, both confirmed. The work runs in a task of its own, so a
    /// caller that stops waiting does not cut it short.
    pub(crate) async fn ready(
        self: &Arc<Self>,
        room: &RoomName,
        hold: Hold,
    ) -> Result<(), FollowError> {
        let Some(turn) = hold.turn else {
            return Ok(());
        };
        let following = self.clone();
        let room = room.clone();
        tokio::spawn(async move { following.follow(&room, &turn).await })
            .await
            .unwrap_or(Err(FollowError::Interrupted))
    }

    async fn follow(
        &self,
        room: &RoomName,
        turn: &tokio::sync::Mutex<()>,
    ) -> Result<(), FollowError> {
        let _turn = turn.lock().await;
        if self.lock().get(room).is_none_or(|f| f.active) {
            return Ok(());
        }
        let mut registered = self.registered.clone();
        match tokio::time::timeout(self.wait, registered.wait_for(|r| *r)).await {
            Ok(Ok(_)) => {}
            _ => return Err(FollowError::NotRegistered),
        }
        let (tracked, subscribed) = tokio::join!(
            self.backend.track(std::slice::from_ref(room)),
            self.backend.follow(room)
        );
        if let Err(e) = tracked {
            if subscribed.is_ok()
                && let Err(e) = self.backend.unfollow(room).await
            {
                tracing::debug!(error = %e, %room, "could not unsubscribe after a failed follow");
            }
            return Err(e.into());
        }
        subscribed?;
        if let Some(followed) = self.lock().get_mut(room) {
            followed.active = true;
        }
        Ok(())
    }

    /// Counts one holder of `room` less; after the last one, unfollows it.
    pub(crate) async fn release(&self, room: &RoomName) {
        let turn = {
            let mut rooms = self.lock();
            let Some(followed) = rooms.get_mut(room) else {
                return;
            };
            followed.holders = followed.holders.saturating_sub(1);
            if followed.holders > 0 {
                return;
            }
            followed.turn.clone()
        };
        let _turn = turn.lock().await;
        let was_active = {
            let mut rooms = self.lock();
            let Some(followed) = rooms.get_mut(room) else {
                return;
            };
            if followed.holders > 0 {
                // Held again meanwhile: it stays followed.
                return;
            }
            // From here a new holder waits for its turn, and follows again.
            std::mem::replace(&mut followed.active, false)
        };
        if was_active {
            if let Err(e) = self.backend.unfollow(room).await {
                tracing::debug!(error = %e, %room, "could not unsubscribe from a room");
            }
            // Failing, it stays listed: at worst one room more to sweep.
            if let Err(e) = self.backend.untrack(room).await {
                tracing::debug!(error = %e, %room, "could not take a room off this node's list");
            }
        }
        let mut rooms = self.lock();
        if rooms.get(room).is_some_and(|f| f.holders == 0 && !f.active) {
            rooms.remove(room);
        }
    }

    /// How many rooms are followed now (subscribed and listed, confirmed).
    pub(crate) fn followed(&self) -> usize {
        self.lock().values().filter(|f| f.active).count()
    }

    /// The rooms held now.
    pub(crate) fn rooms(&self) -> Vec<RoomName> {
        self.lock()
            .iter()
            .filter(|(_, f)| f.holders > 0)
            .map(|(room, _)| room.clone())
            .collect()
    }
}
