//! The `user exited` this replica owes: those of its own connections'
//! users, scheduled when their last connection was released, and those of
//! the rooms of dead replicas it swept. A room is owed from when its first
//! exit is due until none is left to come, and held meanwhile
//! ([`crate::following`]): listed among this node's rooms, so that if this
//! replica dies, whoever sweeps it announces them. Announcing is one script
//! in the room's slot (each exit once, whoever runs it), so it does not
//! matter that another replica owes the same room.
//!
//! Nothing here scans rooms: an idle replica owes nothing and does nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chat_core::RoomName;

use crate::following::Following;

/// When a room's exits are due.
struct Due {
    /// When the first is due (ms since the epoch, on this replica's clock).
    at: u64,
    /// Owed again since the last announcement began: look again at once.
    owed_again: bool,
}

/// The rooms whose exits this replica owes.
pub(crate) struct ExitSchedule {
    due: Mutex<HashMap<RoomName, Due>>,
    /// The exit grace: an exit is never waited for longer than this from
    /// when it is owed, whatever the clocks of Redis and this replica say.
    grace: Duration,
}

impl ExitSchedule {
    /// An empty schedule, for exits due `grace` after the last connection left.
    pub(crate) fn new(grace: Duration) -> Self {
        Self {
            due: Mutex::default(),
            grace,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, Due>> {
        // A poisoned lock only means a panic elsewhere; the schedule is still consistent.
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Owes `room`'s exits from `at` (ms since the epoch, Redis's clock) on:
    /// holds the room until they are announced.
    pub(crate) async fn owe(
        &self,
        following: &std::sync::Arc<Following>,
        room: &RoomName,
        at: u64,
    ) {
        let at = at.min(now_ms().saturating_add(millis(self.grace)));
        if self.lower(room, at) {
            return;
        }
        let hold = following.hold(room);
        if let Err(e) = following.ready(room, hold).await {
            // Held all the same: the heartbeat lists it again once Redis answers.
            tracing::warn!(error = %e, %room, "could not follow a room with exits to announce");
        }
        let already = {
            let mut due = self.lock();
            match due.get_mut(room) {
                Some(d) => {
                    d.at = d.at.min(at);
                    d.owed_again = true;
                    true
                }
                None => {
                    due.insert(
                        room.clone(),
                        Due {
                            at,
                            owed_again: false,
                        },
                    );
                    false
                }
            }
        };
        if already {
            following.release(room).await;
        }
    }

    /// When `room` is owed already: its exits are due at `at` at the latest.
    fn lower(&self, room: &RoomName, at: u64) -> bool {
        match self.lock().get_mut(room) {
            Some(d) => {
                d.at = d.at.min(at);
                d.owed_again = true;
                true
            }
            None => false,
        }
    }

    /// The rooms whose exits are due now.
    pub(crate) fn due_now(&self) -> Vec<RoomName> {
        let now = now_ms();
        self.lock()
            .iter_mut()
            .filter(|(_, d)| d.at <= now)
            .map(|(room, d)| {
                d.owed_again = false;
                room.clone()
            })
            .collect()
    }

    /// `room`'s due exits were announced; `next` is when the next one is due,
    /// if any is. True when the room is owed no more (release it).
    pub(crate) fn announced(&self, room: &RoomName, next: Option<u64>) -> bool {
        let mut due = self.lock();
        let Some(d) = due.get_mut(room) else {
            return false;
        };
        if std::mem::take(&mut d.owed_again) {
            // An exit owed since the announcement began may not be in `next`:
            // look again at the next turn.
            return false;
        }
        match next {
            Some(next) => {
                d.at = next.min(now_ms().saturating_add(millis(self.grace)));
                false
            }
            None => {
                due.remove(room);
                true
            }
        }
    }
}

/// Milliseconds since the epoch, on this replica's clock.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule_with(room: &RoomName, at: u64) -> ExitSchedule {
        let schedule = ExitSchedule::new(Duration::from_secs(5));
        schedule.lock().insert(
            room.clone(),
            Due {
                at,
                owed_again: false,
            },
        );
        schedule
    }

    #[test]
    fn a_room_is_owed_until_no_exit_is_left_to_come() {
        let room = RoomName::parse("R").expect("room");
        let schedule = schedule_with(&room, 0);
        assert_eq!(schedule.due_now(), std::slice::from_ref(&room));
        assert!(!schedule.announced(&room, Some(now_ms() + 60_000)));
        assert!(schedule.due_now().is_empty(), "the next is not due yet");
        assert!(
            schedule.lock()[&room].at <= now_ms() + 5_000,
            "never later than the grace"
        );
        schedule.lock().get_mut(&room).expect("owed").at = 0;
        assert_eq!(schedule.due_now(), std::slice::from_ref(&room));
        assert!(schedule.announced(&room, None), "none left: let go");
        assert!(schedule.due_now().is_empty());
    }

    #[test]
    fn an_exit_owed_during_an_announcement_is_looked_for_again() {
        let room = RoomName::parse("R").expect("room");
        let schedule = schedule_with(&room, 0);
        assert_eq!(schedule.due_now(), std::slice::from_ref(&room));
        assert!(schedule.lower(&room, now_ms() + 5_000));
        assert!(
            !schedule.announced(&room, None),
            "what the announcement found says nothing of the exit owed meanwhile"
        );
        assert_eq!(schedule.due_now(), std::slice::from_ref(&room));
        assert!(schedule.announced(&room, None));
    }
}
