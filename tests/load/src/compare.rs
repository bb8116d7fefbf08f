//! Side-by-side tables of the sets of reports in one directory
//! (`ours-<scenario>.json`, and `base-<scenario>.json` and/or
//! `peer-<scenario>.json`), with the ratio of ours to each other side.

use std::fmt::Write as _;

use anyhow::Context;

use crate::hostile::{LoopReport, ReadReport};
use crate::redisstat::{self, NodeUsage};
use crate::report::{
    FloodReport, HostileReadReport, PhaseReport, ReconnectLoopReport, ReconnectReport, Report,
    RoomFill, TypingReport,
};

type Metric = (&'static str, fn(&Report) -> f64, Unit);

#[derive(Clone, Copy)]
enum Unit {
    Count,
    Rate,
    Micros,
    Seconds,
    Cores,
    Kib,
    Bytes,
    Us,
}

fn show(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Count => format!("{v:.0}"),
        Unit::Rate => format!("{v:.0}/s"),
        Unit::Micros => format!("{:.2} ms", v / 1000.0),
        Unit::Seconds => format!("{v:.2} s"),
        Unit::Cores => format!("{v:.2}"),
        Unit::Kib => format!("{:.1} MiB", v / 1024.0),
        Unit::Bytes => format!("{v:.0} B"),
        Unit::Us => format!("{v:.1} µs"),
    }
}

