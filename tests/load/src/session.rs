//! One connected client after `welcome`: answers pings, sends `message sent`
//! on a schedule, and records what it receives. Everything it learns stays
//! in its own [`Outcome`] (no shared locks on the hot path); the scenario
//! merges the outcomes at the end. A client whose connection was lost can
//! [`resume`] on a new one, with what it saw so far.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chat_core::MessageId;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::wire::{self, Entry, Incoming, Ws};

/// When and how a client sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendPlan {
    /// First send.
    pub(crate) start: Instant,
    /// Time between sends.
    pub(crate) period: Duration,
    /// No sends after this.
    pub(crate) until: Instant,
    /// At most this many sends.
    pub(crate) max: u64,
    /// Bytes of padding added to each text.
    pub(crate) pad: usize,
    /// Also emit `typing` this often (from `start` until `until`), if set.
    pub(crate) typing: Option<Duration>,
}

impl SendPlan {
    /// Sending every `period` from `start` until `until`, with no cap on the
    /// count, `pad` bytes of padding and no `typing`.
    pub(crate) fn steady(start: Instant, period: Duration, until: Instant, pad: usize) -> Self {
        Self {
            start,
            period,
            until,
            max: u64::MAX,
            pad,
            typing: None,
        }
    }

    /// This plan for sender `slot` of `senders`: its first send comes
    /// `slot / senders` of a period later, so that senders spread over the
    /// period instead of sending in lockstep.
    pub(crate) fn spread(mut self, slot: usize, senders: usize) -> Self {
        self.start += self.period.mul_f64(slot as f64 / senders.max(1) as f64);
        self
    }
}

/// What a connected client is told when the scenario starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    /// When and how it sends, if it does.
    pub(crate) plan: Option<SendPlan>,
    /// When it disconnects.
    pub(crate) stop_at: Instant,
}

/// What one client saw.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Index of the room it is in, within the scenario.
    pub(crate) room: usize,
    /// `message sent` emitted.
    pub(crate) sent: u64,
    /// Keys (sender << 32 | seq) of its messages acked `ok: true`.
    pub(crate) acked_keys: Vec<u64>,
    /// Acks with `ok: false`, by error.
    pub(crate) ack_errors: HashMap<String, u64>,
    /// Acks: (send time on the [`wire::now_us`] clock, latency), µs.
    pub(crate) ack_us: Vec<(u64, u32)>,
    /// Send times of the messages never acknowledged before the session ended.
    pub(crate) unacked_sent_us: Vec<u64>,
    /// First deliveries: (key, end-to-end latency µs).
    pub(crate) deliveries: Vec<(u64, u32)>,
    /// Deliveries of a key it had already received.
    pub(crate) duplicated: u64,
    /// Deliveries older than one already received from the same sender.
    pub(crate) out_of_order: u64,
    /// Why the connection ended before the scenario ended it.
    pub(crate) dropped: Option<String>,
    /// `typing` emitted.
    pub(crate) typing_sent: u64,
    /// `user typing` received after the scenario started it.
    pub(crate) typing_received: u64,
    /// Keys of the messages first received in a reconnect's `welcome.history`
    /// (deliveries too, without a latency).
    pub(crate) recovered: Vec<u64>,
    /// The newest message id received (live, in a reconnect's history, or in
    /// the first `welcome`): the `since` of its next handshake.
    pub(crate) last_id: Option<MessageId>,
}

/// What a client has received so far, to tell repeats and reordering.
#[derive(Debug, Default)]
struct Received {
    /// Keys received.
    seen: HashSet<u64>,
    /// The highest sequence number received, per sender.
    newest: HashMap<u32, u32>,
}

impl Received {
    /// What the outcome of a client's earlier connections says it received.
    fn of(out: &Outcome) -> Self {
        let mut r = Self::default();
        for &key in out.deliveries.iter().map(|(k, _)| k).chain(&out.recovered) {
            r.seen.insert(key);
            let newest = r.newest.entry((key >> 32) as u32).or_default();
            *newest = (*newest).max(key as u32);
        }
        r
    }

    /// Notes message `key`: true the first time; a repeat counts as
    /// duplicated, an older sequence than the sender's newest as out of order.
    fn first(&mut self, key: u64, out: &mut Outcome) -> bool {
        if !self.seen.insert(key) {
            out.duplicated += 1;
            return false;
        }
        let sender = (key >> 32) as u32;
        let seq = key as u32;
        let last = self.newest.entry(sender).or_insert(seq);
        if seq < *last {
            out.out_of_order += 1;
        } else {
            *last = seq;
        }
        true
    }
}

/// The text of message `seq` from `sender`, carrying its send time.
fn text_of(sender: u32, seq: u32, pad: usize) -> String {
    let mut t = format!("{sender}:{seq}:{}", wire::now_us());
    if pad > 0 {
        t.push(':');
        t.extend(std::iter::repeat_n('x', pad));
    }
    t
}

