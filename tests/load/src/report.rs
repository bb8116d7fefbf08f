//! What a scenario measured, as JSON (for the harness) and as a table (for
//! a person), plus the list of failures that make `--fail-on-errors` exit
//! non-zero.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::abuser::AbuserReport;
use crate::hostile::{LoopReport, ReadReport};
use crate::procstat::{Measured, Usage};
use crate::redisstat::NodeUsage;

/// Percentiles of one latency distribution, in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Latency {
    pub(crate) count: u64,
    pub(crate) p50_us: u64,
    pub(crate) p90_us: u64,
    pub(crate) p99_us: u64,
    pub(crate) p999_us: u64,
    pub(crate) max_us: u64,
    pub(crate) mean_us: f64,
}

/// A histogram of microseconds from 1 µs to 10 minutes, 3 significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid")
}

impl Latency {
    /// The summary of `h`.
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }

    fn row(&self) -> String {
        if self.count == 0 {
            return "-".into();
        }
        format!(
            "p50 {} p90 {} p99 {} p999 {} max {} (n={})",
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us),
            self.count
        )
    }
}

/// Microseconds as milliseconds with 2 decimals.
pub(crate) fn ms(us: u64) -> String {
    format!("{:.2}ms", us as f64 / 1000.0)
}

/// Everything one scenario run measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Report {
    pub(crate) scenario: String,
    pub(crate) label: String,
    pub(crate) params: BTreeMap<String, serde_json::Value>,
    pub(crate) connections_attempted: u64,
    pub(crate) connections_ok: u64,
    pub(crate) connections_failed: u64,
    pub(crate) connect_errors: BTreeMap<String, u64>,
    pub(crate) dropped: u64,
    pub(crate) drop_reasons: BTreeMap<String, u64>,
    pub(crate) handshake_s: f64,
    pub(crate) handshakes_per_s: f64,
    pub(crate) welcome: Latency,
    pub(crate) sent: u64,
    pub(crate) acked_ok: u64,
    pub(crate) ack_failed: u64,
    pub(crate) ack_missing: u64,
    pub(crate) ack_errors: BTreeMap<String, u64>,
    pub(crate) expected: u64,
    pub(crate) delivered: u64,
    /// Messages first received in a reconnect's `welcome.history` (not in
    /// `delivered`, nor in the latencies; they count against `lost`).
    #[serde(default)]
    pub(crate) recovered: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) out_of_order: u64,
    pub(crate) measure_s: f64,
    pub(crate) sends_per_s: f64,
    pub(crate) deliveries_per_s: f64,
    pub(crate) e2e: Latency,
    pub(crate) ack: Latency,
    pub(crate) fanout_complete: Latency,
    pub(crate) servers: Vec<Usage>,
    pub(crate) server_cpu_s: f64,
    pub(crate) server_cpu_cores: f64,
    pub(crate) server_cpu_us_per_delivery: f64,
    /// The kernel's part of `server_cpu_us_per_delivery`.
    #[serde(default)]
    pub(crate) server_sys_us_per_delivery: f64,
    pub(crate) server_rss_kb_before: u64,
    pub(crate) server_rss_kb_after: u64,
    pub(crate) server_rss_bytes_per_connection: f64,
    /// large-room with `--quiet-s`: servers' RSS (KiB, all replicas) before any
    /// client connected, and after the quiet period that followed the burst.
    #[serde(default)]
    pub(crate) server_rss_kb_empty: u64,
    /// See `server_rss_kb_empty`.
    #[serde(default)]
    pub(crate) server_rss_kb_quiet: u64,
    /// (`server_rss_kb_quiet` − `server_rss_kb_empty`) per connection, in bytes.
    #[serde(default)]
    pub(crate) server_rss_bytes_per_connection_quiet: f64,
    pub(crate) tool: Option<Usage>,
    #[serde(default)]
    pub(crate) aux: Vec<Usage>,
    #[serde(default)]
    pub(crate) aux_cpu_cores: f64,
    pub(crate) tool_cpu_cores: f64,
    pub(crate) steps: Vec<Report>,
    /// fanout with `--redis-node`: what each Redis node did in the measured phase.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) redis: Vec<NodeUsage>,
    /// fanout with `--redis-node` and `--redis-idle-s`: the same nodes over
    /// that many seconds before the first send, everyone connected, nobody
    /// sending.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) redis_idle: Vec<NodeUsage>,
    /// The `flood` scenario's own figures (the rest of the report is the
    /// normal users' traffic over both phases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) flood: Option<FloodReport>,
    /// The `hostile-read` scenario's own figures (the rest of the report is
    /// the normal users' traffic over both phases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hostile_read: Option<HostileReadReport>,
    /// The `reconnect-loop` scenario's own figures (the rest of the report
    /// is the normal users' traffic over both phases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reconnect_loop: Option<ReconnectLoopReport>,
    /// The `typing` scenario's own figures (the rest of the report is the
    /// fan-out with typing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) typing: Option<TypingReport>,
    /// The `reconnect` scenario's own figures: the storm after the kill (the
    /// rest of the report is the whole run's traffic; the server figures are
    /// the survivors' over the storm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reconnect: Option<ReconnectReport>,
    /// The `many-rooms` scenario's own figures: per replica, and Redis's
    /// commands at rest and under load (the rest of the report is the load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) many_rooms: Option<ManyRoomsReport>,
}