// A table, one row per metric: its rows are alike by design.
const METRICS: &[Metric] = &[
    ("connections ok", |r| r.connections_ok as f64, Unit::Count),
    (
        "connections failed",
        |r| r.connections_failed as f64,
        Unit::Count,
    ),
    ("connections dropped", |r| r.dropped as f64, Unit::Count),
    ("handshakes/s", |r| r.handshakes_per_s, Unit::Rate),
    (
        "time to welcome p50",
        |r| r.welcome.p50_us as f64,
        Unit::Micros,
    ),
    (
        "time to welcome p99",
        |r| r.welcome.p99_us as f64,
        Unit::Micros,
    ),
    ("sent", |r| r.sent as f64, Unit::Count),
    ("acked", |r| r.acked_ok as f64, Unit::Count),
    ("delivered", |r| r.delivered as f64, Unit::Count),
    (
        "recovered from welcome.history",
        |r| r.recovered as f64,
        Unit::Count,
    ),
    ("lost", |r| r.lost as f64, Unit::Count),
    ("duplicated", |r| r.duplicated as f64, Unit::Count),
    ("out of order", |r| r.out_of_order as f64, Unit::Count),
    ("deliveries/s", |r| r.deliveries_per_s, Unit::Rate),
    ("end-to-end p50", |r| r.e2e.p50_us as f64, Unit::Micros),
    ("end-to-end p99", |r| r.e2e.p99_us as f64, Unit::Micros),
    ("end-to-end p999", |r| r.e2e.p999_us as f64, Unit::Micros),
    ("end-to-end max", |r| r.e2e.max_us as f64, Unit::Micros),
    ("ack p50", |r| r.ack.p50_us as f64, Unit::Micros),
    ("ack p99", |r| r.ack.p99_us as f64, Unit::Micros),
    (
        "normal ack p50 without abuser",
        |r| phases(r, |f| f.ack_without.p50_us as f64),
        Unit::Micros,
    ),
    (
        "normal ack p99 without abuser",
        |r| phases(r, |f| f.ack_without.p99_us as f64),
        Unit::Micros,
    ),
    (
        "normal ack p999 without abuser",
        |r| phases(r, |f| f.ack_without.p999_us as f64),
        Unit::Micros,
    ),
    (
        "normal ack p50 with abuser",
        |r| phases(r, |f| f.ack_with.p50_us as f64),
        Unit::Micros,
    ),
    (
        "**normal ack p99 with abuser**",
        |r| phases(r, |f| f.ack_with.p99_us as f64),
        Unit::Micros,
    ),
    (
        "normal ack p999 with abuser",
        |r| phases(r, |f| f.ack_with.p999_us as f64),
        Unit::Micros,
    ),
    (
        "normal sends unacked without abuser",
        |r| phases(r, |f| f.unacked_without as f64),
        Unit::Count,
    ),
    (
        "normal sends unacked with abuser",
        |r| phases(r, |f| f.unacked_with as f64),
        Unit::Count,
    ),
    (
        "normal ack max with abuser",
        |r| phases(r, |f| f.ack_with.max_us as f64),
        Unit::Micros,
    ),
    (
        "abuser connections ok",
        |r| flood(r, |f| f.abuser.connections_ok as f64),
        Unit::Count,
    ),
    (
        "abuser connections refused",
        |r| flood(r, |f| f.abuser.connect_errors.values().sum::<u64>() as f64),
        Unit::Count,
    ),
    (
        "abuser connections closed by server",
        |r| flood(r, |f| f.abuser.dropped.values().sum::<u64>() as f64),
        Unit::Count,
    ),
    (
        "abuser events sent",
        |r| {
            flood(r, |f| {
                (f.abuser.sent_messages + f.abuser.sent_history) as f64
            })
        },
        Unit::Count,
    ),
    (
        "abuser acks ok",
        |r| flood(r, |f| f.abuser.acks.ok as f64),
        Unit::Count,
    ),
    (
        "abuser acks rate_limited",
        |r| flood(r, |f| f.abuser.acks.rate_limited as f64),
        Unit::Count,
    ),
    (
        "abuser acks other",
        |r| flood(r, |f| f.abuser.acks.other as f64),
        Unit::Count,
    ),
    (
        "abuser events unacked",
        |r| flood(r, |f| f.abuser.unacked as f64),
        Unit::Count,
    ),
    (
        "server CPU (cores) without abuser",
        |r| phases(r, |f| f.server_cpu_cores_without),
        Unit::Cores,
    ),
    (
        "server CPU (cores) with abuser",
        |r| phases(r, |f| f.server_cpu_cores_with),
        Unit::Cores,
    ),
    (
        "Redis CPU (cores) without abuser",
        |r| phases(r, |f| f.aux_cpu_cores_without),
        Unit::Cores,
    ),
    (
        "Redis CPU (cores) with abuser",
        |r| phases(r, |f| f.aux_cpu_cores_with),
        Unit::Cores,
    ),
    (
        "Redis primaries CPU (cores, INFO cpu) without abuser",
        |r| phases(r, |f| f.redis_cores().0),
        Unit::Cores,
    ),
    (
        "Redis primaries CPU (cores, INFO cpu) with abuser",
        |r| phases(r, |f| f.redis_cores().1),
        Unit::Cores,
    ),
    (
        "Redis primaries CPU added by abuser (cores)",
        |r| {
            phases(r, |f| {
                let (without, with) = f.redis_cores();
                with - without
            })
        },
        Unit::Cores,
    ),
    (
        "hostile room: messages held",
        |r| room(r, |f| f.messages as f64),
        Unit::Count,
    ),
    (
        "hostile room: bytes per message",
        |r| room(r, |f| f.message_bytes as f64),
        Unit::Bytes,
    ),
    (
        "hostile read connections ok",
        |r| reads(r, |x| x.connections_ok as f64),
        Unit::Count,
    ),
    (
        "hostile reads sent",
        |r| reads(r, |x| x.sent as f64),
        Unit::Count,
    ),
    (
        "hostile reads acked ok",
        |r| reads(r, |x| x.acks.ok as f64),
        Unit::Count,
    ),
    (
        "**hostile reads acked ok/s**",
        |r| reads(r, |x| x.ok_per_s),
        Unit::Rate,
    ),
    (
        "hostile reads rate_limited",
        |r| reads(r, |x| x.acks.rate_limited as f64),
        Unit::Count,
    ),
    (
        "hostile reads refused otherwise",
        |r| reads(r, |x| x.acks.other as f64),
        Unit::Count,
    ),
    (
        "hostile reads never answered",
        |r| reads(r, |x| x.unanswered as f64),
        Unit::Count,
    ),
    (
        "hostile read ack p50",
        |r| reads(r, |x| x.ack.p50_us as f64),
        Unit::Micros,
    ),
    (
        "hostile read ack p99",
        |r| reads(r, |x| x.ack.p99_us as f64),
        Unit::Micros,
    ),
    (
        "reads alone: acked ok",
        |r| {
            read(r, |h| {
                h.alone.as_ref().map_or(0.0, |x| x.reads.acks.ok as f64)
            })
        },
        Unit::Count,
    ),
    (
        "reads alone: never answered",
        |r| {
            read(r, |h| {
                h.alone.as_ref().map_or(0.0, |x| x.reads.unanswered as f64)
            })
        },
        Unit::Count,
    ),
    (
        "**Redis script time per read acked ok (reads alone)**",
        |r| read(r, |h| h.redis_per_read().script_us),
        Unit::Us,
    ),
    (
        "Redis CPU per read acked ok (reads alone, above rest)",
        |r| read(r, |h| h.redis_per_read().cpu_us),
        Unit::Us,
    ),
    (
        "XRANGE calls per read acked ok (reads alone)",
        |r| read(r, |h| h.xrange_per_read().0),
        Unit::Cores,
    ),
    (
        "XRANGE time per call (inside a read, reads alone)",
        |r| read(r, |h| h.xrange_per_read().1),
        Unit::Us,
    ),
    (
        "loop handshakes/s",
        |r| loops(r, |l| l.attempts_per_s),
        Unit::Rate,
    ),
    (
        "**loop joins/s (welcome)**",
        |r| loops(r, |l| l.joins_per_s),
        Unit::Rate,
    ),
    (
        "**loop refused/s (CONNECT_ERROR)**",
        |r| loops(r, |l| l.refused_per_s),
        Unit::Rate,
    ),
    (
        "loop refused rate_limited",
        |r| loops(r, |l| refused(l, "rate_limited")),
        Unit::Count,
    ),
    (
        "loop refused too_many_connections",
        |r| loops(r, |l| refused(l, "too_many_connections")),
        Unit::Count,
    ),
    (
        "loop handshakes failed otherwise",
        |r| loops(r, |l| l.failed.values().sum::<u64>() as f64),
        Unit::Count,
    ),
    (
        "loop time to welcome p50",
        |r| loops(r, |l| l.welcome.p50_us as f64),
        Unit::Micros,
    ),
    (
        "loop time to welcome p99",
        |r| loops(r, |l| l.welcome.p99_us as f64),
        Unit::Micros,
    ),
    (
        "loop time to refusal p50",
        |r| loops(r, |l| l.refusal.p50_us as f64),
        Unit::Micros,
    ),
    (
        "Redis CPU per join",
        |r| rloop(r, |l| l.redis_per_join().cpu_us),
        Unit::Us,
    ),
    (
        "Redis script time per join",
        |r| rloop(r, |l| l.redis_per_join().script_us),
        Unit::Us,
    ),
    (
        "load tool CPU (cores) with abuser",
        |r| phases(r, |f| f.tool_cpu_cores_with),
        Unit::Cores,
    ),
    (
        "server RSS at the end of the phase with abuser",
        |r| phases(r, |f| f.server_rss_kb_with as f64),
        Unit::Kib,
    ),
    (
        "fan-out complete p99",
        |r| r.fanout_complete.p99_us as f64,
        Unit::Micros,
    ),
    (
        "fan-out complete max",
        |r| r.fanout_complete.max_us as f64,
        Unit::Micros,
    ),
    ("server CPU", |r| r.server_cpu_s, Unit::Seconds),
    ("server CPU (cores)", |r| r.server_cpu_cores, Unit::Cores),
    (
        "server CPU µs/delivery",
        |r| r.server_cpu_us_per_delivery,
        Unit::Cores,
    ),
    (
        "of which in the kernel",
        |r| r.server_sys_us_per_delivery,
        Unit::Cores,
    ),
    (
        "server RSS after",
        |r| r.server_rss_kb_after as f64,
        Unit::Kib,
    ),
    (
        "server RSS/connection",
        |r| r.server_rss_bytes_per_connection,
        Unit::Bytes,
    ),
    ("Redis CPU (cores)", |r| r.aux_cpu_cores, Unit::Cores),
    ("load tool CPU (cores)", |r| r.tool_cpu_cores, Unit::Cores),
    (
        "typing: typing sent/s",
        |r| typing(r, |t| t.sent_per_s),
        Unit::Rate,
    ),
    (
        "typing: user typing delivered/s",
        |r| typing(r, |t| t.received_per_s),
        Unit::Rate,
    ),
    (
        "typing: server CPU µs/event (messages + user typing)",
        |r| typing(r, |t| t.server_cpu_us_per_event),
        Unit::Cores,
    ),
    (
        "typing: Redis CPU µs/delivery",
        |r| typing(r, |t| t.aux_cpu_us_per_delivery),
        Unit::Cores,
    ),
    (
        "typing: Redis CPU µs/event",
        |r| typing(r, |t| t.aux_cpu_us_per_event),
        Unit::Cores,
    ),
    (
        "typing: server CPU added over without typing (cores)",
        |r| {
            r.typing
                .as_ref()
                .and_then(|t| t.plain.as_deref())
                .map_or(0.0, |p| r.server_cpu_cores - p.server_cpu_cores)
        },
        Unit::Cores,
    ),
    (
        "without typing: deliveries/s",
        |r| plain(r, |p| p.deliveries_per_s),
        Unit::Rate,
    ),
    (
        "without typing: lost",
        |r| plain(r, |p| p.lost as f64),
        Unit::Count,
    ),
    (
        "without typing: end-to-end p50",
        |r| plain(r, |p| p.e2e.p50_us as f64),
        Unit::Micros,
    ),
    (
        "without typing: end-to-end p99",
        |r| plain(r, |p| p.e2e.p99_us as f64),
        Unit::Micros,
    ),
    (
        "without typing: ack p50",
        |r| plain(r, |p| p.ack.p50_us as f64),
        Unit::Micros,
    ),
    (
        "without typing: ack p99",
        |r| plain(r, |p| p.ack.p99_us as f64),
        Unit::Micros,
    ),
    (
        "without typing: server CPU (cores)",
        |r| plain(r, |p| p.server_cpu_cores),
        Unit::Cores,
    ),
    (
        "without typing: server CPU µs/delivery",
        |r| plain(r, |p| p.server_cpu_us_per_delivery),
        Unit::Cores,
    ),
    (
        "without typing: Redis CPU (cores)",
        |r| plain(r, |p| p.aux_cpu_cores),
        Unit::Cores,
    ),
    (
        "without typing: Redis CPU µs/delivery",
        |r| plain(r, crate::report::aux_us_per_delivery),
        Unit::Cores,
    ),
];

