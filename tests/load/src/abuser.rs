//! One connection of the abusive user of the `flood` scenario. Once told to
//! start, it pipelines `message sent` and `history { before, limit: 100 }`
//! (alternately) as fast as the socket takes them, never waiting for an ack,
//! until its event count or its time is used up. Meanwhile it reads
//! everything the server sends, answers pings and counts the acks by
//! outcome. Both halves stop by themselves at the plan's `stop_at`.
//!
//! Ack ids tell the two kinds apart: even ids are `message sent`, odd ids
//! `history`.

use std::collections::BTreeMap;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::hostile::Window;
use crate::session;
use crate::wire::{self, Incoming, Ws};

/// Frames written between two flushes.
const BATCH: u64 = 32;

/// `before` of every `history` request: later than any id, so the answer is
/// the room's newest 100 messages, the most expensive request there is.
const HISTORY_BEFORE: &str = "9999999999999-0";

/// When and how much one abusive connection floods.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FloodPlan {
    /// Events from its `start` until its `until`; the close at its `stop_at`.
    pub(crate) window: Window,
    /// At most this many events (both kinds together).
    pub(crate) max_events: u64,
}

/// Acks of one kind of event, by outcome.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct AckCounts {
    /// `{ ok: true, … }`.
    pub(crate) ok: u64,
    /// `{ ok: false, error: "rate_limited" }`.
    pub(crate) rate_limited: u64,
    /// Any other answer.
    pub(crate) other: u64,
}

impl AckCounts {
    /// All acks counted.
    pub(crate) fn total(&self) -> u64 {
        self.ok + self.rate_limited + self.other
    }

    /// Counts one ack, `ok` or not, its `body` telling the error; an error
    /// other than `rate_limited` is also counted by name in `other_errors`.
    pub(crate) fn count(&mut self, ok: bool, body: &str, other_errors: &mut BTreeMap<String, u64>) {
        if ok {
            self.ok += 1;
            return;
        }
        let error = wire::ack_error(body);
        if error == "rate_limited" {
            self.rate_limited += 1;
        } else {
            self.other += 1;
            *other_errors.entry(error).or_default() += 1;
        }
    }

    /// Adds `o`'s counts.
    pub(crate) fn add(&mut self, o: &Self) {
        self.ok += o.ok;
        self.rate_limited += o.rate_limited;
        self.other += o.other;
    }
}

/// What one abusive connection did and saw.
#[derive(Debug, Default)]
pub(crate) struct AbuserOutcome {
    /// `message sent` written.
    pub(crate) sent_messages: u64,
    /// `history` written.
    pub(crate) sent_history: u64,
    /// Acks of `message sent`.
    pub(crate) message_acks: AckCounts,
    /// Acks of `history`.
    pub(crate) history_acks: AckCounts,
    /// The errors counted as `other`, by error.
    pub(crate) other_errors: BTreeMap<String, u64>,
    /// The reason of a `session ended` the server sent.
    pub(crate) session_ended: Option<String>,
    /// Why the connection ended before the plan ended it.
    pub(crate) dropped: Option<String>,
}

/// The abusive user's connections together, as reported.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AbuserReport {
    /// Handshakes tried.
    pub(crate) connections_attempted: u64,
    /// Handshakes that reached `welcome`.
    pub(crate) connections_ok: u64,
    /// Refused or failed handshakes, by reason (`refused: too_many_connections`, …).
    pub(crate) connect_errors: BTreeMap<String, u64>,
    /// Connections the server ended early, by reason.
    pub(crate) dropped: BTreeMap<String, u64>,
    /// `session ended` received, by reason (`slow_consumer`, …).
    pub(crate) sessions_ended: BTreeMap<String, u64>,
    /// `message sent` written.
    pub(crate) sent_messages: u64,
    /// `history` written.
    pub(crate) sent_history: u64,
    /// Events written per second of flooding, all connections.
    pub(crate) events_per_s: f64,
    /// Acks of `message sent`.
    pub(crate) message_acks: AckCounts,
    /// Acks of `history`.
    pub(crate) history_acks: AckCounts,
    /// All acks, both kinds.
    pub(crate) acks: AckCounts,
    /// The errors counted as `other`, by error.
    pub(crate) other_errors: BTreeMap<String, u64>,
    /// Events never answered before the connection closed.
    pub(crate) unacked: u64,
}

