//! One ack deadline per client event.
//!
//! An event's ack is due `ACK_TIMEOUT_MS` after the event arrived, whatever
//! waited before it in the connection's inbox and however many Redis calls
//! its handling makes: the deadline is set once, on arrival, and every step
//! of the handling runs within it. Whoever handles the event decides what a
//! passed deadline answers, so the answer is counted and recorded on the
//! event's span like any other.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// When a client event's ack is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(Instant);

/// The deadline passed before the work was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Late;

impl Deadline {
    /// The deadline of an event arriving now, due `timeout` from now.
    pub(crate) fn after(timeout: Duration) -> Self {
        Self(Instant::now() + timeout)
    }

    /// Runs `work` until it is done or the deadline passes, whichever is
    /// first; `Err(Late)` (and `work` is dropped) in the second case.
    pub(crate) async fn within<F: Future>(self, work: F) -> Result<F::Output, Late> {
        tokio::time::timeout_at(self.0, work)
            .await
            .map_err(|_| Late)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_that_ends_in_time_answers_and_work_that_does_not_is_late() {
        let deadline = Deadline::after(Duration::from_millis(300));
        assert_eq!(deadline.within(async { 7 }).await, Ok(7));
        let slow = tokio::time::sleep(Duration::from_millis(600));
        assert_eq!(deadline.within(slow).await, Err(Late));
    }

    #[tokio::test]
    async fn one_deadline_bounds_every_step_together() {
        let deadline = Deadline::after(Duration::from_millis(300));
        let step = Duration::from_millis(180);
        assert_eq!(deadline.within(tokio::time::sleep(step)).await, Ok(()));
        assert_eq!(
            deadline.within(tokio::time::sleep(step)).await,
            Err(Late),
            "the second step only had what the first left"
        );
    }
}
