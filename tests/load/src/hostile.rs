//! The hostile user of the `hostile-read` and `reconnect-loop` scenarios
//! (the `flood` scenario's is in [`abuser`](crate::abuser)):
//!
//! - [`reads`]: one connection sending `read { id }` with one read in flight,
//!   the next as soon as the last one is acked `ok`, `--read-retry-ms` after a
//!   `rate_limited` (the budget refills one read per 100 ms by default): as
//!   fast as the user's budget allows, never held for pipelining past it. A
//!   read not answered within `--read-ack-timeout-ms` is counted as such and
//!   the next one goes out.
//! - [`handshakes`]: one connection slot looping handshakes: connect, wait
//!   for `welcome` or a CONNECT_ERROR, close, again, until the phase ends.

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

use crate::abuser::AckCounts;
use crate::report::{Latency, histogram};
use crate::session;
use crate::wire::{self, HandshakeError, Incoming, Target, Ws};

/// When the hostile user acts: from `start` until `until`; its connections
/// are closed at `stop_at`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start: Instant,
    pub(crate) until: Instant,
    pub(crate) stop_at: Instant,
}

/// How one reading connection paces itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadPace {
    /// The wait after a `rate_limited` (or any other refusal).
    pub(crate) retry: Duration,
    /// How long a read may go unanswered before the next one is sent.
    pub(crate) ack_timeout: Duration,
}

/// What one reading connection did and saw.
#[derive(Debug)]
pub(crate) struct ReadOutcome {
    sent: u64,
    acks: AckCounts,
    other_errors: BTreeMap<String, u64>,
    unanswered: u64,
    ack_us: Histogram<u64>,
    dropped: Option<String>,
}

impl Default for ReadOutcome {
    fn default() -> Self {
        Self {
            sent: 0,
            acks: AckCounts::default(),
            other_errors: BTreeMap::new(),
            unanswered: 0,
            ack_us: histogram(),
            dropped: None,
        }
    }
}

/// The hostile user's reading connections together, as reported.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ReadReport {
    /// Handshakes tried.
    pub(crate) connections_attempted: u64,
    /// Handshakes that reached `welcome`.
    pub(crate) connections_ok: u64,
    /// Refused or failed handshakes, by reason.
    pub(crate) connect_errors: BTreeMap<String, u64>,
    /// Connections that ended early, by reason.
    pub(crate) dropped: BTreeMap<String, u64>,
    /// `read` sent.
    pub(crate) sent: u64,
    /// Their acks, by outcome.
    pub(crate) acks: AckCounts,
    /// The errors counted as `other`, by error.
    pub(crate) other_errors: BTreeMap<String, u64>,
    /// Reads with no ack within the ack timeout (or before the end).
    pub(crate) unanswered: u64,
    /// Reads sent per second of the phase.
    pub(crate) sent_per_s: f64,
    /// Reads acked `ok` per second of the phase.
    pub(crate) ok_per_s: f64,
    /// Send to ack, every answered read.
    pub(crate) ack: Latency,
}

impl ReadReport {
    /// Folds the connections' outcomes in; `secs` is the phase.
    pub(crate) fn add(&mut self, outs: Vec<ReadOutcome>, secs: f64) {
        let mut ack = histogram();
        for o in outs {
            self.sent += o.sent;
            self.acks.add(&o.acks);
            self.unanswered += o.unanswered;
            for (k, v) in o.other_errors {
                *self.other_errors.entry(k).or_default() += v;
            }
            if let Some(why) = o.dropped {
                *self.dropped.entry(why).or_default() += 1;
            }
            // Both histograms have the same bounds: adding cannot fail.
            let _ = ack.add(&o.ack_us);
        }
        self.ack = Latency::of(&ack);
        if secs > 0.0 {
            self.sent_per_s = self.sent as f64 / secs;
            self.ok_per_s = self.acks.ok as f64 / secs;
        }
    }
}