impl AbuserReport {
    /// Folds the connections' outcomes in; `flood_s` is the flooding window.
    pub(crate) fn add(&mut self, outs: Vec<AbuserOutcome>, flood_s: f64) {
        for o in outs {
            self.sent_messages += o.sent_messages;
            self.sent_history += o.sent_history;
            self.message_acks.add(&o.message_acks);
            self.history_acks.add(&o.history_acks);
            for (k, v) in o.other_errors {
                *self.other_errors.entry(k).or_default() += v;
            }
            if let Some(why) = o.session_ended {
                *self.sessions_ended.entry(why).or_default() += 1;
            }
            if let Some(why) = o.dropped {
                *self.dropped.entry(why).or_default() += 1;
            }
        }
        self.acks = self.message_acks;
        self.acks.add(&self.history_acks);
        let sent = self.sent_messages + self.sent_history;
        self.unacked = sent.saturating_sub(self.acks.total());
        if flood_s > 0.0 {
            self.events_per_s = sent as f64 / flood_s;
        }
    }
}

/// Runs one abusive connection: reads from now on, floods once `plan` comes.
pub(crate) async fn run(ws: Ws, plan: oneshot::Receiver<FloodPlan>) -> AbuserOutcome {
    let (sink, stream) = ws.split();
    // The reader asks the writer for pongs; a few pending are plenty.
    let (pong_tx, pong_rx) = mpsc::channel(4);
    let (stop_tx, stop_rx) = oneshot::channel();
    let writer = tokio::spawn(write(sink, plan, pong_rx, stop_tx));
    let mut out = read(stream, pong_tx, stop_rx).await;
    match writer.await {
        Ok((messages, history, err)) => {
            out.sent_messages = messages;
            out.sent_history = history;
            if out.dropped.is_none() {
                out.dropped = err;
            }
        }
        Err(e) => out.dropped = Some(format!("writer: {e}")),
    }
    out
}

/// The frame of event `n`: `message sent` when even, `history` when odd.
fn event(n: u64) -> WsMessage {
    if n.is_multiple_of(2) {
        wire::message_sent(n, &format!("flood {n}"))
    } else {
        wire::history(n, HISTORY_BEFORE, 100)
    }
}

/// The writing half: pongs while waiting, the flood, pongs until `stop_at`,
/// then the close. Tells the reader `stop_at` once the plan is known.
/// Returns the `message sent` and `history` written and a write error.
async fn write(
    mut sink: SplitSink<Ws, WsMessage>,
    plan: oneshot::Receiver<FloodPlan>,
    mut pongs: mpsc::Receiver<()>,
    stop: oneshot::Sender<Instant>,
) -> (u64, u64, Option<String>) {
    tokio::pin!(plan);
    let plan = loop {
        tokio::select! {
            p = &mut plan => match p {
                Ok(p) => break p,
                // The scenario gave up before the flood: nothing to do.
                Err(_) => return (0, 0, None),
            },
            Some(()) = pongs.recv() => {
                if let Err(e) = sink.send(wire::pong()).await {
                    return (0, 0, Some(format!("pong: {e}")));
                }
            }
        }
    };
    let _ = stop.send(plan.window.stop_at);
    tokio::time::sleep_until(plan.window.start).await;
    let mut n: u64 = 0;
    let mut err = None;
    'flood: while n < plan.max_events && Instant::now() < plan.window.until {
        while pongs.try_recv().is_ok() {
            if let Err(e) = sink.feed(wire::pong()).await {
                err = Some(format!("pong: {e}"));
                break 'flood;
            }
        }
        let end = (n + BATCH).min(plan.max_events);
        while n < end {
            match timeout_at(plan.window.until, sink.feed(event(n))).await {
                Ok(Ok(())) => n += 1,
                Ok(Err(e)) => {
                    err = Some(format!("send: {e}"));
                    break 'flood;
                }
                // The socket stopped taking frames until the time was up.
                Err(_) => break 'flood,
            }
        }
        match timeout_at(plan.window.until, sink.flush()).await {
            Ok(Ok(())) | Err(_) => {}
            Ok(Err(e)) => {
                err = Some(format!("send: {e}"));
                break;
            }
        }
        // A socket with room left rarely makes a write wait, so without this
        // the writer would keep its thread and starve this connection's reader.
        tokio::task::yield_now().await;
    }
    let (messages, history) = (n.div_ceil(2), n / 2);
    if err.is_some() {
        return (messages, history, err);
    }
    let _ = timeout_at(plan.window.stop_at, sink.flush()).await;
    while let Ok(Some(())) = timeout_at(plan.window.stop_at, pongs.recv()).await {
        if timeout_at(plan.window.stop_at, sink.send(wire::pong()))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    (messages, history, None)
}

