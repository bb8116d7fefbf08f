//! One connected client after `welcome`: answers pings, sends `message sent`
//! on a schedule, and records what it receives. Everything it learns stays
//! in its own [`Outcome`] (no shared locks on the hot path); the scenario
//! merges the outcomes at the end.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::oneshot;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::wire::{self, Incoming, Ws};

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

/// The start signal while it is still awaited; never after.
async fn wait_start(
    start: &mut Option<oneshot::Receiver<Start>>,
) -> Result<Start, oneshot::error::RecvError> {
    match start {
        Some(rx) => rx.await,
        None => std::future::pending().await,
    }
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
/// [`Start`] it is given until its `stop_at`.
pub(crate) async fn run(
    mut ws: Ws,
    id: u32,
    room: usize,
    start: oneshot::Receiver<Start>,
    heard: Arc<AtomicU64>,
) -> Outcome {
    let mut out = Outcome {
        room,
        ..Outcome::default()
    };
    let mut start = Some(start);
    let mut plan: Option<SendPlan> = None;
    let mut ticker: Option<Interval> = None;
    let mut typer: Option<Interval> = None;
    let mut pending: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut newest: HashMap<u32, u32> = HashMap::new();
    let mut next_ack: u64 = 0;
    // Until the scenario starts, the stop is far away.
    let stop = tokio::time::sleep(Duration::from_secs(86_400));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            told = wait_start(&mut start) => {
                let Ok(told) = told else { break };
                start = None;
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
                let text = match frame {
                    Some(Ok(WsMessage::Text(t))) => t,
                    Some(Ok(WsMessage::Close(_))) | None => {
                        out.dropped = Some("closed by server".into());
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => {
                        out.dropped = Some(format!("read: {e}"));
                        break;
                    }
                };
                match wire::classify(text.as_str()) {
                    Incoming::Ping => {
                        if let Err(e) = ws.send(WsMessage::text("3")).await {
                            out.dropped = Some(format!("pong: {e}"));
                            break;
                        }
                    }
                    Incoming::Delivery(body) => {
                        let now = wire::now_us();
                        if let Some((key, ts)) = parse_text(body) {
                            if !seen.insert(key) {
                                out.duplicated += 1;
                                continue;
                            }
                            let sender = (key >> 32) as u32;
                            let seq = key as u32;
                            let last = newest.entry(sender).or_insert(seq);
                            if seq < *last {
                                out.out_of_order += 1;
                            } else {
                                *last = seq;
                            }
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
                    Incoming::Closed => {
                        out.dropped = Some("disconnected by server".into());
                        break;
                    }
                    Incoming::Other => {}
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
                    out.dropped = Some(format!("send: {e}"));
                    break;
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
                    out.dropped = Some(format!("send typing: {e}"));
                    break;
                }
                out.typing_sent += 1;
            }
        }
    }
    if out.dropped.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    }
    out.unacked_sent_us = pending.into_values().map(|(_, sent_at)| sent_at).collect();
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
    fn classify_reads_deliveries_acks_and_pings() {
        let d = r#"42["message received",{"id":"1-0","room":"r0","user":{"id":"u","name":"n"},"text":"1:2:3","ts":1}]"#;
        assert!(matches!(wire::classify(d), Incoming::Delivery("1:2:3")));
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