/// What the `many-rooms` scenario measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ManyRoomsReport {
    /// Rooms that exist in Redis (`--rooms-existing`).
    pub(crate) rooms_existing: u64,
    /// Of which with connections.
    pub(crate) rooms_connected: u64,
    /// Redis commands per second with everyone connected and nobody
    /// sending, every node, those scripts run included.
    pub(crate) idle_commands_per_s: f64,
    /// Of which scripts (`evalsha`).
    pub(crate) idle_scripts_per_s: f64,
    /// The same under load.
    pub(crate) load_commands_per_s: f64,
    /// Of which scripts.
    pub(crate) load_scripts_per_s: f64,
    /// Each replica's figures.
    pub(crate) replicas: Vec<ReplicaFigures>,
}

/// One replica in the `many-rooms` scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ReplicaFigures {
    pub(crate) pid: u32,
    /// Connections it held.
    pub(crate) connections: u64,
    /// RSS before the first handshake, KiB.
    pub(crate) rss_kb_before: u64,
    /// RSS with every connection open and quiet, KiB.
    pub(crate) rss_kb_connected: u64,
    /// The growth between the two, per connection it held.
    pub(crate) rss_bytes_per_connection: f64,
    /// CPU at rest, cores.
    pub(crate) idle_cpu_cores: f64,
    /// CPU under load, cores.
    pub(crate) load_cpu_cores: f64,
}

impl ManyRoomsReport {
    /// Lines of the report's table.
    pub(crate) fn rows(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            (
                "rooms".into(),
                format!(
                    "{} exist, {} with connections",
                    self.rooms_existing, self.rooms_connected
                ),
            ),
            (
                "redis at rest".into(),
                format!(
                    "{:.0} commands/s ({:.1} scripts/s)",
                    self.idle_commands_per_s, self.idle_scripts_per_s
                ),
            ),
            (
                "redis under load".into(),
                format!(
                    "{:.0} commands/s ({:.1} scripts/s)",
                    self.load_commands_per_s, self.load_scripts_per_s
                ),
            ),
        ];
        for r in &self.replicas {
            rows.push((
                format!("replica {}", r.pid),
                format!(
                    "{} connections; RSS {} -> {} KiB ({:.0} B/connection); CPU {:.3} cores at rest, {:.3} under load",
                    r.connections,
                    r.rss_kb_before,
                    r.rss_kb_connected,
                    r.rss_bytes_per_connection,
                    r.idle_cpu_cores,
                    r.load_cpu_cores
                ),
            ));
        }
        rows
    }
}

/// What the `reconnect` scenario measured of the storm: the clients of the
/// killed replica getting back to a survivor, and the survivors meanwhile.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ReconnectReport {
    /// Clients of the killed replica.
    pub(crate) clients: u64,
    /// Of which lost their connection at the kill.
    pub(crate) dropped: u64,
    /// Of which had their `welcome` again.
    pub(crate) back: u64,
    /// Of which lost it and had no `welcome` again within `--reconnect-within-s`.
    pub(crate) never_back: u64,
    /// Seconds from the kill until the first of them had its `welcome` again.
    pub(crate) first_back_s: f64,
    /// Seconds from the kill until the last of them had its `welcome` again
    /// (every one of them when `never_back` is 0).
    pub(crate) all_back_s: f64,
    /// Reconnect attempts.
    pub(crate) attempts: u64,
    /// Of which failed (and were retried while time was left).
    pub(crate) attempts_failed: u64,
    /// Why attempts failed.
    pub(crate) attempt_errors: BTreeMap<String, u64>,
    /// From the start of each successful attempt to its `welcome`.
    pub(crate) handshake: Latency,
    /// Welcomes again that said `recovered: false` (or could not be read).
    pub(crate) not_recovered: u64,
    /// The storm window, seconds: from the kill until every client of the
    /// killed replica was back or had given up.
    pub(crate) storm_s: f64,
    /// The survivors' CPU seconds over the storm window.
    pub(crate) survivor_cpu_s: f64,
    /// The survivors' RSS (KiB) just before the kill.
    pub(crate) survivor_rss_kb_before: u64,
    /// Their highest RSS (KiB) from the kill until the end of the sending
    /// (sampled every 50 ms).
    pub(crate) survivor_rss_kb_peak: u64,
    /// Their RSS (KiB) at the end of the sending.
    pub(crate) survivor_rss_kb_after: u64,
}

