//! Flow control of a connection: its inbox runner (not read from while
//! `MAX_EVENTS_IN_FLIGHT` events wait), the budgets that hold a pipelining
//! client, and the replies counted against the bytes owed to it.

use std::future::{Future, Ready, ready};
use std::sync::Arc;

use chat_core::ErrorCode;
use governor::clock::{Clock, DefaultClock};
use serde::Serialize;
use serde::de::DeserializeOwned;
use socketioxide::extract::{Extension, State, TryData};

use super::{Budget, BudgetClass, Gateway, Shared};
use crate::connection::{Conn, Connection, Ending};
use crate::deadline::Deadline;
use crate::inbox::Job;
use crate::sockets::{Ack, Socket};

impl Gateway {
    /// Whether a connection already has `MAX_EVENTS_IN_FLIGHT` client events
    /// received and not yet answered.
    pub(crate) fn is_saturated(&self, conn: &Conn) -> bool {
        conn.is_saturated(self.config.max_events_in_flight)
    }

    /// Queues a client event's `job` behind the connection's earlier events
    /// (order per connection), starting the connection's runner if it is
    /// idle. A connection that reaches `MAX_EVENTS_IN_FLIGHT` is not read
    /// from until its runner has made room again.
    pub(crate) fn submit(&self, conn: &Arc<Conn>, job: Job) {
        if let Some(runner) = conn.queue(job, self.config.max_events_in_flight) {
            self.tasks.spawn(runner);
        }
    }

    /// Records that a reply of `bytes` the server built (`welcome`, a
    /// `history` page) was queued for a connection, closing it as a slow
    /// consumer when the client already owed too much before it.
    pub(crate) fn queued_reply(&self, handle: &Connection, bytes: usize) {
        if !handle.conn.queued_reply(bytes) {
            self.close(handle, Ending::Server(ErrorCode::SlowConsumer));
        }
    }
}

impl Gateway {
    /// Takes one cell of the connection's user's budget for `event`, of
    /// `class`; when there is none, true. A connection that pipelines past
    /// its budget (more of its events wait behind this one) is then not read
    /// from until there is a cell again: what it sends meanwhile would only
    /// be refused, at the cost of other users' time. A client that waits for
    /// its acks is never held.
    pub(super) fn over_budget(&self, class: BudgetClass, event: &'static str, conn: &Conn) -> bool {
        let budget = match class {
            BudgetClass::Writes => &self.writes,
            BudgetClass::Events => &self.events,
        };
        over_budget(budget, (event, conn.user.id.clone()), conn)
    }
}

/// The handler of a client event whose payload reads as `T`, for
/// socketioxide to call: every client event comes in here. It queues `work`
/// behind the connection's earlier events and sends its answer as the ack;
/// it acks `busy` at once when too many events are in flight. The event's
/// one ack deadline is set here, on arrival, and handed to `work`, which
/// answers within it whatever waits before it (see [`crate::deadline`]).
/// `work` gets the payload, or `None` when it does not read as `T`. (The
/// check cannot race: a connection's handlers are called one at a time, and
/// its runner only ever lowers the count.)
pub(super) fn in_order<T, B, R, W, F>(
    busy: B,
    work: F,
) -> impl FnOnce(Socket, TryData<T>, Ack, Extension<Arc<Conn>>, Shared) -> Ready<()>
+ Clone
+ Send
+ Sync
+ 'static
where
    T: DeserializeOwned + Send + Sync + 'static,
    B: Serialize + Clone + Send + Sync + 'static,
    R: Serialize + Send + 'static,
    W: Future<Output = R> + Send + 'static,
    F: FnOnce(Arc<Gateway>, Connection, Option<T>, Deadline) -> W + Clone + Send + Sync + 'static,
{
    move |socket, TryData(payload), ack, Extension(conn), State(gateway)| {
        if gateway.is_saturated(&conn) {
            let _ = ack.send(&busy);
            return ready(());
        }
        let deadline = Deadline::after(gateway.config().ack_timeout);
        let handle = Connection {
            socket,
            conn: conn.clone(),
        };
        let work = work(gateway.clone(), handle, payload.ok(), deadline);
        gateway.submit(
            &conn,
            Box::pin(async move {
                let reply = work.await;
                let _ = ack.send(&reply);
            }),
        );
        ready(())
    }
}

/// Takes one cell of `budget` under `key`, holding a pipelining connection
/// when there is none (see [`Gateway::over_budget`]).
fn over_budget(budget: &Budget, key: (&'static str, String), conn: &Conn) -> bool {
    match budget.check_key(&key) {
        Ok(()) => false,
        Err(not_until) => {
            conn.hold_if_pipelining(|| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                spread(wait, rand::random())
            });
            true
        }
    }
}

/// The longest a connection over a budget is not read from at a time.
const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(1);

/// The shortest hold: a budget that refills within a few milliseconds would
/// otherwise let a pipelining connection be read from (and refused) again at once.
const MIN_HOLD: std::time::Duration = std::time::Duration::from_millis(50);

/// How long to hold a connection whose budget refills in `wait`: that long
/// stretched by the fraction `random` (0 to 1) of itself, within
/// [`MIN_HOLD`]..[`MAX_HOLD`]. One user's connections share a budget: held for
/// the same time they would all be read from again at the same instant, and the
/// events each had waiting would be refused in one burst that delays everyone
/// else's acks; spread out, those refusals come a few at a time.
fn spread(wait: std::time::Duration, random: f64) -> std::time::Duration {
    let wait = wait.max(MIN_HOLD);
    wait.mul_f64(1.0 + random.clamp(0.0, 1.0)).min(MAX_HOLD)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{MAX_HOLD, MIN_HOLD, spread};

    #[test]
    fn holds_are_stretched_by_up_to_their_length_within_bounds() {
        let wait = Duration::from_millis(100);
        assert_eq!(spread(wait, 0.0), wait);
        assert_eq!(spread(wait, 0.5), Duration::from_millis(150));
        assert_eq!(spread(wait, 1.0), Duration::from_millis(200));
        assert_eq!(spread(Duration::ZERO, 0.0), MIN_HOLD);
        assert_eq!(spread(Duration::from_millis(900), 1.0), MAX_HOLD);
        assert_eq!(
            spread(wait, 7.0),
            Duration::from_millis(200),
            "fraction clamped"
        );
    }

    #[test]
    fn one_users_connections_are_held_for_different_times() {
        let wait = Duration::from_millis(100);
        let holds: std::collections::HashSet<Duration> =
            (0..20).map(|_| spread(wait, rand::random())).collect();
        assert!(holds.len() > 10, "{holds:?}");
    }
}
