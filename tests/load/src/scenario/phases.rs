//! The frame of the scenarios that put one hostile user beside normal
//! traffic (`flood`, `hostile-read`, `reconnect-loop`): the normal users'
//! fan-out (`rooms` × `members`, each at `rate`) for `duration` seconds, then
//! `duration` seconds more with the hostile user at it. The normal users'
//! acks are split by send time into the two phases; the servers', Redis's and
//! the tool's CPU, and each `--redis-node`'s CPU and commands, are measured
//! over each phase.
//!
//! The hostile user's connections run on a runtime of their own (one
//! thread, [`hostile_runtime`]), so that the tool's working as fast as it
//! can for it is shared out by the operating system like any other
//! process's work, and cannot hold up the normal clients' tasks (and so
//! their measured acks) in the tool itself.
//!
//! The hostile user is in a room of its own (the one after the normal
//! rooms), so that what it costs the normal users is what it costs the
//! servers, not the deliveries of its messages or its presence;
//! `--abuser-shares-room` puts it in the first normal room instead.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::{Ctx, Job, Population, merge};
use crate::hostile::Window;
use crate::procstat::{Measured, Meter};
use crate::redisstat::{NodeUsage, RedisMeter};
use crate::report::{Latency, PhaseReport, Report, histogram};
use crate::session::{Outcome, SendPlan};
use crate::wire::{self, Ws};

/// The user index of the hostile user's token (`sub` = `load-<run>-abuser`).
const HOSTILE: &str = "abuser";

/// A connected hostile connection, reading, waiting for its plan.
pub(super) struct Hostile<P, T> {
    pub(super) plan: oneshot::Sender<P>,
    pub(super) task: JoinHandle<T>,
}

/// How the hostile user's handshakes went.
#[derive(Debug, Default)]
pub(super) struct Handshakes {
    pub(super) attempted: u64,
    pub(super) ok: u64,
    pub(super) errors: BTreeMap<String, u64>,
}

/// The outcome of [`Ctx::beside_normal_traffic`].
pub(super) struct Beside<T> {
    /// The normal users' report over both phases (connections, messages,
    /// CPU), with the common parameters.
    pub(super) report: Report,
    /// The normal users in each phase.
    pub(super) phases: PhaseReport,
    /// What the hostile user's tasks returned.
    pub(super) hostile: Vec<T>,
}

/// Tells each connection of `hostile` its `plan`; returns their tasks.
pub(super) fn tell<P: Copy, T>(hostile: Vec<Hostile<P, T>>, plan: P) -> Vec<JoinHandle<T>> {
    hostile
        .into_iter()
        .map(|h| {
            // A connection that already ended (dropped) has its outcome anyway.
            let _ = h.plan.send(plan);
            h.task
        })
        .collect()
}

/// A runtime of one thread for the hostile user's connections.
pub(super) fn hostile_runtime() -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("hostile")
        .enable_all()
        .build()
        .context("starting the hostile user's runtime")
}