/// The `reconnect` scenario's storm table: every row is shown, 0 included
/// (nobody left behind and nothing lost are the point).
const STORM: &[Metric] = &[
    (
        "clients of the killed replica",
        |r| storm(r, |s| s.clients as f64),
        Unit::Count,
    ),
    (
        "dropped at the kill",
        |r| storm(r, |s| s.dropped as f64),
        Unit::Count,
    ),
    (
        "welcome again",
        |r| storm(r, |s| s.back as f64),
        Unit::Count,
    ),
    (
        "**never got back**",
        |r| storm(r, |s| s.never_back as f64),
        Unit::Count,
    ),
    (
        "kill to the first welcome",
        |r| storm(r, |s| s.first_back_s),
        Unit::Seconds,
    ),
    (
        "**kill to the last welcome**",
        |r| storm(r, |s| s.all_back_s),
        Unit::Seconds,
    ),
    (
        "reconnect handshake p50",
        |r| storm(r, |s| s.handshake.p50_us as f64),
        Unit::Micros,
    ),
    (
        "**reconnect handshake p99**",
        |r| storm(r, |s| s.handshake.p99_us as f64),
        Unit::Micros,
    ),
    (
        "reconnect handshake max",
        |r| storm(r, |s| s.handshake.max_us as f64),
        Unit::Micros,
    ),
    (
        "reconnect attempts",
        |r| storm(r, |s| s.attempts as f64),
        Unit::Count,
    ),
    (
        "attempts failed (retried)",
        |r| storm(r, |s| s.attempts_failed as f64),
        Unit::Count,
    ),
    (
        "welcomes not recovered",
        |r| storm(r, |s| s.not_recovered as f64),
        Unit::Count,
    ),
    ("messages acked", |r| r.acked_ok as f64, Unit::Count),
    (
        "recovered from welcome.history",
        |r| r.recovered as f64,
        Unit::Count,
    ),
    ("**messages lost**", |r| r.lost as f64, Unit::Count),
    ("messages duplicated", |r| r.duplicated as f64, Unit::Count),
    (
        "survivor RSS before the kill",
        |r| storm(r, |s| s.survivor_rss_kb_before as f64),
        Unit::Kib,
    ),
    (
        "survivor RSS peak",
        |r| storm(r, |s| s.survivor_rss_kb_peak as f64),
        Unit::Kib,
    ),
    (
        "survivor RSS at the end",
        |r| storm(r, |s| s.survivor_rss_kb_after as f64),
        Unit::Kib,
    ),
    (
        "storm window (kill to the last welcome or give-up)",
        |r| storm(r, |s| s.storm_s),
        Unit::Seconds,
    ),
    (
        "survivor CPU over the storm",
        |r| storm(r, |s| s.survivor_cpu_s),
        Unit::Seconds,
    ),
    (
        "survivor CPU (cores) over the storm",
        |r| storm(r, |s| s.survivor_cpu_s / s.storm_s.max(1e-9)),
        Unit::Cores,
    ),
    (
        "load tool CPU (cores) over the storm",
        |r| r.tool_cpu_cores,
        Unit::Cores,
    ),
];

