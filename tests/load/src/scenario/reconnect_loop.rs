//! `reconnect-loop`: the normal users' fan-out traffic, without and then
//! with one hostile user beside them ([`phases`](super::phases)) who loops
//! handshakes on `abuser-connections` connections at once: connect, wait for
//! `welcome` or a CONNECT_ERROR, close, again, for the whole second phase
//! ([`hostile::handshakes`]). Every attempt carries the same token. With
//! `room-messages`, the hostile user's room first gets that many messages
//! ([`fill`](super::fill)): what each successful join reads for its
//! `welcome.history`.

use std::time::Duration;

use anyhow::Context;

use super::Ctx;
use super::phases::hostile_runtime;
use crate::hostile::{self, LoopReport};
use crate::report::{ReconnectLoopReport, Report};

impl Ctx<'_> {
    /// Runs the `reconnect-loop` scenario.
    pub(super) async fn reconnect_loop(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let count = a.room_messages.unwrap_or(0);
        let (room, _) = self.fill_hostile_room(count, a.room_message_chars).await?;
        let pop = self.normal_users().await?;
        let jobs = self.hostile_jobs(a.abuser_connections)?;
        let rt = hostile_runtime()?;
        let timeout = Duration::from_secs(a.connect_timeout_s);
        let run = self
            .beside_normal_traffic(pop, room.ready_at, |w| {
                jobs.into_iter()
                    .map(|j| rt.spawn(hostile::handshakes(j.target, j.src, j.connect, w, timeout)))
                    .collect()
            })
            .await
            .context("the reconnect loop")?;
        // Every loop has ended; nothing is left to wait for.
        rt.shutdown_background();
        let mut loops = LoopReport::default();
        loops.add(run.hostile, a.duration);
        let mut r = run.report;
        r.params.insert("room_messages".into(), count.into());
        r.params
            .insert("room_message_chars".into(), a.room_message_chars.into());
        r.reconnect_loop = Some(ReconnectLoopReport {
            phases: run.phases,
            room: room.room,
            loops,
        });
        Ok(r)
    }
}
