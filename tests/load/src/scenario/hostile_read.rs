//! `hostile-read`: the normal users' fan-out traffic, without and then with
//! one hostile user beside them ([`phases`](super::phases)) whose room holds
//! `room-messages` messages of `room-message-chars` × '😀' (2000: 8,000
//! bytes, the largest text there is; [`fill`](super::fill)), and who sends
//! `read { id }` with the oldest of them, as fast as its budget allows, from
//! `abuser-connections` connections ([`hostile::reads`]). Each such `read`
//! asks to mark read the whole room: a server that counts what follows the
//! id by reading it pays for every one of those messages.
//!
//! What one read costs Redis is measured apart (`--read-alone-s`), before
//! the normal users connect: the same reads on connections of their own,
//! with nothing else going on, against as long a reading of Redis at rest
//! just before. Beside the normal traffic the reads are a small part of
//! Redis's work, and the phases' spread would swamp them.

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use super::Ctx;
use super::phases::{Handshakes, Hostile, hostile_runtime, tell};
use crate::hostile::{self, ReadOutcome, ReadPace, ReadReport, Window};
use crate::redisstat::RedisMeter;
use crate::report::{HostileReadReport, ReadsAlone, Report};

/// `--room-messages` when not given.
const ROOM_MESSAGES: usize = 1000;

impl Ctx<'_> {
    /// Runs the `hostile-read` scenario.
    pub(super) async fn hostile_read(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let count = a.room_messages.unwrap_or(ROOM_MESSAGES);
        let (room, oldest) = self.fill_hostile_room(count, a.room_message_chars).await?;
        tokio::time::sleep_until(room.ready_at).await;
        // With nothing stored, the read names the oldest id there can be.
        let read_id = oldest.map_or_else(|| "0-1".to_owned(), |id| id.to_string());
        let alone = if a.read_alone_s > 0.0 {
            Some(self.reads_alone(&read_id).await?)
        } else {
            None
        };
        let pop = self.normal_users().await?;
        let rt = hostile_runtime()?;
        let (readers, handshakes) = self.connect_readers(&read_id, &rt).await?;
        let run = self
            .beside_normal_traffic(pop, Instant::now(), |w| tell(readers, w))
            .await
            .context("the hostile reads")?;
        // Every reading task has ended; nothing is left to wait for.
        rt.shutdown_background();
        let mut reads = connected(handshakes);
        reads.add(run.hostile, a.duration);
        let mut r = run.report;
        for (k, v) in [
            ("room_messages", count.into()),
            ("room_message_chars", a.room_message_chars.into()),
            ("read_retry_ms", a.read_retry_ms.into()),
            ("read_ack_timeout_ms", a.read_ack_timeout_ms.into()),
            ("read_alone_s", a.read_alone_s.into()),
        ] {
            r.params.insert(k.into(), v);
        }
        r.hostile_read = Some(HostileReadReport {
            phases: run.phases,
            room: room.room,
            read_id,
            reads,
            alone,
        });
        Ok(r)
    }

    /// Opens the hostile user's reading connections on `rt`, each sending
    /// `read { id }` once told its window.
    async fn connect_readers(
        &self,
        id: &str,
        rt: &tokio::runtime::Runtime,
    ) -> anyhow::Result<(Vec<Hostile<Window, ReadOutcome>>, Handshakes)> {
        let a = self.args;
        let pace = ReadPace {
            retry: Duration::from_millis(a.read_retry_ms),
            ack_timeout: Duration::from_millis(a.read_ack_timeout_ms),
        };
        let jobs = self.hostile_jobs(a.abuser_connections)?;
        let id = id.to_owned();
        self.connect_hostile(jobs, rt.handle(), move |ws, plan| {
            hostile::reads(ws, id.clone(), pace, plan)
        })
        .await
    }

    /// The hostile user's reads with nothing else going on, for
    /// `--read-alone-s` (and until their last ack), after as long a reading
    /// of Redis at rest.
    async fn reads_alone(&self, id: &str) -> anyhow::Result<ReadsAlone> {
        let a = self.args;
        let secs = a.read_alone_s;
        let rt = hostile_runtime()?;
        let (readers, handshakes) = self.connect_readers(id, &rt).await?;
        let rest = RedisMeter::start(&a.redis_node).await;
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let redis_idle = rest.stop(secs).await;
        let start = Instant::now();
        let until = start + Duration::from_secs_f64(secs);
        // A read sent just before `until` has this long to be answered.
        let stop_at = until + Duration::from_millis(a.read_ack_timeout_ms);
        let meter = RedisMeter::start(&a.redis_node).await;
        let tasks = tell(
            readers,
            Window {
                start,
                until,
                stop_at,
            },
        );
        let mut outs = Vec::with_capacity(tasks.len());
        for t in tasks {
            outs.push(t.await.context("a reading task panicked")?);
        }
        let redis = meter.stop((Instant::now() - start).as_secs_f64()).await;
        rt.shutdown_background();
        let mut reads = connected(handshakes);
        reads.add(outs, secs);
        Ok(ReadsAlone {
            reads,
            redis,
            redis_idle,
        })
    }
}

/// The report of reading connections opened with these `handshakes`.
fn connected(handshakes: Handshakes) -> ReadReport {
    ReadReport {
        connections_attempted: handshakes.attempted,
        connections_ok: handshakes.ok,
        connect_errors: handshakes.errors,
        ..ReadReport::default()
    }
}