impl ReconnectReport {
    /// Rows of the human-readable table.
    fn rows(&self) -> Vec<(String, String)> {
        vec![
            (
                "reconnect".into(),
                format!(
                    "{} clients of the killed replica: dropped {} back {} never back {}",
                    self.clients, self.dropped, self.back, self.never_back
                ),
            ),
            (
                "back after kill".into(),
                format!(
                    "first {:.2}s, last {:.2}s",
                    self.first_back_s, self.all_back_s
                ),
            ),
            (
                "attempts".into(),
                format!(
                    "{} ({} failed) {}",
                    self.attempts,
                    self.attempts_failed,
                    fmt_map(&self.attempt_errors)
                ),
            ),
            (
                "reconnect welcome".into(),
                format!(
                    "{}; not recovered {}",
                    self.handshake.row(),
                    self.not_recovered
                ),
            ),
            (
                "survivors".into(),
                format!(
                    "cpu {:.2}s over the {:.2}s storm; rss {} KiB before the kill, peak {} KiB, {} KiB at the end",
                    self.survivor_cpu_s,
                    self.storm_s,
                    self.survivor_rss_kb_before,
                    self.survivor_rss_kb_peak,
                    self.survivor_rss_kb_after
                ),
            ),
        ]
    }
}

/// What typing traffic added to a fan-out: `typing` emitted and `user
/// typing` delivered, and the cost per event (messages and typing events
/// delivered); `plain` is the same fan-out without typing.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TypingReport {
    /// `typing` emitted by all members.
    pub(crate) sent: u64,
    /// `user typing` received by all members.
    pub(crate) received: u64,
    /// `sent` per second of the sending window.
    pub(crate) sent_per_s: f64,
    /// `received` per second of the sending window.
    pub(crate) received_per_s: f64,
    /// Servers' CPU µs per delivered event (`message received` + `user typing`).
    pub(crate) server_cpu_us_per_event: f64,
    /// Redis's CPU µs per delivered event.
    pub(crate) aux_cpu_us_per_event: f64,
    /// Redis's CPU µs per message delivered.
    pub(crate) aux_cpu_us_per_delivery: f64,
    /// The same fan-out without typing, run just before.
    pub(crate) plain: Option<Box<Report>>,
}

impl TypingReport {
    /// The figures of a fan-out report `r` that saw these typing counts.
    pub(crate) fn of(r: &Report, sent: u64, received: u64) -> Self {
        let secs = r.measure_s.max(1e-9);
        let events = (r.delivered + received).max(1) as f64;
        let aux_s: f64 = r.aux.iter().map(|u| u.cpu_s).sum();
        Self {
            sent,
            received,
            sent_per_s: sent as f64 / secs,
            received_per_s: received as f64 / secs,
            server_cpu_us_per_event: r.server_cpu_s * 1e6 / events,
            aux_cpu_us_per_event: aux_s * 1e6 / events,
            aux_cpu_us_per_delivery: aux_s * 1e6 / r.delivered.max(1) as f64,
            plain: None,
        }
    }
}

/// Redis's CPU µs per message delivered in `r`.
pub(crate) fn aux_us_per_delivery(r: &Report) -> f64 {
    let aux_s: f64 = r.aux.iter().map(|u| u.cpu_s).sum();
    aux_s * 1e6 / r.delivered.max(1) as f64
}

