//! `many-rooms`: direct conversations. `rooms` rooms of `members` users
//! each (pairs, by default) are connected, member `j` of every room to
//! replica `j % urls` (the two people of a conversation on two replicas, so
//! each replica holds one connection in every room), among many more rooms
//! that exist in Redis (seeded by the harness, `--rooms-existing`) with
//! nobody connected. Measured, in order:
//!
//! 1. each replica's RSS growth per connection, from before the first
//!    handshake to after everyone is connected and quiet;
//! 2. at rest (`--redis-idle-s`): Redis's commands per second (every command,
//!    those run by scripts included) and each replica's CPU, with everyone
//!    connected and nobody sending;
//! 3. under load: every member sends every `1 / rate` seconds for
//!    `duration`: Redis's commands per second, each replica's CPU, and the
//!    end-to-end latency of the messages.
//!
//! Each client signs in as `<room>-m<j>`, the member ids the harness seeds.

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use super::{Ctx, merge};
use crate::procstat::{Meter, sample};
use crate::redisstat::RedisMeter;
use crate::report::{ManyRoomsReport, ReplicaFigures, Report};
use crate::session::SendPlan;

impl Ctx<'_> {
    /// Runs the `many-rooms` scenario.
    pub(super) async fn many_rooms(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let members = a.members.max(1);
        let n = a.rooms * members;
        let jobs = self.prepare_as(
            n,
            |i| i / members,
            |i| {
                let room = format!("{}{}", a.room_prefix, a.room_offset + i / members);
                let sub = format!("{room}-m{}", i % members);
                (sub.clone(), sub)
            },
        )?;
        let rss_before: Vec<u64> = a
            .server_pid
            .iter()
            .map(|p| sample(Some(*p)).rss_kb)
            .collect();
        let mut pop = self.connect(jobs).await?;
        self.settle(&pop).await;
        let rss_connected: Vec<u64> = a
            .server_pid
            .iter()
            .map(|p| sample(Some(*p)).rss_kb)
            .collect();

        // At rest: everyone connected, nobody sending.
        let idle_meter = Meter::start(&a.server_pid, &a.aux_pid);
        let redis_idle = RedisMeter::start(&a.redis_node).await;
        tokio::time::sleep(Duration::from_secs_f64(a.redis_idle_s.max(0.1))).await;
        let idle_nodes = redis_idle.stop(a.redis_idle_s).await;
        let idle = idle_meter.stop();

        // Under load.
        let period = Duration::from_secs_f64(1.0 / a.rate.max(0.001));
        let t0 = Instant::now() + Duration::from_millis(50);
        let until = t0 + Duration::from_secs_f64(a.duration);
        let stop_at = until + Duration::from_secs_f64(a.drain);
        let meter = Meter::start(&a.server_pid, &a.aux_pid);
        let redis = RedisMeter::start(&a.redis_node).await;
        let started = Instant::now();
        // Read just before the sessions end: their disconnects are not the load.
        let sample_at = stop_at - Duration::from_millis(200);
        let sampler = tokio::spawn(async move {
            tokio::time::sleep_until(sample_at).await;
            let loaded = meter.stop();
            let secs = started.elapsed().as_secs_f64();
            (loaded, redis.stop(secs).await, secs)
        });
        let plan = SendPlan::steady(t0, period, until, a.size);
        let outs = Self::steady_sessions(std::mem::take(&mut pop.clients), stop_at, plan).await?;
        let (loaded, nodes, load_s) = sampler.await.context("the sampler panicked")?;

        let urls = self.targets.len().max(1);
        let replicas = a
            .server_pid
            .iter()
            .enumerate()
            .map(|(k, pid)| {
                // Member j of every room went to replica j % urls.
                let connections = (0..n).filter(|i| (i % members) % urls == k).count() as u64;
                let growth_kb = rss_connected[k] as f64 - rss_before[k] as f64;
                ReplicaFigures {
                    pid: *pid,
                    connections,
                    rss_kb_before: rss_before[k],
                    rss_kb_connected: rss_connected[k],
                    rss_bytes_per_connection: growth_kb * 1024.0 / connections.max(1) as f64,
                    idle_cpu_cores: idle.servers.get(k).map_or(0.0, |u| u.cpu_s)
                        / a.redis_idle_s.max(1e-9),
                    load_cpu_cores: loaded.servers.get(k).map_or(0.0, |u| u.cpu_s)
                        / load_s.max(1e-9),
                }
            })
            .collect();
        let per_s = |nodes: &[crate::redisstat::NodeUsage]| -> (f64, f64) {
            let all: u64 = nodes
                .iter()
                .flat_map(|n| n.commands.values())
                .map(|c| c.calls)
                .sum();
            let scripts: u64 = nodes
                .iter()
                .filter_map(|n| n.commands.get("evalsha"))
                .map(|c| c.calls)
                .sum();
            let secs = nodes.first().map_or(1.0, |n| n.secs.max(1e-9));
            (all as f64 / secs, scripts as f64 / secs)
        };
        let (idle_commands, idle_scripts) = per_s(&idle_nodes);
        let (load_commands, load_scripts) = per_s(&nodes);

        let mut r = pop.report;
        r.params = self.params(&[
            ("rooms", a.rooms.into()),
            ("members", members.into()),
            ("rooms_existing", a.rooms_existing.into()),
            ("rate", a.rate.into()),
            ("duration_s", a.duration.into()),
            ("idle_s", a.redis_idle_s.into()),
        ]);
        merge(&mut r, outs, a.duration);
        r.set_usage(loaded, load_s);
        r.server_rss_kb_before = rss_before.iter().sum();
        r.server_rss_kb_after = rss_connected.iter().sum();
        r.server_rss_bytes_per_connection =
            (r.server_rss_kb_after as f64 - r.server_rss_kb_before as f64) * 1024.0
                / n.max(1) as f64;
        r.redis = nodes;
        r.redis_idle = idle_nodes;
        r.many_rooms = Some(ManyRoomsReport {
            rooms_existing: a.rooms_existing as u64,
            rooms_connected: a.rooms as u64,
            idle_commands_per_s: idle_commands,
            idle_scripts_per_s: idle_scripts,
            load_commands_per_s: load_commands,
            load_scripts_per_s: load_scripts,
            replicas,
        });
        Ok(r)
    }
}
