//! `flood`: the normal users' fan-out traffic (`rooms` × `members`, each at
//! `rate`) for `duration` seconds, then `duration` seconds more with one
//! abusive user beside them: `abuser-connections` connections of the same
//! user, each pipelining `message sent` and `history` (see
//! [`abuser`](crate::abuser)) for the whole second phase or until it has sent
//! `abuser-events`. The normal users' acks are split by send time into the
//! two phases; the servers' CPU is measured over each phase.
//!
//! The abusive connections run on a runtime of their own (one thread), so
//! that the tool's writing as fast as it can is shared out by the operating
//! system like any other process's work, and cannot hold up the normal
//! clients' tasks (and so their measured acks) in the tool itself.
//!
//! The abuser is in a room of its own (the one after the normal rooms), so
//! that what it costs the normal users is what it costs the servers, not the
//! deliveries of its messages; `--abuser-shares-room` puts it in the first
//! normal room instead.

use std::time::Duration;

use anyhow::Context;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::{Ctx, Job, merge};
use crate::abuser::{self, AbuserOutcome, AbuserReport, FloodPlan};
use crate::procstat::{Measured, Meter};
use crate::report::{FloodReport, Latency, Report, histogram};
use crate::session::{Outcome, SendPlan};
use crate::wire;

/// The user index of the abuser's token (`sub` = `load-<run>-abuser`).
const ABUSER: &str = "abuser";

/// One connected abusive connection, waiting for its plan.
struct Abuser {
    plan: oneshot::Sender<FloodPlan>,
    task: JoinHandle<AbuserOutcome>,
}

impl Ctx<'_> {
    /// Runs the `flood` scenario.
    pub(super) async fn flood(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let members = a.members.max(1);
        let jobs = self.prepare(a.rooms * members, |i| i / members)?;
        let mut pop = self.connect(jobs).await?;
        let abuser_room = if a.abuser_shares_room { 0 } else { a.rooms };
        let mut abuser_jobs =
            self.prepare_for(a.abuser_connections, |_| abuser_room, |_| ABUSER)?;
        if !a.abuser_url.is_empty() {
            let targets = a
                .abuser_url
                .iter()
                .map(|u| wire::Target::parse(u))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for (i, job) in abuser_jobs.iter_mut().enumerate() {
                job.target = targets[i % targets.len()].clone();
            }
        }
        let abuse_rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("abuser")
            .enable_all()
            .build()
            .context("starting the abuser's runtime")?;
        let (abusers, mut abuser_report) =
            self.connect_abusers(abuser_jobs, abuse_rt.handle()).await?;
        self.settle(&pop).await;

        let phase = Duration::from_secs_f64(a.duration);
        let t0 = Instant::now() + Duration::from_millis(50);
        let flood_at = t0 + phase;
        let until = flood_at + phase;
        let stop_at = until + Duration::from_secs_f64(a.drain);
        let flood_at_us = wire::now_us() + (flood_at - Instant::now()).as_micros() as u64;
        let phases = tokio::spawn(measure_phases(
            a.server_pid.clone(),
            a.aux_pid.clone(),
            [t0, flood_at, until],
        ));
        let meter = Meter::start(&a.server_pid, &a.aux_pid);
        let mut abuser_tasks = Vec::with_capacity(abusers.len());
        for ab in abusers {
            // An abuser that already ended (dropped) has its outcome anyway.
            let _ = ab.plan.send(FloodPlan {
                start: flood_at,
                until,
                max_events: a.abuser_events,
                stop_at,
            });
            abuser_tasks.push(ab.task);
        }
        let period = Duration::from_secs_f64(1.0 / a.rate.max(0.001));
        let count = pop.clients.len().max(1) as f64;
        let pad = a.size;
        let outs = Self::sessions(std::mem::take(&mut pop.clients), stop_at, |c| {
            let offset = period.mul_f64(f64::from(c.id) / count);
            Some(SendPlan {
                start: t0 + offset,
                period,
                until,
                max: u64::MAX,
                pad,
                typing: None,
            })
        })
        .await?;
        let mut abuser_outs = Vec::with_capacity(abuser_tasks.len());
        for t in abuser_tasks {
            abuser_outs.push(t.await.context("an abuser task panicked")?);
        }
        let measured = meter.stop();
        // Every abuser task has ended; nothing is left to wait for.
        abuse_rt.shutdown_background();
        let [without, with] = phases.await.context("the phase meter panicked")?;

        let (ack_without, ack_with) = split_acks(&outs, flood_at_us);
        let unacked_with: u64 = outs
            .iter()
            .flat_map(|o| &o.unacked_sent_us)
            .filter(|&&sent_at| sent_at >= flood_at_us)
            .count() as u64;
        let unacked_all: u64 = outs.iter().map(|o| o.unacked_sent_us.len() as u64).sum();
        abuser_report.add(abuser_outs, a.duration);
        let secs = a.duration;
        let mut flood = FloodReport {
            ack_without,
            ack_with,
            unacked_without: unacked_all - unacked_with,
            unacked_with,
            server_rss_kb_with: with.servers.iter().map(|u| u.after.rss_kb).sum(),
            abuser: abuser_report,
            ..FloodReport::default()
        };
        (
            flood.server_cpu_cores_without,
            flood.aux_cpu_cores_without,
            flood.tool_cpu_cores_without,
        ) = cores(&without, secs);
        (
            flood.server_cpu_cores_with,
            flood.aux_cpu_cores_with,
            flood.tool_cpu_cores_with,
        ) = cores(&with, secs);

        let mut r = pop.report;
        r.params = self.params(&[
            ("rooms", a.rooms.into()),
            ("members", members.into()),
            ("rate", a.rate.into()),
            ("phase_s", a.duration.into()),
            ("abuser_connections", a.abuser_connections.into()),
            ("abuser_events", a.abuser_events.into()),
            ("abuser_shares_room", a.abuser_shares_room.into()),
            ("abuser_elsewhere", (!a.abuser_url.is_empty()).into()),
        ]);
        merge(&mut r, outs, 2.0 * a.duration);
        r.set_usage(measured, 2.0 * a.duration + a.drain);
        r.flood = Some(flood);
        Ok(r)
    }

    /// Opens the abusive connections on runtime `rt` (all at once: there are
    /// few) and starts each one reading. Refused handshakes
    /// (`too_many_connections`, `server_busy`, …) are counted, not fatal.
    async fn connect_abusers(
        &self,
        jobs: Vec<Job>,
        rt: &Handle,
    ) -> anyhow::Result<(Vec<Abuser>, AbuserReport)> {
        let timeout = Duration::from_secs(self.args.connect_timeout_s);
        let mut report = AbuserReport {
            connections_attempted: jobs.len() as u64,
            ..AbuserReport::default()
        };
        let mut set = JoinSet::new();
        for job in jobs {
            set.spawn_on(
                async move {
                    let opened = wire::open(&job.target, job.src, job.connect, timeout).await;
                    opened.map(|(ws, _welcome)| ws)
                },
                rt,
            );
        }
        let mut abusers = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined.context("an abuser's connect task panicked")? {
                Ok(ws) => {
                    let (plan, told) = oneshot::channel();
                    let task = rt.spawn(abuser::run(ws, told));
                    abusers.push(Abuser { plan, task });
                }
                Err(e) => *report.connect_errors.entry(e.0).or_default() += 1,
            }
        }
        report.connections_ok = abusers.len() as u64;
        Ok((abusers, report))
    }
}

