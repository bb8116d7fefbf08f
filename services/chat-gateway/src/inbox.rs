//! A connection's client events, handled one at a time in the order they
//! arrived, with a bound on how many may wait.
//!
//! socketioxide runs every event handler in a task of its own, so two
//! `message sent` of one connection would race to Redis and be stored, acked
//! and delivered out of send order. Instead each handler only queues its work
//! here (synchronously, in arrival order) and one runner per connection, alive
//! only while work waits, runs the queue front to back. Connections still run
//! concurrently with each other; an idle connection holds no task.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

/// One queued event: its handling and its ack.
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The events of one connection that are in flight.
#[derive(Default)]
pub(crate) struct Inbox {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// A runner exists (it may not have taken its first job yet).
    running: bool,
    /// The runner took a job and has not finished it.
    handling: bool,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Inbox {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the queue is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events received and not yet answered: the waiting ones and the one being handled.
    pub(crate) fn in_flight(&self) -> usize {
        let state = self.state();
        state.queue.len() + usize::from(state.handling)
    }

    /// Queues `job` behind the waiting ones. True means no runner is active:
    /// the caller starts one that calls [`Inbox::next`] until it returns `None`.
    pub(crate) fn push(&self, job: Job) -> bool {
        let mut state = self.state();
        state.queue.push_back(job);
        let start = !state.running;
        state.running = true;
        start
    }

    /// The next job for the runner; `None` (and the runner is done) when the queue is empty.
    pub(crate) fn next(&self) -> Option<Job> {
        let mut state = self.state();
        let job = state.queue.pop_front();
        state.running = job.is_some();
        state.handling = job.is_some();
        job
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn job(log: &Arc<Mutex<Vec<u32>>>, n: u32) -> Job {
        let log = log.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            log.lock().expect("log").push(n);
        })
    }

    #[tokio::test]
    async fn jobs_run_in_arrival_order_with_one_runner_while_busy() {
        let inbox = Inbox::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let starts: usize = (0..3).map(|n| usize::from(inbox.push(job(&log, n)))).sum();
        assert_eq!(starts, 1, "one runner for a busy connection");
        assert_eq!(inbox.in_flight(), 3);
        let first = inbox.next().expect("a job");
        assert_eq!(inbox.in_flight(), 3, "the one being handled still counts");
        first.await;
        while let Some(job) = inbox.next() {
            job.await;
        }
        assert_eq!(*log.lock().expect("log"), [0, 1, 2]);
        assert_eq!(inbox.in_flight(), 0);
        assert!(inbox.push(job(&log, 9)), "idle again: a new runner");
    }
}