/// (key, send µs) of a text made by [`text_of`]; `None` for foreign text.
fn parse_text(text: &str) -> Option<(u64, u64)> {
    let mut it = text.split(':');
    let sender: u64 = it.next()?.parse().ok()?;
    let seq: u64 = it.next()?.parse().ok()?;
    let ts: u64 = it.next()?.parse().ok()?;
    Some(((sender << 32) | seq, ts))
}

/// The value a `select!` branch waits for once: `rx`'s, which it then
/// takes (`rx` becomes `None`); while `rx` is `None`, never.
pub(crate) async fn once<T>(
    rx: &mut Option<oneshot::Receiver<T>>,
) -> Result<T, oneshot::error::RecvError> {
    let Some(waiting) = rx else {
        return std::future::pending().await;
    };
    let value = waiting.await;
    *rx = None;
    value
}

async fn tick(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs client `id` (in scenario room `room`) from its `welcome` on: it
/// reads (and answers pings) at once, as a real client does, counting every
/// frame that arrives before `start` in `heard`; then it follows the
/// [`Start`] it is given until its `stop_at`. `since` is the newest message
/// of its `welcome.history`, if any.
pub(crate) async fn run(
    ws: Ws,
    id: u32,
    room: usize,
    since: Option<MessageId>,
    start: oneshot::Receiver<Start>,
    heard: Arc<AtomicU64>,
) -> Outcome {
    let out = Outcome {
        room,
        last_id: since,
        ..Outcome::default()
    };
    drive(ws, id, out, Received::default(), start, heard).await
}

/// Goes on with client `id`'s session on a new connection `ws` after its
/// earlier one was lost; `prior` is what it saw until then. The messages of
/// the new welcome's `history` it had not received count as recovered, then
/// it runs as [`run`] does until `start.stop_at`. Its sequence numbers go on
/// from `prior`'s, so that its keys stay unique.
pub(crate) async fn resume(
    ws: Ws,
    id: u32,
    mut prior: Outcome,
    history: &[Entry],
    start: Start,
) -> Outcome {
    prior.dropped = None;
    let mut received = Received::of(&prior);
    recover(&mut prior, &mut received, history);
    let (told, start_rx) = oneshot::channel();
    // The receiver is right here: sending cannot fail.
    let _ = told.send(start);
    drive(ws, id, prior, received, start_rx, Arc::default()).await
}

/// Takes a reconnect's `welcome.history` into `out`: the newest id, and
/// the messages not received before as recovered (repeats as duplicated).
fn recover(out: &mut Outcome, received: &mut Received, history: &[Entry]) {
    for e in history {
        out.last_id = out.last_id.max(Some(e.id));
        if let Some((key, _)) = parse_text(&e.text)
            && received.first(key, out)
        {
            out.recovered.push(key);
        }
    }
}

/// The session loop of [`run`] and [`resume`], adding to `out`.
async fn drive(
    mut ws: Ws,
    id: u32,
    mut out: Outcome,
    mut received: Received,
    start: oneshot::Receiver<Start>,
    heard: Arc<AtomicU64>,
) -> Outcome {
    let mut start = Some(start);
    let mut plan: Option<SendPlan> = None;
    let mut ticker: Option<Interval> = None;
    let mut typer: Option<Interval> = None;
    let mut pending: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut next_ack: u64 = 0;
    // Until the scenario starts, the stop is far away.
    let stop = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(stop);
    out.dropped = loop {
        tokio::select! {
            biased;
            () = &mut stop => break None,
            told = once(&mut start) => {
                let Ok(told) = told else { break None };
                plan = told.plan;
                ticker = plan.map(|p| {
                    let mut t = tokio::time::interval_at(p.start, p.period);
                    t.set_missed_tick_behavior(MissedTickBehavior::Skip);
                    t
                });
                typer = plan.and_then(|p| {
                    let every = p.typing?;
                    let mut t = tokio::time::interval_at(p.start, every);
                    t.set_missed_tick_behavior(MissedTickBehavior::Skip);
                    Some(t)
                });
                stop.as_mut().reset(told.stop_at);
            }
            frame = ws.next() => {
                if start.is_some() {
                    heard.fetch_add(1, Ordering::Relaxed);
                }
                let text = match wire::text_answering_ping(&mut ws, frame).await {
                    Ok(Some(text)) => text,
                    Ok(None) => continue,
                    Err(why) => break Some(why),
                };
                match wire::classify(text.as_str()) {
                    Incoming::Delivery { id: msg, text } => {
                        let now = wire::now_us();
                        out.last_id = out.last_id.max(msg);
                        if let Some((key, ts)) = parse_text(text)
                            && received.first(key, &mut out)
                        {
                            let lat = now.saturating_sub(ts).min(u64::from(u32::MAX)) as u32;
                            out.deliveries.push((key, lat));
                        }
                    }
                    Incoming::Ack(ack, ok, body) => {
                        if let Some((key, sent_at)) = pending.remove(&ack) {
                            let lat = wire::now_us().saturating_sub(sent_at);
                            out.ack_us.push((sent_at, lat.min(u64::from(u32::MAX)) as u32));
                            if ok {
                                out.acked_keys.push(key);
                            } else {
                                *out.ack_errors.entry(wire::ack_error(body)).or_default() += 1;
                            }
                        }
                    }
                    Incoming::Typing => {
                        if start.is_none() {
                            out.typing_received += 1;
                        }
                    }
                    Incoming::Ping | Incoming::Other => {}
                }
            }
            () = tick(&mut ticker) => {
                let Some(p) = plan else { continue };
                if Instant::now() >= p.until || out.sent >= p.max {
                    ticker = None;
                    continue;
                }
                let seq = out.sent as u32;
                let text = text_of(id, seq, p.pad);
                let key = (u64::from(id) << 32) | u64::from(seq);
                pending.insert(next_ack, (key, wire::now_us()));
                if let Err(e) = ws.send(wire::message_sent(next_ack, &text)).await {
                    break Some(format!("send: {e}"));
                }
                next_ack += 1;
                out.sent += 1;
            }
            () = tick(&mut typer) => {
                if plan.is_none_or(|p| Instant::now() >= p.until) {
                    typer = None;
                    continue;
                }
                if let Err(e) = ws.send(wire::typing()).await {
                    break Some(format!("send typing: {e}"));
                }
                out.typing_sent += 1;
            }
        }
    };
    out.unacked_sent_us
        .extend(pending.into_values().map(|(_, sent_at)| sent_at));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_key_and_time() {
        let t = text_of(7, 3, 4);
        let (key, ts) = parse_text(&t).expect("own text parses");
        assert_eq!(key, (7 << 32) | 3);
        assert!(ts <= wire::now_us());
        assert!(t.ends_with(":xxxx"));
    }

    #[test]
    fn spread_plans_start_within_one_period_in_slot_order() {
        let t0 = Instant::now();
        let period = Duration::from_secs(1);
        let plan = SendPlan::steady(t0, period, t0 + period * 10, 0);
        let starts: Vec<Duration> = (0..4).map(|slot| plan.spread(slot, 4).start - t0).collect();
        assert_eq!(
            starts,
            [0, 250, 500, 750].map(Duration::from_millis),
            "one period shared out evenly"
        );
        assert_eq!(plan.spread(0, 0).start, t0, "no senders: no offset");
        assert_eq!((plan.max, plan.typing), (u64::MAX, None));
    }

    #[test]
    fn history_recovers_what_was_missed_once() {
        let entry = |id: &str, text: &str| Entry {
            id: id.parse().expect("a valid id"),
            text: text.into(),
        };
        let key = |seq: u64| (1 << 32) | seq;
        // Received live before the drop: sender 1's messages 0 and 1.
        let mut out = Outcome {
            deliveries: vec![(key(0), 10), (key(1), 10)],
            last_id: Some("5-0".parse().expect("a valid id")),
            ..Outcome::default()
        };
        let mut received = Received::of(&out);
        let history = [
            entry("6-0", "1:2:100"),
            entry("7-0", "1:1:90"),
            entry("8-0", "not one of ours"),
            entry("9-0", "1:3:110"),
        ];
        recover(&mut out, &mut received, &history);
        assert_eq!(out.recovered, vec![key(2), key(3)]);
        assert_eq!(out.duplicated, 1);
        assert_eq!(out.last_id, Some("9-0".parse().expect("a valid id")));
        // The same message again, live on the new connection, is a duplicate too.
        assert!(!received.first(key(3), &mut out));
        assert!(received.first(key(4), &mut out));
        assert_eq!((out.duplicated, out.out_of_order), (2, 0));
    }

    #[test]
    fn classify_reads_deliveries_acks_and_pings() {
        let d = r#"42["message received",{"id":"1-0","room":"r0","user":{"id":"u","name":"n"},"text":"1:2:3","ts":1}]"#;
        assert!(matches!(
            wire::classify(d),
            Incoming::Delivery {
                id: Some(MessageId { ms: 1, seq: 0 }),
                text: "1:2:3"
            }
        ));
        assert!(matches!(
            wire::classify(r#"4312[{"ok":true,"id":"1-0"}]"#),
            Incoming::Ack(12, true, _)
        ));
        assert!(matches!(
            wire::classify(r#"430[{"ok":false,"error":"rate_limited"}]"#),
            Incoming::Ack(0, false, _)
        ));
        assert!(matches!(wire::classify("2"), Incoming::Ping));
        assert_eq!(
            wire::ack_error(r#"[{"ok":false,"error":"rate_limited"}]"#),
            "rate_limited"
        );
    }
}