/// What the normal users saw without, then with, a hostile user beside them
/// (`flood`, `hostile-read`, `reconnect-loop`): two phases of the same length
/// and the same traffic, split by send time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct PhaseReport {
    /// Normal users' acks of the sends made before the hostile user started.
    pub(crate) ack_without: Latency,
    /// Normal users' acks of the sends made while the hostile user was at it.
    pub(crate) ack_with: Latency,
    /// Normal users' sends made before the hostile user started that were never acked.
    pub(crate) unacked_without: u64,
    /// Normal users' sends made while the hostile user was at it that were
    /// never acked (`ack_with` is only over the acked ones).
    pub(crate) unacked_with: u64,
    /// Servers' CPU (cores) in the phase without the hostile user.
    pub(crate) server_cpu_cores_without: f64,
    /// Servers' CPU (cores) in the phase with the hostile user.
    pub(crate) server_cpu_cores_with: f64,
    /// Redis's CPU (cores, from `/proc`) without, then with, the hostile user.
    pub(crate) aux_cpu_cores_without: f64,
    /// See `aux_cpu_cores_without`.
    pub(crate) aux_cpu_cores_with: f64,
    /// The load tool's CPU (cores) without, then with, the hostile user.
    pub(crate) tool_cpu_cores_without: f64,
    /// See `tool_cpu_cores_without`.
    pub(crate) tool_cpu_cores_with: f64,
    /// Server RSS (KiB, all replicas) at the end of the phase with the hostile user.
    pub(crate) server_rss_kb_with: u64,
    /// With `--redis-node`: what each Redis node did in the phase without
    /// the hostile user (CPU in µs, `INFO commandstats`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) redis_without: Vec<NodeUsage>,
    /// The same in the phase with the hostile user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) redis_with: Vec<NodeUsage>,
}

/// What the phase with the hostile user added to Redis's primaries over the
/// phase without it (the same length, the same normal traffic).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RedisAdded {
    /// CPU, µs.
    pub(crate) cpu_us: f64,
    /// Time inside scripts (`evalsha`, `eval`), µs.
    pub(crate) script_us: f64,
    /// Script calls.
    pub(crate) script_calls: f64,
}

impl RedisAdded {
    /// Per one of `n` events; zero when there were none.
    pub(crate) fn per(&self, n: u64) -> Self {
        if n == 0 {
            return Self::default();
        }
        let n = n as f64;
        Self {
            cpu_us: self.cpu_us / n,
            script_us: self.script_us / n,
            script_calls: self.script_calls / n,
        }
    }
}

impl PhaseReport {
    /// What the hostile user's phase added to Redis (zero without `--redis-node`).
    pub(crate) fn redis_added(&self) -> RedisAdded {
        let of = |nodes: &[NodeUsage]| {
            let prim = crate::redisstat::primaries(nodes);
            let cpu: f64 = prim.iter().map(|n| n.cpu_s).sum();
            let scripts = ["evalsha", "eval"]
                .iter()
                .map(|c| crate::redisstat::total(&prim, c))
                .fold((0.0, 0.0), |(us, calls), c| {
                    (us + c.usec as f64, calls + c.calls as f64)
                });
            (cpu * 1e6, scripts.0, scripts.1)
        };
        if self.redis_with.is_empty() || self.redis_without.is_empty() {
            return RedisAdded::default();
        }
        let (cpu0, us0, calls0) = of(&self.redis_without);
        let (cpu1, us1, calls1) = of(&self.redis_with);
        RedisAdded {
            cpu_us: cpu1 - cpu0,
            script_us: us1 - us0,
            script_calls: calls1 - calls0,
        }
    }

    /// Calls and time of `cmd` on the primaries in the phase with the
    /// hostile user, less those in the phase without (run inside scripts
    /// too: `XRANGE` of a `read`).
    pub(crate) fn command_added(&self, cmd: &str) -> (f64, f64) {
        let of = |nodes: &[NodeUsage]| {
            let c = crate::redisstat::total(&crate::redisstat::primaries(nodes), cmd);
            (c.calls as f64, c.usec as f64)
        };
        let (calls0, us0) = of(&self.redis_without);
        let (calls1, us1) = of(&self.redis_with);
        (calls1 - calls0, us1 - us0)
    }

    /// Redis's CPU (cores, primaries, from `INFO cpu`) in each phase.
    pub(crate) fn redis_cores(&self) -> (f64, f64) {
        let cores = |nodes: &[NodeUsage]| -> f64 {
            crate::redisstat::primaries(nodes)
                .iter()
                .map(|n| n.cpu_s / n.secs.max(1e-9))
                .sum()
        };
        (cores(&self.redis_without), cores(&self.redis_with))
    }

