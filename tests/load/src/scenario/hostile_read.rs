//! `hostile-read`: the normal users' fan-out traffic, without and then with
//! one hostile user beside them ([`phases`](super::phases)) whose room holds
//! `room-messages` messages of `room-message-chars` × '😀' (2000: 8,000
//! bytes, the largest text there is; [`fill`](super::fill)), and who sends
//! `read { id }` with the oldest of them, as fast as its budget allows, from
//! `abuser-connections` connections ([`hostile::reads`]). Each such `read`
//! asks to mark read the whole room: a server that counts what follows the
//! id by reading it pays for every one of those messages.

use std::time::Duration;

use anyhow::Context;

use super::Ctx;
use super::phases::{hostile_runtime, tell};
use crate::hostile::{self, ReadPace, ReadReport};
use crate::report::{HostileReadReport, Report};

/// `--room-messages` when not given.
const ROOM_MESSAGES: usize = 1000;

impl Ctx<'_> {
    /// Runs the `hostile-read` scenario.
    pub(super) async fn hostile_read(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let count = a.room_messages.unwrap_or(ROOM_MESSAGES);
        let (room, oldest) = self.fill_hostile_room(count, a.room_message_chars).await?;
        // With nothing stored, the read names the oldest id there can be.
        let read_id = oldest.map_or_else(|| "0-1".to_owned(), |id| id.to_string());
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
            .beside_normal_traffic(pop, room.ready_at, |w| tell(readers, w))
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
            ("room_messages", count.into()),
            ("room_message_chars", a.room_message_chars.into()),
            ("read_retry_ms", a.read_retry_ms.into()),
            ("read_ack_timeout_ms", a.read_ack_timeout_ms.into()),
        ] {
            r.params.insert(k.into(), v);
        }
        r.hostile_read = Some(HostileReadReport {
            phases: run.phases,
            room: room.room,
            read_id,
            reads,
        });
        Ok(r)
    }
}