/// The reading half: counts acks by kind and outcome, notes `session ended`
/// and an early close, until the `stop_at` the writer passes on.
async fn read(
    mut stream: SplitStream<Ws>,
    pongs: mpsc::Sender<()>,
    stop: oneshot::Receiver<Instant>,
) -> AbuserOutcome {
    let mut out = AbuserOutcome::default();
    // Until the plan is known the stop is far away.
    let deadline = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(deadline);
    let mut stop = Some(stop);
    out.dropped = loop {
        tokio::select! {
            () = &mut deadline => break None,
            at = session::once(&mut stop) => match at {
                Ok(at) => deadline.as_mut().reset(at),
                // The writer ended before any plan: so does the reader.
                Err(_) => break None,
            },
            frame = stream.next() => {
                let text = match wire::text(frame) {
                    Ok(Some(text)) => text,
                    Ok(None) => continue,
                    Err(why) => break Some(why),
                };
                let text = text.as_str();
                match wire::classify(text) {
                    Incoming::Ping => {
                        let _ = pongs.try_send(());
                    }
                    Incoming::Ack(id, ok, body) => {
                        let counts = if id.is_multiple_of(2) {
                            &mut out.message_acks
                        } else {
                            &mut out.history_acks
                        };
                        counts.count(ok, body, &mut out.other_errors);
                    }
                    Incoming::Delivery { .. } | Incoming::Typing | Incoming::Other => {
                        if let Some(reason) = wire::session_ended(text) {
                            out.session_ended = Some(reason);
                        }
                    }
                }
            }
        }
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_alternate_and_ack_ids_tell_the_kind() {
        let m = event(4).into_text().expect("text frame");
        assert!(m.starts_with("424[\"message sent\""), "{m}");
        let h = event(5).into_text().expect("text frame");
        assert_eq!(
            h.as_str(),
            r#"425["history",{"before":"9999999999999-0","limit":100}]"#
        );
    }

    #[test]
    fn report_counts_unacked_and_outcomes() {
        let mut r = AbuserReport::default();
        let o = AbuserOutcome {
            sent_messages: 5,
            sent_history: 4,
            message_acks: AckCounts {
                ok: 1,
                rate_limited: 3,
                other: 0,
            },
            history_acks: AckCounts {
                ok: 2,
                rate_limited: 1,
                other: 1,
            },
            session_ended: Some("slow_consumer".into()),
            ..AbuserOutcome::default()
        };
        r.add(vec![o], 2.0);
        assert_eq!(r.acks.total(), 8);
        assert_eq!(r.unacked, 1);
        assert_eq!(r.events_per_s, 4.5);
        assert_eq!(r.sessions_ended.get("slow_consumer"), Some(&1));
    }
}