/// Measures the servers, Redis and the tool over each of the two phases
/// `[start, flood start, end]`.
async fn measure_phases(servers: Vec<u32>, aux: Vec<u32>, at: [Instant; 3]) -> [Measured; 2] {
    tokio::time::sleep_until(at[0]).await;
    let meter = Meter::start(&servers, &aux);
    tokio::time::sleep_until(at[1]).await;
    let without = meter.stop();
    let meter = Meter::start(&servers, &aux);
    tokio::time::sleep_until(at[2]).await;
    [without, meter.stop()]
}

/// (servers, Redis, tool) CPU in cores over a phase of `secs`.
fn cores(m: &Measured, secs: f64) -> (f64, f64, f64) {
    let secs = secs.max(1e-9);
    let sum = |u: &[crate::procstat::Usage]| u.iter().map(|u| u.cpu_s).sum::<f64>() / secs;
    (sum(&m.servers), sum(&m.aux), m.tool.cpu_s / secs)
}

/// The normal users' ack latencies of sends made before `flood_at_us`, and
/// of those made from then on.
fn split_acks(outs: &[Outcome], flood_at_us: u64) -> (Latency, Latency) {
    let (mut without, mut with) = (histogram(), histogram());
    for o in outs {
        for &(sent_at, us) in &o.ack_us {
            let h = if sent_at < flood_at_us {
                &mut without
            } else {
                &mut with
            };
            h.saturating_record(u64::from(us).max(1));
        }
    }
    (Latency::of(&without), Latency::of(&with))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_split_at_the_flood_start() {
        let o = Outcome {
            ack_us: vec![(10, 1_000), (99, 2_000), (100, 30_000), (150, 40_000)],
            ..Outcome::default()
        };
        let (without, with) = split_acks(&[o], 100);
        assert_eq!((without.count, with.count), (2, 2));
        assert!(without.max_us < 2_100);
        assert!(with.p50_us >= 29_000);
    }
}