/// A figure of the `reconnect` scenario's storm; 0 for others.
fn storm(r: &Report, get: fn(&ReconnectReport) -> f64) -> f64 {
    r.reconnect.as_ref().map_or(0.0, get)
}

/// A figure of the `typing` scenario's own report; 0 (so no row) for others.
fn typing(r: &Report, get: fn(&TypingReport) -> f64) -> f64 {
    r.typing.as_ref().map_or(0.0, get)
}

/// A figure of the `typing` scenario's run without typing; 0 for others.
fn plain(r: &Report, get: fn(&Report) -> f64) -> f64 {
    r.typing
        .as_ref()
        .and_then(|t| t.plain.as_deref())
        .map_or(0.0, get)
}

/// A figure of the `flood` scenario's own report; 0 (so no row) for others.
fn flood(r: &Report, get: fn(&FloodReport) -> f64) -> f64 {
    r.flood.as_ref().map_or(0.0, get)
}

/// A figure of the normal users' two phases (`flood`, `hostile-read`,
/// `reconnect-loop`); 0 for others.
fn phases(r: &Report, get: fn(&PhaseReport) -> f64) -> f64 {
    let p = r
        .flood
        .as_ref()
        .map(|f| &f.phases)
        .or(r.hostile_read.as_ref().map(|h| &h.phases))
        .or(r.reconnect_loop.as_ref().map(|l| &l.phases));
    p.map_or(0.0, get)
}