impl Ctx<'_> {
    /// Connects the normal users: `rooms` × `members`, room by room.
    pub(super) async fn normal_users(&self) -> anyhow::Result<Population> {
        let members = self.args.members.max(1);
        let jobs = self.prepare(self.args.rooms * members, |i| i / members)?;
        self.connect(jobs).await
    }

    /// The scenario room of the hostile user.
    pub(super) fn hostile_room(&self) -> usize {
        if self.args.abuser_shares_room {
            0
        } else {
            self.args.rooms
        }
    }

    /// The handshakes of `n` connections of the hostile user, in its room,
    /// sent to `--abuser-url` instead of `--url` when given.
    pub(super) fn hostile_jobs(&self, n: usize) -> anyhow::Result<Vec<Job>> {
        let room = self.hostile_room();
        let mut jobs = self.prepare_for(n, |_| room, |_| HOSTILE)?;
        if !self.args.abuser_url.is_empty() {
            let targets = self
                .args
                .abuser_url
                .iter()
                .map(|u| wire::Target::parse(u))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for (i, job) in jobs.iter_mut().enumerate() {
                job.target = targets[i % targets.len()].clone();
            }
        }
        Ok(jobs)
    }

    /// Opens the hostile connections of `jobs` on runtime `rt` (all at once:
    /// there are few) and starts `run` on each, which reads from then on and
    /// acts once its plan comes. Refused handshakes (`too_many_connections`,
    /// `server_busy`, …) are counted, not fatal.
    pub(super) async fn connect_hostile<P, T, F>(
        &self,
        jobs: Vec<Job>,
        rt: &Handle,
        run: impl Fn(Ws, oneshot::Receiver<P>) -> F,
    ) -> anyhow::Result<(Vec<Hostile<P, T>>, Handshakes)>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let timeout = Duration::from_secs(self.args.connect_timeout_s);
        let mut counts = Handshakes {
            attempted: jobs.len() as u64,
            ..Handshakes::default()
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
        let mut hostile = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined.context("a hostile connect task panicked")? {
                Ok(ws) => {
                    let (plan, told) = oneshot::channel();
                    let task = rt.spawn(run(ws, told));
                    hostile.push(Hostile { plan, task });
                }
                Err(e) => *counts.errors.entry(e.0).or_default() += 1,
            }
        }
        counts.ok = hostile.len() as u64;
        Ok((hostile, counts))
    }

    /// Runs the normal users of `pop` (connected) for two phases of
    /// `--duration`, the second one beside the hostile user, the first one
    /// starting once they are settled and not before `not_before`: `start`
    /// is called once the phases are timed, with the second phase's window,
    /// and returns the hostile tasks (started, or told their plan), whose
    /// outcomes are awaited at the end.
    pub(super) async fn beside_normal_traffic<T>(
        &self,
        mut pop: Population,
        not_before: Instant,
        start: impl FnOnce(Window) -> Vec<JoinHandle<T>>,
    ) -> anyhow::Result<Beside<T>> {
        let a = self.args;
        self.settle(&pop).await;
        tokio::time::sleep_until(not_before).await;
        let phase = Duration::from_secs_f64(a.duration);
        let t0 = Instant::now() + Duration::from_millis(50);
        let hostile_at = t0 + phase;
        let until = hostile_at + phase;
        let stop_at = until + Duration::from_secs_f64(a.drain);
        let hostile_at_us = wire::now_us() + (hostile_at - Instant::now()).as_micros() as u64;
        let phases = tokio::spawn(measure_phases(
            a.server_pid.clone(),
            a.aux_pid.clone(),
            a.redis_node.clone(),
            [t0, hostile_at, until],
        ));
        let meter = Meter::start(&a.server_pid, &a.aux_pid);
        let tasks = start(Window {
            start: hostile_at,
            until,
            stop_at,
        });
        let period = Duration::from_secs_f64(1.0 / a.rate.max(0.001));
        let plan = SendPlan::steady(t0, period, until, a.size);
        let outs = Self::steady_sessions(std::mem::take(&mut pop.clients), stop_at, plan).await?;
        let mut hostile = Vec::with_capacity(tasks.len());
        for t in tasks {
            hostile.push(t.await.context("a hostile task panicked")?);
        }
        let measured = meter.stop();
        let [without, with] = phases.await.context("the phase meter panicked")?;

        let (ack_without, ack_with) = split_acks(&outs, hostile_at_us);
        let unacked_with: u64 = outs
            .iter()
            .flat_map(|o| &o.unacked_sent_us)
            .filter(|&&sent_at| sent_at >= hostile_at_us)
            .count() as u64;
        let unacked_all: u64 = outs.iter().map(|o| o.unacked_sent_us.len() as u64).sum();
        let secs = a.duration;
        let mut phases = PhaseReport {
            ack_without,
            ack_with,
            unacked_without: unacked_all - unacked_with,
            unacked_with,
            server_rss_kb_with: with.0.servers.iter().map(|u| u.after.rss_kb).sum(),
            ..PhaseReport::default()
        };
        (
            phases.server_cpu_cores_without,
            phases.aux_cpu_cores_without,
            phases.tool_cpu_cores_without,
        ) = cores(&without.0, secs);
        (
            phases.server_cpu_cores_with,
            phases.aux_cpu_cores_with,
            phases.tool_cpu_cores_with,
        ) = cores(&with.0, secs);
        (phases.redis_without, phases.redis_with) = (without.1, with.1);

        let mut r = pop.report;
        r.params = self.params(&[
            ("rooms", a.rooms.into()),
            ("members", a.members.max(1).into()),
            ("rate", a.rate.into()),
            ("size", a.size.into()),
            ("phase_s", a.duration.into()),
            ("abuser_connections", a.abuser_connections.into()),
            ("abuser_shares_room", a.abuser_shares_room.into()),
            ("abuser_elsewhere", (!a.abuser_url.is_empty()).into()),
        ]);
        merge(&mut r, outs, 2.0 * a.duration);
        r.set_usage(measured, 2.0 * a.duration + a.drain);
        Ok(Beside {
            report: r,
            phases,
            hostile,
        })
    }
}

/// Measures the servers, Redis and the tool (and each Redis node in
/// `redis`) over each of the two phases `[start, hostile start, end]`.
async fn measure_phases(
    servers: Vec<u32>,
    aux: Vec<u32>,
    redis: Vec<String>,
    at: [Instant; 3],
) -> [(Measured, Vec<NodeUsage>); 2] {
    let secs = (at[1] - at[0]).as_secs_f64();
    tokio::time::sleep_until(at[0]).await;
    let meter = Meter::start(&servers, &aux);
    let nodes = RedisMeter::start(&redis).await;
    tokio::time::sleep_until(at[1]).await;
    let without = (meter.stop(), nodes.stop(secs).await);
    let meter = Meter::start(&servers, &aux);
    let nodes = RedisMeter::start(&redis).await;
    tokio::time::sleep_until(at[2]).await;
    [without, (meter.stop(), nodes.stop(secs).await)]
}

/// (servers, Redis, tool) CPU in cores over a phase of `secs`.
fn cores(m: &Measured, secs: f64) -> (f64, f64, f64) {
    let secs = secs.max(1e-9);
    let sum = |u: &[crate::procstat::Usage]| u.iter().map(|u| u.cpu_s).sum::<f64>() / secs;
    (sum(&m.servers), sum(&m.aux), m.tool.cpu_s / secs)
}

/// The normal users' ack latencies of sends made before `hostile_at_us`,
/// and of those made from then on.
fn split_acks(outs: &[Outcome], hostile_at_us: u64) -> (Latency, Latency) {
    let (mut without, mut with) = (histogram(), histogram());
    for o in outs {
        for &(sent_at, us) in &o.ack_us {
            let h = if sent_at < hostile_at_us {
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
    fn acks_split_at_the_hostile_start() {
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