/// Runs one reading connection: answers pings from now on; once `plan`
/// comes, sends `read { id }` as [`ReadPace`] says from its start until its
/// end, and closes at its `stop_at`.
pub(crate) async fn reads(
    mut ws: Ws,
    id: String,
    pace: ReadPace,
    plan: oneshot::Receiver<Window>,
) -> ReadOutcome {
    let mut out = ReadOutcome::default();
    let mut plan = Some(plan);
    let mut until = None;
    let far = Instant::now() + Duration::from_secs(86_400);
    let stop = tokio::time::sleep_until(far);
    let next = tokio::time::sleep_until(far);
    let give_up = tokio::time::sleep_until(far);
    tokio::pin!(stop, next, give_up);
    let mut next_armed = false;
    // The ack id of the read in flight and when it went out.
    let mut waiting: Option<(u64, u64)> = None;
    let mut n: u64 = 0;
    out.dropped = loop {
        tokio::select! {
            biased;
            () = &mut stop => break None,
            w = session::once(&mut plan) => {
                let Ok(w) = w else { break None };
                until = Some(w.until);
                stop.as_mut().reset(w.stop_at);
                next.as_mut().reset(w.start);
                next_armed = true;
            }
            frame = ws.next() => {
                let text = match wire::text_answering_ping(&mut ws, frame).await {
                    Ok(Some(text)) => text,
                    Ok(None) => continue,
                    Err(why) => break Some(why),
                };
                let Incoming::Ack(ack, ok, body) = wire::classify(text.as_str()) else {
                    continue;
                };
                let Some((_, sent_at)) = waiting.take_if(|(w, _)| *w == ack) else {
                    continue;
                };
                out.ack_us
                    .saturating_record(wire::now_us().saturating_sub(sent_at).max(1));
                out.acks.count(ok, body, &mut out.other_errors);
                let retry = if ok { Duration::ZERO } else { pace.retry };
                next.as_mut().reset(Instant::now() + retry);
                next_armed = true;
            }
            () = &mut give_up, if waiting.is_some() => {
                waiting = None;
                out.unanswered += 1;
                next.as_mut().reset(Instant::now());
                next_armed = true;
            }
            () = &mut next, if next_armed && waiting.is_none() => {
                next_armed = false;
                if until.is_none_or(|u| Instant::now() >= u) {
                    continue;
                }
                if let Err(e) = ws.send(wire::read(n, &id)).await {
                    break Some(format!("send: {e}"));
                }
                waiting = Some((n, wire::now_us()));
                give_up.as_mut().reset(Instant::now() + pace.ack_timeout);
                n += 1;
                out.sent += 1;
            }
        }
    };
    if waiting.is_some() {
        out.unanswered += 1;
    }
    if out.dropped.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    }
    out
}

/// What one handshake loop did.
#[derive(Debug)]
pub(crate) struct LoopOutcome {
    attempts: u64,
    joins: u64,
    refused: BTreeMap<String, u64>,
    failed: BTreeMap<String, u64>,
    welcome_us: Histogram<u64>,
    refusal_us: Histogram<u64>,
}

impl Default for LoopOutcome {
    fn default() -> Self {
        Self {
            attempts: 0,
            joins: 0,
            refused: BTreeMap::new(),
            failed: BTreeMap::new(),
            welcome_us: histogram(),
            refusal_us: histogram(),
        }
    }
}

/// The hostile user's handshake loops together, as reported.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct LoopReport {
    /// Loops (connections at a time).
    pub(crate) connections: u64,
    /// Handshakes started.
    pub(crate) attempts: u64,
    /// Handshakes that reached `welcome`.
    pub(crate) joins: u64,
    /// CONNECT_ERRORs, by `message` (`rate_limited`, `too_many_connections`, …).
    pub(crate) refused: BTreeMap<String, u64>,
    /// Handshakes that ended otherwise (timeout, reset, …), by reason.
    pub(crate) failed: BTreeMap<String, u64>,
    /// Per second of the phase.
    pub(crate) attempts_per_s: f64,
    /// See `attempts_per_s`.
    pub(crate) joins_per_s: f64,
    /// See `attempts_per_s`.
    pub(crate) refused_per_s: f64,
    /// From the TCP connect to `welcome`.
    pub(crate) welcome: Latency,
    /// From the TCP connect to the CONNECT_ERROR.
    pub(crate) refusal: Latency,
}