/// A figure of the hostile user's room (`hostile-read`, `reconnect-loop`);
/// 0 for others.
fn room(r: &Report, get: fn(&RoomFill) -> f64) -> f64 {
    let f = r
        .hostile_read
        .as_ref()
        .map(|h| &h.room)
        .or(r.reconnect_loop.as_ref().map(|l| &l.room));
    f.map_or(0.0, get)
}

/// A figure of the `hostile-read` scenario's own report; 0 for others.
fn read(r: &Report, get: fn(&HostileReadReport) -> f64) -> f64 {
    r.hostile_read.as_ref().map_or(0.0, get)
}

/// A figure of the `hostile-read` scenario's reads; 0 for others.
fn reads(r: &Report, get: fn(&ReadReport) -> f64) -> f64 {
    r.hostile_read.as_ref().map_or(0.0, |h| get(&h.reads))
}

/// A figure of the `reconnect-loop` scenario's own report; 0 for others.
fn rloop(r: &Report, get: fn(&ReconnectLoopReport) -> f64) -> f64 {
    r.reconnect_loop.as_ref().map_or(0.0, get)
}

/// A figure of the `reconnect-loop` scenario's handshakes; 0 for others.
fn loops(r: &Report, get: fn(&LoopReport) -> f64) -> f64 {
    r.reconnect_loop.as_ref().map_or(0.0, |l| get(&l.loops))
}

/// Handshakes of a loop refused with `code`.
fn refused(l: &LoopReport, code: &str) -> f64 {
    l.refused.get(code).copied().unwrap_or(0) as f64
}

fn load(path: &std::path::Path) -> anyhow::Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The sides a directory may hold reports of, in column order, with the
/// title of their column.
const SIDES: &[(&str, &str)] = &[
    ("ours", "ours (chat-gateway)"),
    ("base", "base (chat-gateway, BASE_GATEWAY)"),
    ("peer", "peer (Node socket.io)"),
];

/// The markdown table of one scenario; `sides` starts with ours.
fn table(scenario: &str, sides: &[(&str, Report)]) -> String {
    let mut s = format!("### {scenario}\n\n");
    let params: Vec<String> = sides[0]
        .1
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(s, "Parameters: {}\n", params.join(" "));
    metric_rows(&mut s, METRICS, sides, false);
    if sides.iter().any(|(_, r)| r.reconnect.is_some()) {
        s.push_str(
            "\n#### reconnect storm\n\nFrom the SIGKILL of one replica until its clients have their \
             `welcome` again from the survivor; survivor figures over that window (the server \
             figures above are the survivor's too; the handshakes above are the first connect's).\n\n",
        );
        metric_rows(&mut s, STORM, sides, true);
    }
    for failure in sides.iter().flat_map(|(_, r)| r.failures()) {
        let _ = writeln!(s, "\nFAILURE {failure}");
    }
    s.push('\n');
    s
}