    /// Rows of the human-readable table.
    fn rows(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            (
                "ack w/o hostile".into(),
                format!(
                    "{}; unacked {}",
                    self.ack_without.row(),
                    self.unacked_without
                ),
            ),
            (
                "ack with hostile".into(),
                format!("{}; unacked {}", self.ack_with.row(), self.unacked_with),
            ),
            (
                "cpu w/o | with".into(),
                format!(
                    "servers {:.2} | {:.2} cores, redis {:.2} | {:.2}, tool {:.2} | {:.2}",
                    self.server_cpu_cores_without,
                    self.server_cpu_cores_with,
                    self.aux_cpu_cores_without,
                    self.aux_cpu_cores_with,
                    self.tool_cpu_cores_without,
                    self.tool_cpu_cores_with
                ),
            ),
        ];
        if !self.redis_with.is_empty() {
            let (without, with) = self.redis_cores();
            let added = self.redis_added();
            rows.push((
                "redis w/o | with".into(),
                format!(
                    "primaries {without:.3} | {with:.3} cores (INFO cpu); added: {:.0} µs CPU, \
                     {:.0} script calls taking {:.0} µs",
                    added.cpu_us, added.script_calls, added.script_us
                ),
            ));
        }
        rows
    }
}

/// What the `flood` scenario measured beside the normal users' totals: the
/// same traffic without, then with, one abusive user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct FloodReport {
    /// The normal users in both phases.
    #[serde(flatten)]
    pub(crate) phases: PhaseReport,
    /// The abusive user.
    pub(crate) abuser: AbuserReport,
}

impl FloodReport {
    /// Rows of the human-readable table.
    fn rows(&self) -> Vec<(String, String)> {
        let a = &self.abuser;
        let acks = |c: &crate::abuser::AckCounts| {
            format!(
                "ok {} rate_limited {} other {}",
                c.ok, c.rate_limited, c.other
            )
        };
        let mut rows = self.phases.rows();
        rows.extend([
            (
                "abuser conns".into(),
                format!(
                    "ok {} of {} {}{}{}",
                    a.connections_ok,
                    a.connections_attempted,
                    fmt_map(&a.connect_errors),
                    fmt_map(&a.dropped),
                    fmt_map(&a.sessions_ended)
                ),
            ),
            (
                "abuser sent".into(),
                format!(
                    "{} message sent + {} history ({:.0} events/s)",
                    a.sent_messages, a.sent_history, a.events_per_s
                ),
            ),
            ("abuser acks".into(), acks(&a.acks)),
            ("  message sent".into(), acks(&a.message_acks)),
            (
                "  history".into(),
                format!(
                    "{}; unacked {} {}",
                    acks(&a.history_acks),
                    a.unacked,
                    fmt_map(&a.other_errors)
                ),
            ),
        ]);
        rows
    }
}

/// How the hostile user's room was filled before the phases.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RoomFill {
    /// Messages acked `ok`: what the room holds.
    pub(crate) messages: u64,
    /// Bytes of each one's text (UTF-8).
    pub(crate) message_bytes: u64,
    /// Filling sends that were not acked `ok`, by reason.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Seconds the filling took.
    pub(crate) secs: f64,
}

impl RoomFill {
    fn row(&self) -> String {
        format!(
            "{} messages of {} B, filled in {:.1}s {}",
            self.messages,
            self.message_bytes,
            self.secs,
            fmt_map(&self.errors)
        )
    }
}

/// What the `hostile-read` scenario measured beside the normal users'
/// totals: the same traffic without, then with, one user sending `read` with
/// the oldest id of a room full of large messages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct HostileReadReport {
    /// The normal users in both phases.
    #[serde(flatten)]
    pub(crate) phases: PhaseReport,
    /// The hostile user's room, filled first.
    pub(crate) room: RoomFill,
    /// The id every `read` carried: the oldest of the room's messages.
    pub(crate) read_id: String,
    /// The hostile user's reads.
    pub(crate) reads: ReadReport,
    /// With `--read-alone-s`: the same reads with nothing else going on,
    /// before the normal users connect: what one read costs Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) alone: Option<ReadsAlone>,
}

/// The hostile user's reads alone: nobody else connected, Redis read over
/// that window and over as long at rest just before.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ReadsAlone {
    /// The reads.
    pub(crate) reads: ReadReport,
    /// Each Redis node over the window (the reads' sending time and the
    /// wait for their last acks).
    pub(crate) redis: Vec<NodeUsage>,
    /// The same nodes at rest, just before.
    pub(crate) redis_idle: Vec<NodeUsage>,
}

