//! `hostile-read`: the normal users' fan-out traffic, without and then with
//! one hostile user beside them ([`phases`](super::phases)) whose room holds
//! `room-messages` messages of `room-message-chars` × '😀' (2000: 8,000
//! bytes, the largest text there is), and who sends `read { id }` with the
//! oldest of them, as fast as its budget allows, from `abuser-connections`
//! connections ([`hostile::reads`]). Each such `read` asks to mark read the
//! whole room: a server that counts what follows the id by reading it pays
//! for every one of those messages.
//!
//! The room is filled before anyone else connects, through the contract
//! (`message sent`), by users of their own who send the default send
//! burst each, a few users at a time: the sides are filled alike and no
//! budget refuses them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_core::MessageId;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::phases::{hostile_runtime, tell};
use super::{Ctx, Job};
use crate::hostile::{self, ReadPace, ReadReport};
use crate::report::{HostileReadReport, Report};
use crate::wire::{self, Incoming};

/// Messages one filler sends: the contract's default send burst.
const FILL_PER_USER: usize = 20;
/// Fillers connected at a time.
const FILL_AT_ONCE: usize = 4;
/// The character of the filling texts: 4 bytes in UTF-8.
const FILL_CHAR: &str = "😀";
/// The longest one filler may take.
const FILL_TIMEOUT: Duration = Duration::from_secs(60);

/// How the room was filled.
#[derive(Debug, Default)]
struct Fill {
    /// Messages acked `ok`: what the room holds.
    acked: u64,
    /// Sends refused, unanswered or never made, by reason.
    errors: BTreeMap<String, u64>,
    /// The oldest acked id.
    oldest: Option<MessageId>,
}

impl Ctx<'_> {
    /// Runs the `hostile-read` scenario.
    pub(super) async fn hostile_read(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let started = Instant::now();
        let fill = self
            .fill_room(self.hostile_room(), a.room_messages, a.room_message_chars)
            .await?;
        let fill_s = started.elapsed().as_secs_f64();
        // With nothing stored, the read names the oldest id there can be.
        let read_id = fill
            .oldest
            .map_or_else(|| "0-1".to_owned(), |id| id.to_string());
        let pop = self.normal_users().await?;
        let jobs = self.hostile_jobs(a.abuser_connections)?;
        let rt = hostile_runtime()?;
        let pace = ReadPace {
            retry: Duration::from_millis(a.read_retry_ms),
            ack_timeout: Duration::from_millis(a.read_ack_timeout_ms),
        };
        let id = read_id.clone();
        let (readers, handshakes) = self
            .connect_hostile(jobs, rt.handle(), move |ws, plan| {
                hostile::reads(ws, id.clone(), pace, plan)
            })
            .await?;
        let run = self
            .beside_normal_traffic(pop, |w| tell(readers, w))
            .await
            .context("the hostile reads")?;
        // Every reading task has ended; nothing is left to wait for.
        rt.shutdown_background();
        let mut reads = ReadReport {
            connections_attempted: handshakes.attempted,
            connections_ok: handshakes.ok,
            connect_errors: handshakes.errors,
            ..ReadReport::default()
        };
        reads.add(run.hostile, a.duration);
        let mut r = run.report;
        for (k, v) in [
            ("room_messages", a.room_messages.into()),
            ("room_message_chars", a.room_message_chars.into()),
            ("read_retry_ms", a.read_retry_ms.into()),
            ("read_ack_timeout_ms", a.read_ack_timeout_ms.into()),
        ] {
            r.params.insert(k.into(), v);
        }
        r.hostile_read = Some(HostileReadReport {
            phases: run.phases,
            room_messages: fill.acked,
            message_bytes: (a.room_message_chars * FILL_CHAR.len()) as u64,
            fill_errors: fill.errors,
            fill_s,
            read_id,
            reads,
        });
        Ok(r)
    }

    /// Fills scenario room `room` with `count` messages of `chars` ×
    /// [`FILL_CHAR`], [`FILL_PER_USER`] per user, [`FILL_AT_ONCE`] users at a
    /// time (each connection receives the messages sent while it is there).
    async fn fill_room(&self, room: usize, count: usize, chars: usize) -> anyhow::Result<Fill> {
        let users = count.div_ceil(FILL_PER_USER);
        let jobs = self.prepare_for(users, |_| room, |i| format!("filler{i}"))?;
        let text: Arc<str> = FILL_CHAR.repeat(chars).into();
        let permits = Arc::new(Semaphore::new(FILL_AT_ONCE));
        let timeout = Duration::from_secs(self.args.connect_timeout_s);
        let mut set = JoinSet::new();
        for job in jobs {
            let n = FILL_PER_USER.min(count - job.i * FILL_PER_USER);
            let (permits, text) = (permits.clone(), text.clone());
            set.spawn(async move {
                let _permit = permits.acquire_owned().await;
                fill_one(job, n, &text, timeout).await
            });
        }
        let mut fill = Fill::default();
        while let Some(joined) = set.join_next().await {
            let (ids, errors) = joined.context("a filler panicked")?;
            fill.acked += ids.len() as u64;
            fill.oldest = fill.oldest.into_iter().chain(ids).min();
            for (k, v) in errors {
                *fill.errors.entry(k).or_default() += v;
            }
        }
        Ok(fill)
    }
}

/// One filler: connects, sends `n` × `text` at once, waits for every ack,
/// closes. Returns the acked ids and the other outcomes by reason.
async fn fill_one(
    job: Job,
    n: usize,
    text: &str,
    timeout: Duration,
) -> (Vec<MessageId>, BTreeMap<String, u64>) {
    let mut ids = Vec::with_capacity(n);
    let mut errors = BTreeMap::new();
    let mut ws = match wire::open(&job.target, job.src, job.connect, timeout).await {
        Ok((ws, _welcome)) => ws,
        Err(e) => {
            errors.insert(format!("connect: {}", e.0), n as u64);
            return (ids, errors);
        }
    };
    let deadline = Instant::now() + FILL_TIMEOUT;
    for k in 0..n {
        if let Err(e) = ws.feed(wire::message_sent(k as u64, text)).await {
            errors.insert(format!("send: {e}"), (n - k) as u64);
            return (ids, errors);
        }
    }
    let mut answered = 0;
    if let Err(e) = ws.flush().await {
        errors.insert(format!("send: {e}"), n as u64);
        return (ids, errors);
    }
    while answered < n {
        let frame = match timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => t,
            Ok(Some(Ok(WsMessage::Close(_))) | None) | Err(_) => break,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) => break,
        };
        match wire::classify(frame.as_str()) {
            Incoming::Ping => {
                let _ = ws.send(WsMessage::text("3")).await;
            }
            Incoming::Ack(_, ok, body) => {
                answered += 1;
                match wire::acked_id(body).filter(|_| ok) {
                    Some(id) => ids.push(id),
                    None => *errors.entry(wire::ack_error(body)).or_default() += 1,
                }
            }
            _ => {}
        }
    }
    if answered < n {
        errors.insert("unanswered".into(), (n - answered) as u64);
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    (ids, errors)
}