/// Appends the markdown table of `metrics`, one column per side and the
/// ratio of the first side (ours) to each other one; rows 0 on every side
/// are left out unless `zeros`.
fn metric_rows(s: &mut String, metrics: &[Metric], sides: &[(&str, Report)], zeros: bool) {
    fn title(side: &str) -> &str {
        SIDES
            .iter()
            .find(|(name, _)| *name == side)
            .map_or(side, |(_, title)| title)
    }
    let (first, others) = (sides[0].0, &sides[1..]);
    s.push_str("| metric |");
    for (side, _) in sides {
        let _ = write!(s, " {} |", title(side));
    }
    for (side, _) in others {
        let _ = write!(s, " {first} / {side} |");
    }
    s.push_str("\n| --- |");
    s.push_str(&" ---: |".repeat(sides.len() + others.len()));
    s.push('\n');
    for (name, get, unit) in metrics {
        let values: Vec<f64> = sides.iter().map(|(_, r)| get(r)).collect();
        if values.iter().all(|v| *v == 0.0) && !zeros {
            continue;
        }
        let _ = write!(s, "| {name} |");
        for v in &values {
            let _ = write!(s, " {} |", show(*v, *unit));
        }
        for b in &values[1..] {
            let ratio = if *b != 0.0 {
                format!("{:.2}", values[0] / b)
            } else {
                "-".into()
            };
            let _ = write!(s, " {ratio} |");
        }
        s.push('\n');
    }
}

/// Prints (and writes to `out`) the tables of every scenario that ours and
/// at least one other side ran.
pub(crate) fn run(dir: &str, out: Option<&str>) -> anyhow::Result<()> {
    let mut scenarios: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {dir}"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("ours-")?
                .strip_suffix(".json")
                .map(str::to_owned)
        })
        .collect();
    scenarios.sort();
    let mut text = String::new();
    let dir = std::path::Path::new(dir);
    for sc in scenarios {
        let mut sides = Vec::new();
        for (side, _) in SIDES {
            let path = dir.join(format!("{side}-{sc}.json"));
            if path.exists() {
                sides.push((*side, load(&path)?));
            }
        }
        if sides.len() >= 2 {
            text.push_str(&table(&sc, &sides));
        }
    }
    text.push_str(&topologies(dir)?);
    text.push_str(&many_rooms(dir)?);
    print!("{text}");
    if let Some(out) = out {
        std::fs::write(out, &text).with_context(|| format!("writing {out}"))?;
    }
    Ok(())
}

/// Our side's `many-rooms` run (no other side makes rooms), if the
/// directory has one: the figures its goals are about.
fn many_rooms(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("ours-many-rooms.json");
    if !path.exists() {
        return Ok(String::new());
    }
    let r = load(&path)?;
    let Some(m) = &r.many_rooms else {
        return Ok(String::new());
    };
    let mut s = String::from(
        "### many-rooms (ours)

",
    );
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        s,
        "Parameters: {}
",
        params.join(" ")
    );
    s.push_str(
        "| metric | value |
| --- | ---: |
",
    );
    let _ = writeln!(
        s,
        "| Redis commands/s at rest (scripts/s) | {:.0} ({:.1}) |",
        m.idle_commands_per_s, m.idle_scripts_per_s
    );
    let _ = writeln!(
        s,
        "| Redis commands/s under load (scripts/s) | {:.0} ({:.1}) |",
        m.load_commands_per_s, m.load_scripts_per_s
    );
    for (i, x) in m.replicas.iter().enumerate() {
        let n = i + 1;
        let _ = writeln!(
            s,
            "| replica {n}: RSS per connection ({} connections) | {:.0} B |",
            x.connections, x.rss_bytes_per_connection
        );
        let _ = writeln!(
            s,
            "| replica {n}: CPU at rest / under load | {:.3} / {:.3} cores |",
            x.idle_cpu_cores, x.load_cpu_cores
        );
    }
    let _ = writeln!(
        s,
        "| sent / delivered / lost | {} / {} / {} |",
        r.sent, r.delivered, r.lost
    );
    let _ = writeln!(
        s,
        "| end-to-end p50 / p99 / max | {} / {} / {} |",
        show(r.e2e.p50_us as f64, Unit::Micros),
        show(r.e2e.p99_us as f64, Unit::Micros),
        show(r.e2e.max_us as f64, Unit::Micros)
    );
    for failure in r.failures() {
        let _ = writeln!(s, "\nFAILURE {failure}");
    }
    s.push('\n');
    Ok(s)
}

/// One row of the topology table: a figure of a report, as text.
type Row<'a> = Box<dyn Fn(&Report) -> String + 'a>;