impl ReadsAlone {
    /// What one read acked `ok` cost the primaries, above rest.
    pub(crate) fn per_read(&self) -> RedisAdded {
        let prim = crate::redisstat::primaries(&self.redis);
        let idle = &self.redis_idle;
        let (calls, usec) = ["evalsha", "eval"]
            .iter()
            .map(|c| crate::redisstat::above_idle(&prim, idle, c))
            .fold((0.0, 0.0), |(a, b), (c, u)| (a + c, b + u));
        RedisAdded {
            cpu_us: crate::redisstat::cpu_above_idle(&prim, idle) * 1e6,
            script_us: usec,
            script_calls: calls,
        }
        .per(self.reads.acks.ok)
    }

    /// `XRANGE` calls (inside the reads' scripts) per read acked `ok`, and
    /// their µs per call: what a read reads of the room.
    pub(crate) fn xrange(&self) -> (f64, f64) {
        let prim = crate::redisstat::primaries(&self.redis);
        let (calls, usec) = crate::redisstat::above_idle(&prim, &self.redis_idle, "xrange");
        if calls < 0.5 || self.reads.acks.ok == 0 {
            return (0.0, 0.0);
        }
        (calls / self.reads.acks.ok as f64, usec / calls)
    }
}

impl HostileReadReport {
    /// What one read acked `ok` cost Redis: measured alone when it was
    /// (`--read-alone-s`), else from what the phase with the reads added over
    /// the phase without (which the normal traffic's own spread can swamp).
    pub(crate) fn redis_per_read(&self) -> RedisAdded {
        match &self.alone {
            Some(alone) => alone.per_read(),
            None => self.phases.redis_added().per(self.reads.acks.ok),
        }
    }

    /// `XRANGE` calls per read acked `ok` and their µs per call, measured
    /// alone when it was, else from the phases (the normal traffic makes
    /// none).
    pub(crate) fn xrange_per_read(&self) -> (f64, f64) {
        if let Some(alone) = &self.alone {
            return alone.xrange();
        }
        let (calls, us) = self.phases.command_added("xrange");
        if calls < 0.5 || self.reads.acks.ok == 0 {
            return (0.0, 0.0);
        }
        (calls / self.reads.acks.ok as f64, us / calls)
    }

    /// Rows of the human-readable table.
    fn rows(&self) -> Vec<(String, String)> {
        let r = &self.reads;
        let per = self.redis_per_read();
        let mut rows = self.phases.rows();
        rows.extend([
            (
                "hostile room".into(),
                format!("{}; read {{ id: {} }}", self.room.row(), self.read_id),
            ),
            (
                "hostile conns".into(),
                format!(
                    "ok {} of {} {}{}",
                    r.connections_ok,
                    r.connections_attempted,
                    fmt_map(&r.connect_errors),
                    fmt_map(&r.dropped)
                ),
            ),
            (
                "hostile reads".into(),
                format!(
                    "sent {} ({:.1}/s): ok {} ({:.1}/s) rate_limited {} other {} {}unanswered {}",
                    r.sent,
                    r.sent_per_s,
                    r.acks.ok,
                    r.ok_per_s,
                    r.acks.rate_limited,
                    r.acks.other,
                    fmt_map(&r.other_errors),
                    r.unanswered
                ),
            ),
            ("read ack".into(), r.ack.row()),
            (
                "reads alone".into(),
                self.alone.as_ref().map_or_else(
                    || "-".into(),
                    |x| {
                        format!(
                            "sent {} ok {} rate_limited {} unanswered {}; read ack {}",
                            x.reads.sent,
                            x.reads.acks.ok,
                            x.reads.acks.rate_limited,
                            x.reads.unanswered,
                            x.reads.ack.row()
                        )
                    },
                ),
            ),
            (
                "redis per read".into(),
                format!(
                    "{:.0} µs CPU, {:.0} µs in scripts ({:.2} script calls){}; \
                     {:.2} XRANGE of {:.0} µs",
                    per.cpu_us,
                    per.script_us,
                    per.script_calls,
                    if self.alone.is_some() {
                        " alone, above rest"
                    } else {
                        " above the phase without"
                    },
                    self.xrange_per_read().0,
                    self.xrange_per_read().1
                ),
            ),
        ]);
        rows
    }
}

/// What the `reconnect-loop` scenario measured beside the normal users'
/// totals: the same traffic without, then with, one user looping handshakes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ReconnectLoopReport {
    /// The normal users in both phases.
    #[serde(flatten)]
    pub(crate) phases: PhaseReport,
    /// The hostile user's room, filled first (or empty).
    pub(crate) room: RoomFill,
    /// The hostile user's handshakes.
    pub(crate) loops: LoopReport,
}

