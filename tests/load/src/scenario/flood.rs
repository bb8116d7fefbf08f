//! `flood`: the normal users' fan-out traffic, without and then with one
//! abusive user beside them ([`phases`](super::phases)):
//! `abuser-connections` connections of the same user, each pipelining
//! `message sent` and `history` (see [`abuser`](crate::abuser)) for the whole
//! second phase or until it has sent `abuser-events`.

use anyhow::Context;
use tokio::time::Instant;

use super::Ctx;
use super::phases::{hostile_runtime, tell};
use crate::abuser::{self, AbuserReport, FloodPlan};
use crate::report::{FloodReport, Report};

impl Ctx<'_> {
    /// Runs the `flood` scenario.
    pub(super) async fn flood(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let pop = self.normal_users().await?;
        let jobs = self.hostile_jobs(a.abuser_connections)?;
        let rt = hostile_runtime()?;
        let (abusers, handshakes) = self.connect_hostile(jobs, rt.handle(), abuser::run).await?;
        let max_events = a.abuser_events;
        let run = self
            .beside_normal_traffic(pop, Instant::now(), |window| {
                tell(abusers, FloodPlan { window, max_events })
            })
            .await
            .context("the flood")?;
        // Every abuser task has ended; nothing is left to wait for.
        rt.shutdown_background();
        let mut abuser = AbuserReport {
            connections_attempted: handshakes.attempted,
            connections_ok: handshakes.ok,
            connect_errors: handshakes.errors,
            ..AbuserReport::default()
        };
        abuser.add(run.hostile, a.duration);
        let mut r = run.report;
        r.params
            .insert("abuser_events".into(), a.abuser_events.into());
        r.flood = Some(FloodReport {
            phases: run.phases,
            abuser,
        });
        Ok(r)
    }
}