/// The fan-out scenarios of our side on each Redis topology the harness ran
/// (`ours-fanout*.json`), side by side, with what Redis did per send and on
/// each node.
fn topologies(dir: &std::path::Path) -> anyhow::Result<String> {
    let mut runs: Vec<(String, Report)> = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let Some(name) = e?.file_name().into_string().ok() else {
            continue;
        };
        let Some(sc) = name
            .strip_prefix("ours-")
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        if sc.starts_with("fanout") {
            let r = load(&dir.join(&name))?;
            if !r.redis.is_empty() {
                runs.push((sc.to_owned(), r));
            }
        }
    }
    if runs.is_empty() {
        return Ok(String::new());
    }
    // The harness's order: single, single + replica, cluster, cluster + WAIT.
    let rank = |sc: &str| {
        [
            "fanout",
            "fanout-wait",
            "fanout-cluster",
            "fanout-cluster-wait",
        ]
        .iter()
        .position(|x| *x == sc)
        .unwrap_or(usize::MAX)
    };
    runs.sort_by(|a, b| (rank(&a.0), &a.0).cmp(&(rank(&b.0), &b.0)));
    let mut s = String::from("### fan-out by Redis topology (ours)\n\n");
    let params: Vec<String> = runs[0]
        .1
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(s, "Parameters (of `{}`): {}\n", runs[0].0, params.join(" "));
    s.push_str(
        "fanout: one redis-server; fanout-wait: a primary and one replica, \
         REDIS_WAIT_REPLICAS=1; fanout-cluster: 3 primaries + 3 replicas; \
         fanout-cluster-wait: the cluster with REDIS_WAIT_REPLICAS=1. \
         \"Above idle\": less what the same nodes did with everyone connected and \
         nobody sending (heartbeats, sweeps).\n\n",
    );
    let _ = writeln!(
        s,
        "| metric | {} |",
        runs.iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(s, "| --- |{}", " ---: |".repeat(runs.len()));
    let per_send = |r: &Report, v: f64| if r.sent > 0 { v / r.sent as f64 } else { 0.0 };
    let secs = |r: &Report| r.redis.first().map_or(0.0, |n| n.secs).max(1e-9);
    let role = |r: &Report, role: &str| -> Vec<NodeUsage> {
        r.redis.iter().filter(|n| n.role == role).cloned().collect()
    };
    let cpu = |nodes: &[NodeUsage]| nodes.iter().map(|n| n.cpu_s).sum::<f64>();
    let calls = |r: &Report, cmd: &str| {
        redisstat::calls_above_idle(&role(r, "master"), &r.redis_idle)
            .get(cmd)
            .copied()
            .unwrap_or(0.0)
    };
    let all_calls = |r: &Report| -> f64 {
        redisstat::calls_above_idle(&role(r, "master"), &r.redis_idle)
            .values()
            .sum()
    };
    let idle_cores = |r: &Report| -> f64 {
        r.redis_idle
            .iter()
            .map(|n| n.cpu_s / n.secs.max(1e-9))
            .sum()
    };
    let busiest = |r: &Report| {
        role(r, "master")
            .iter()
            .map(|n| n.cpu_s)
            .fold(0.0, f64::max)
            / secs(r)
    };
    let ms = |us: u64| show(us as f64, Unit::Micros);
    let rows: Vec<(&str, Row<'_>)> = vec![
        (
            "primaries (nodes)",
            Box::new(|r| format!("{} ({})", role(r, "master").len(), r.redis.len())),
        ),
        (
            "sent / acked ok",
            Box::new(|r| format!("{} / {}", r.sent, r.acked_ok)),
        ),
        (
            "refused / unacked",
            Box::new(|r| format!("{} / {}", r.ack_failed, r.ack_missing)),
        ),
        (
            "lost / duplicated",
            Box::new(|r| format!("{} / {}", r.lost, r.duplicated)),
        ),
        ("sends/s", Box::new(|r| format!("{:.0}", r.sends_per_s))),
        (
            "deliveries/s",
            Box::new(|r| format!("{:.0}", r.deliveries_per_s)),
        ),
        (
            "**ack p50 / p99**",
            Box::new(|r| format!("{} / {}", ms(r.ack.p50_us), ms(r.ack.p99_us))),
        ),
        (
            "ack p999 / max",
            Box::new(|r| format!("{} / {}", ms(r.ack.p999_us), ms(r.ack.max_us))),
        ),
        (
            "end-to-end p50 / p99",
            Box::new(|r| format!("{} / {}", ms(r.e2e.p50_us), ms(r.e2e.p99_us))),
        ),
        (
            "gateway CPU µs/delivery",
            Box::new(|r| format!("{:.2}", r.server_cpu_us_per_delivery)),
        ),
        (
            "load tool CPU (cores)",
            Box::new(|r| format!("{:.2}", r.tool_cpu_cores)),
        ),
        (
            "Redis CPU, all nodes (cores)",
            Box::new(|r| format!("{:.3}", cpu(&r.redis) / secs(r))),
        ),
        (
            "Redis CPU at idle, all nodes (cores)",
            Box::new(|r| format!("{:.3}", idle_cores(r))),
        ),
        (
            "busiest primary (cores)",
            Box::new(|r| format!("{:.3}", busiest(r))),
        ),
        (
            "**Redis CPU µs per send, primaries, above idle**",
            Box::new(|r| {
                format!(
                    "{:.1}",
                    per_send(
                        r,
                        redisstat::cpu_above_idle(&role(r, "master"), &r.redis_idle) * 1e6
                    )
                )
            }),
        ),
        (
            "Redis CPU µs per send, replicas, above idle",
            Box::new(|r| {
                let replicas = role(r, "slave");
                if replicas.is_empty() {
                    return "-".into();
                }
                format!(
                    "{:.1}",
                    per_send(r, redisstat::cpu_above_idle(&replicas, &r.redis_idle) * 1e6)
                )
            }),
        ),
        (
            "commands per send, primaries, above idle",
            Box::new(|r| format!("{:.2}", per_send(r, all_calls(r)))),
        ),
        (
            "evalsha / xadd / spublish / wait per send",
            Box::new(|r| {
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2}",
                    per_send(r, calls(r, "evalsha")),
                    per_send(r, calls(r, "xadd")),
                    per_send(r, calls(r, "spublish")),
                    per_send(r, calls(r, "wait"))
                )
            }),
        ),
        (
            "evalsha µs inside Redis per call",
            Box::new(|r| {
                let t = redisstat::total(&role(r, "master"), "evalsha");
                format!(
                    "{:.1}",
                    if t.calls > 0 {
                        t.usec as f64 / t.calls as f64
                    } else {
                        0.0
                    }
                )
            }),
        ),
    ];
    for (name, get) in &rows {
        let _ = writeln!(
            s,
            "| {name} | {} |",
            runs.iter()
                .map(|(_, r)| get(r))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    s.push('\n');
    for (sc, r) in &runs {
        let _ = writeln!(s, "Per node, `{sc}`:\n");
        s.push_str("| node | role | CPU (cores) | of which kernel | commands in the phase |\n");
        s.push_str("| --- | --- | ---: | ---: | --- |\n");
        for n in &r.redis {
            s.push_str(&node_row(n));
        }
        s.push('\n');
    }
    Ok(s)
}

fn node_row(n: &NodeUsage) -> String {
    let secs = n.secs.max(1e-9);
    format!(
        "| {} | {} | {:.3} | {:.3} | {} |\n",
        n.addr,
        n.role_name(),
        n.cpu_s / secs,
        n.sys_s / secs,
        n.top_commands()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_column_and_a_ratio_per_side() {
        let side = |sent: u64| Report {
            sent,
            ..Report::default()
        };
        let t = table(
            "fanout",
            &[("ours", side(40)), ("base", side(20)), ("peer", side(10))],
        );
        assert!(
            t.contains("| metric | ours (chat-gateway) | base (chat-gateway, BASE_GATEWAY) | peer (Node socket.io) | ours / base | ours / peer |"),
            "{t}"
        );
        assert!(t.contains("| sent | 40 | 20 | 10 | 2.00 | 4.00 |"), "{t}");
        assert!(
            !t.contains("| lost |"),
            "rows 0 everywhere are left out: {t}"
        );
    }

    #[test]
    fn hostile_rows_show_what_each_side_answered() {
        let mut ours = Report::default();
        let mut h = HostileReadReport::default();
        h.reads.sent = 120;
        h.reads.acks.ok = 100;
        ours.hostile_read = Some(h);
        let mut peer = Report::default();
        let mut h = HostileReadReport::default();
        h.reads.sent = 8;
        h.reads.unanswered = 8;
        peer.hostile_read = Some(h);
        let t = table("hostile-read", &[("ours", ours), ("peer", peer)]);
        assert!(
            t.contains("| hostile reads acked ok | 100 | 0 | - |"),
            "{t}"
        );
        assert!(
            t.contains("| hostile reads never answered | 0 | 8 | 0.00 |"),
            "{t}"
        );
    }
}