impl ReconnectLoopReport {
    /// What one join (a handshake that reached `welcome`) cost Redis, from
    /// what the phase with the loop added over the phase without.
    pub(crate) fn redis_per_join(&self) -> RedisAdded {
        self.phases.redis_added().per(self.loops.joins)
    }

    /// Rows of the human-readable table.
    fn rows(&self) -> Vec<(String, String)> {
        let l = &self.loops;
        let per = self.redis_per_join();
        let mut rows = self.phases.rows();
        rows.extend([
            ("hostile room".into(), self.room.row()),
            (
                "hostile loops".into(),
                format!(
                    "{} connections: {} handshakes ({:.0}/s): joined {} ({:.1}/s), refused {} ({:.0}/s) {}, failed {}",
                    l.connections,
                    l.attempts,
                    l.attempts_per_s,
                    l.joins,
                    l.joins_per_s,
                    l.refused_total(),
                    l.refused_per_s,
                    fmt_map(&l.refused),
                    fmt_map(&l.failed)
                ),
            ),
            ("loop welcome".into(), l.welcome.row()),
            ("loop refusal".into(), l.refusal.row()),
            (
                "redis per join".into(),
                format!(
                    "{:.0} µs CPU, {:.0} µs in scripts ({:.2} script calls) above the phase without",
                    per.cpu_us, per.script_us, per.script_calls
                ),
            ),
        ]);
        rows
    }
}

impl Report {
    /// Fills the server and tool figures from a measured phase of `secs`.
    pub(crate) fn set_usage(&mut self, m: Measured, secs: f64) {
        let Measured { servers, aux, tool } = m;
        self.server_cpu_s = servers.iter().map(|u| u.cpu_s).sum();
        self.server_rss_kb_before = servers.iter().map(|u| u.before.rss_kb).sum();
        self.server_rss_kb_after = servers.iter().map(|u| u.after.rss_kb).sum();
        if secs > 0.0 {
            self.server_cpu_cores = self.server_cpu_s / secs;
            self.tool_cpu_cores = tool.cpu_s / secs;
            self.aux_cpu_cores = aux.iter().map(|u| u.cpu_s).sum::<f64>() / secs;
        }
        if self.delivered > 0 {
            self.server_cpu_us_per_delivery = self.server_cpu_s * 1e6 / self.delivered as f64;
            let sys_s: f64 = servers.iter().map(|u| u.sys_s).sum();
            self.server_sys_us_per_delivery = sys_s * 1e6 / self.delivered as f64;
        }
        self.servers = servers;
        self.aux = aux;
        self.tool = Some(tool);
    }