impl LoopReport {
    /// CONNECT_ERRORs of any kind.
    pub(crate) fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    /// Folds the loops' outcomes in; `secs` is the phase.
    pub(crate) fn add(&mut self, outs: Vec<LoopOutcome>, secs: f64) {
        let (mut welcome, mut refusal) = (histogram(), histogram());
        for o in outs {
            self.connections += 1;
            self.attempts += o.attempts;
            self.joins += o.joins;
            for (k, v) in o.refused {
                *self.refused.entry(k).or_default() += v;
            }
            for (k, v) in o.failed {
                *self.failed.entry(k).or_default() += v;
            }
            // Same bounds: adding cannot fail.
            let _ = welcome.add(&o.welcome_us);
            let _ = refusal.add(&o.refusal_us);
        }
        self.welcome = Latency::of(&welcome);
        self.refusal = Latency::of(&refusal);
        if secs > 0.0 {
            self.attempts_per_s = self.attempts as f64 / secs;
            self.joins_per_s = self.joins as f64 / secs;
            self.refused_per_s = self.refused_total() as f64 / secs;
        }
    }
}

/// Loops handshakes to `target` from `src` with the CONNECT frame `connect`
/// over `window`: each attempt ends at `welcome` (then the connection is
/// closed at once), at a CONNECT_ERROR, or after `timeout`.
pub(crate) async fn handshakes(
    target: Target,
    src: IpAddr,
    connect: String,
    window: Window,
    timeout: Duration,
) -> LoopOutcome {
    tokio::time::sleep_until(window.start).await;
    let mut out = LoopOutcome::default();
    while Instant::now() < window.until {
        let limit = timeout.min(window.stop_at.saturating_duration_since(Instant::now()));
        let t0 = wire::now_us();
        out.attempts += 1;
        let opened = wire::open(&target, src, connect.clone(), limit).await;
        let us = wire::now_us().saturating_sub(t0).max(1);
        match opened {
            Ok((mut ws, _welcome)) => {
                out.joins += 1;
                out.welcome_us.saturating_record(us);
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
            }
            Err(HandshakeError(why)) => match why.strip_prefix("refused: ") {
                Some(code) => {
                    *out.refused.entry(code.to_owned()).or_default() += 1;
                    out.refusal_us.saturating_record(us);
                }
                None => *out.failed.entry(why).or_default() += 1,
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_report_sums_and_rates() {
        let mut a = LoopOutcome {
            attempts: 10,
            joins: 3,
            ..LoopOutcome::default()
        };
        a.refused.insert("rate_limited".into(), 6);
        a.failed.insert("timeout".into(), 1);
        a.welcome_us.saturating_record(2_000);
        let mut b = LoopOutcome {
            attempts: 10,
            joins: 1,
            ..LoopOutcome::default()
        };
        b.refused.insert("rate_limited".into(), 8);
        b.refused.insert("too_many_connections".into(), 1);
        let mut r = LoopReport::default();
        r.add(vec![a, b], 2.0);
        assert_eq!((r.connections, r.attempts, r.joins), (2, 20, 4));
        assert_eq!(r.refused_total(), 15);
        assert_eq!((r.joins_per_s, r.refused_per_s), (2.0, 7.5));
        assert_eq!(r.welcome.count, 1);
    }

    #[test]
    fn read_report_counts_outcomes() {
        let mut o = ReadOutcome {
            sent: 5,
            unanswered: 1,
            acks: AckCounts {
                ok: 2,
                rate_limited: 1,
                other: 1,
            },
            ..ReadOutcome::default()
        };
        o.other_errors.insert("unavailable".into(), 1);
        o.ack_us.saturating_record(500);
        let mut r = ReadReport::default();
        r.add(vec![o], 2.0);
        assert_eq!((r.sent, r.unanswered, r.acks.total()), (5, 1, 4));
        assert_eq!(r.ok_per_s, 1.0);
        assert_eq!(r.ack.count, 1);
    }
}
