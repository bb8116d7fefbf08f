//! The hostile user's room, filled before anyone else connects (the
//! `hostile-read` scenario's 1000 large messages; `reconnect-loop`'s welcome
//! history), through the contract (`message sent`), by users of their own
//! who send the default send burst each, a few users at a time: the sides
//! are filled alike and no budget refuses them. The fillers leave at once;
//! the phases start `--fill-settle-s` later (by default past the gateway's
//! `EXIT_GRACE_S`), so that Redis's work for their exits is in neither.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_core::MessageId;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};

use super::{Ctx, Job};
use crate::report::RoomFill;
use crate::wire::{self, Incoming};

/// Messages one filler sends: the contract's default send burst.
const FILL_PER_USER: usize = 20;
/// Fillers connected at a time.
const FILL_AT_ONCE: usize = 4;
/// The character of the filling texts: 4 bytes in UTF-8.
const FILL_CHAR: &str = "😀";
/// The longest one filler may take.
const FILL_TIMEOUT: Duration = Duration::from_secs(60);

/// The hostile user's room, filled.
pub(super) struct Filled {
    /// How.
    pub(super) room: RoomFill,
    /// When the fillers' exits are done with.
    pub(super) ready_at: Instant,
}

impl Ctx<'_> {
    /// Fills the hostile user's room with `count` messages of `chars` ×
    /// [`FILL_CHAR`]; returns how, when the phases may start, and the oldest
    /// message's id.
    pub(super) async fn fill_hostile_room(
        &self,
        count: usize,
        chars: usize,
    ) -> anyhow::Result<(Filled, Option<MessageId>)> {
        if count == 0 {
            let ready_at = Instant::now();
            return Ok((
                Filled {
                    room: RoomFill::default(),
                    ready_at,
                },
                None,
            ));
        }
        let started = Instant::now();
        let mut fill = RoomFill {
            message_bytes: (chars * FILL_CHAR.len()) as u64,
            ..RoomFill::default()
        };
        let mut oldest = None;
        let room = self.hostile_room();
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
        while let Some(joined) = set.join_next().await {
            let (ids, errors) = joined.context("a filler panicked")?;
            fill.messages += ids.len() as u64;
            oldest = oldest.into_iter().chain(ids).min();
            for (k, v) in errors {
                *fill.errors.entry(k).or_default() += v;
            }
        }
        fill.secs = started.elapsed().as_secs_f64();
        let ready_at = Instant::now() + Duration::from_secs_f64(self.args.fill_settle_s);
        Ok((
            Filled {
                room: fill,
                ready_at,
            },
            oldest,
        ))
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
        let Ok(frame) = timeout_at(deadline, ws.next()).await else {
            break;
        };
        let frame = match wire::text_answering_ping(&mut ws, frame).await {
            Ok(Some(text)) => text,
            Ok(None) => continue,
            Err(_) => break,
        };
        if let Incoming::Ack(_, ok, body) = wire::classify(frame.as_str()) {
            answered += 1;
            match wire::acked_id(body).filter(|_| ok) {
                Some(id) => ids.push(id),
                None => *errors.entry(wire::ack_error(body)).or_default() += 1,
            }
        }
    }
    if answered < n {
        errors.insert("unanswered".into(), (n - answered) as u64);
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    (ids, errors)
}