    /// What went wrong: failed or dropped connections, lost, duplicated or
    /// unacknowledged messages. Empty when the run was clean.
    pub(crate) fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        let mut check = |n: u64, what: &str| {
            if n > 0 {
                f.push(format!("{}: {n} {what}", self.label));
            }
        };
        check(self.connections_failed, "connections failed");
        check(self.dropped, "connections dropped");
        check(self.lost, "deliveries lost");
        check(self.duplicated, "deliveries duplicated");
        check(self.ack_failed, "sends refused");
        check(self.ack_missing, "sends never acknowledged");
        if let Some(rc) = &self.reconnect {
            check(rc.never_back, "clients never got back after the kill");
        }
        if let Some(plain) = self.typing.as_ref().and_then(|t| t.plain.as_ref()) {
            f.extend(
                plain
                    .failures()
                    .into_iter()
                    .map(|x| format!("{x} (without typing)")),
            );
        }
        f
    }

    /// The human-readable table.
    pub(crate) fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = Vec::new();
        let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
        row("scenario", format!("{} [{}]", self.scenario, self.label));
        row(
            "params",
            self.params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
        );
        row(
            "connections",
            format!(
                "ok {} failed {} dropped {} {}{}",
                self.connections_ok,
                self.connections_failed,
                self.dropped,
                fmt_map(&self.connect_errors),
                fmt_map(&self.drop_reasons)
            ),
        );
        row(
            "handshakes",
            format!(
                "{:.0}/s over {:.2}s; time to welcome {}",
                self.handshakes_per_s,
                self.handshake_s,
                self.welcome.row()
            ),
        );
        if self.sent > 0 {
            row(
                "messages",
                format!(
                    "sent {} acked {} refused {} unacked {} {}",
                    self.sent,
                    self.acked_ok,
                    self.ack_failed,
                    self.ack_missing,
                    fmt_map(&self.ack_errors)
                ),
            );
            row(
                "deliveries",
                format!(
                    "expected {} delivered {} recovered {} lost {} duplicated {} out-of-order {}",
                    self.expected,
                    self.delivered,
                    self.recovered,
                    self.lost,
                    self.duplicated,
                    self.out_of_order
                ),
            );
            row(
                "throughput",
                format!(
                    "{:.0} sends/s, {:.0} deliveries/s over {:.1}s",
                    self.sends_per_s, self.deliveries_per_s, self.measure_s
                ),
            );
            row("end-to-end", self.e2e.row());
            row("ack", self.ack.row());
            row("fan-out complete", self.fanout_complete.row());
        }
        row(
            "server cpu",
            format!(
                "{:.2}s ({:.2} cores), {:.2} µs/delivery ({:.2} in the kernel)",
                self.server_cpu_s,
                self.server_cpu_cores,
                self.server_cpu_us_per_delivery,
                self.server_sys_us_per_delivery
            ),
        );
        row(
            "server rss",
            format!(
                "{} KiB -> {} KiB ({:.0} B/connection)",
                self.server_rss_kb_before,
                self.server_rss_kb_after,
                self.server_rss_bytes_per_connection
            ),
        );
        if self.server_rss_kb_quiet > 0 {
            row(
                "server rss quiet",
                format!(
                    "{} KiB empty -> {} KiB after the quiet period ({:.0} B/connection)",
                    self.server_rss_kb_empty,
                    self.server_rss_kb_quiet,
                    self.server_rss_bytes_per_connection_quiet
                ),
            );
        }
        if !self.aux.is_empty() {
            row("redis cpu", format!("{:.2} cores", self.aux_cpu_cores));
        }
        row(
            "load tool cpu",
            format!(
                "{:.2}s ({:.2} cores){}",
                self.tool.as_ref().map_or(0.0, |t| t.cpu_s),
                self.tool_cpu_cores,
                if self.tool_cpu_cores > 0.85 {
                    "  <- the tool may be the limit"
                } else {
                    ""
                }
            ),
        );
        if !self.redis.is_empty() {
            rows.extend(crate::redisstat::rows(
                &self.redis,
                &self.redis_idle,
                self.sent,
            ));
        }
        if let Some(flood) = &self.flood {
            rows.extend(flood.rows());
        }
        if let Some(h) = &self.hostile_read {
            rows.extend(h.rows());
        }
        if let Some(l) = &self.reconnect_loop {
            rows.extend(l.rows());
        }
        if let Some(rc) = &self.reconnect {
            rows.extend(rc.rows());
        }
        if let Some(m) = &self.many_rooms {
            rows.extend(m.rows());
        }
        if let Some(t) = &self.typing {
            rows.push((
                "typing".into(),
                format!(
                    "sent {} ({:.0}/s), user typing delivered {} ({:.0}/s)",
                    t.sent, t.sent_per_s, t.received, t.received_per_s
                ),
            ));
            rows.push((
                "cost per event".into(),
                format!(
                    "server {:.1} µs, Redis {:.1} µs (messages + user typing delivered)",
                    t.server_cpu_us_per_event, t.aux_cpu_us_per_event
                ),
            ));
            if let Some(p) = &t.plain {
                rows.push((
                    "without typing".into(),
                    format!(
                        "{:.0} deliveries/s, server {:.2} cores ({:.1} µs/delivery), Redis {:.2} cores, ack {}, e2e {}",
                        p.deliveries_per_s,
                        p.server_cpu_cores,
                        p.server_cpu_us_per_delivery,
                        p.aux_cpu_cores,
                        p.ack.row(),
                        p.e2e.row()
                    ),
                ));
            }
        }
        let mut s = String::new();
        for (k, v) in rows {
            s.push_str(&format!("{k:>18}  {v}\n"));
        }
        for step in &self.steps {
            s.push_str(&format!(
                "{:>18}  rate {} /member/s: {:.0} deliveries/s, e2e p99 {}, lost {}, server {:.2} cores, tool {:.2} cores\n",
                "ramp step",
                step.params.get("rate").map_or_else(String::new, ToString::to_string),
                step.deliveries_per_s,
                ms(step.e2e.p99_us),
                step.lost,
                step.server_cpu_cores,
                step.tool_cpu_cores
            ));
        }
        s
    }
}

fn fmt_map(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("[{}]", parts.join(", "))
}
