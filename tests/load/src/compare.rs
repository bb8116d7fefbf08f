//! Side-by-side tables of two sets of reports (`ours-<scenario>.json` and
//! `peer-<scenario>.json` in one directory), with the ratio ours / peer.

use std::fmt::Write as _;

use anyhow::Context;

use crate::report::{FloodReport, Report};

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
    }
}

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
        |r| flood(r, |f| f.ack_without.p50_us as f64),
        Unit::Micros,
    ),
    (
        "normal ack p99 without abuser",
        |r| flood(r, |f| f.ack_without.p99_us as f64),
        Unit::Micros,
    ),
    (
        "normal ack p999 without abuser",
        |r| flood(r, |f| f.ack_without.p999_us as f64),
        Unit::Micros,
    ),
    (
        "normal ack p50 with abuser",
        |r| flood(r, |f| f.ack_with.p50_us as f64),
        Unit::Micros,
    ),
    (
        "**normal ack p99 with abuser**",
        |r| flood(r, |f| f.ack_with.p99_us as f64),
        Unit::Micros,
    ),
    (
        "normal ack p999 with abuser",
        |r| flood(r, |f| f.ack_with.p999_us as f64),
        Unit::Micros,
    ),
    (
        "normal sends unacked without abuser",
        |r| flood(r, |f| f.unacked_without as f64),
        Unit::Count,
    ),
    (
        "normal sends unacked with abuser",
        |r| flood(r, |f| f.unacked_with as f64),
        Unit::Count,
    ),
    (
        "normal ack max with abuser",
        |r| flood(r, |f| f.ack_with.max_us as f64),
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
        |r| flood(r, |f| f.server_cpu_cores_without),
        Unit::Cores,
    ),
    (
        "server CPU (cores) with abuser",
        |r| flood(r, |f| f.server_cpu_cores_with),
        Unit::Cores,
    ),
    (
        "Redis CPU (cores) without abuser",
        |r| flood(r, |f| f.aux_cpu_cores_without),
        Unit::Cores,
    ),
    (
        "Redis CPU (cores) with abuser",
        |r| flood(r, |f| f.aux_cpu_cores_with),
        Unit::Cores,
    ),
    (
        "load tool CPU (cores) with abuser",
        |r| flood(r, |f| f.tool_cpu_cores_with),
        Unit::Cores,
    ),
    (
        "server RSS at the flood's end",
        |r| flood(r, |f| f.server_rss_kb_with as f64),
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
];

/// A figure of the `flood` scenario's own report; 0 (so no row) for others.
fn flood(r: &Report, get: fn(&FloodReport) -> f64) -> f64 {
    r.flood.as_ref().map_or(0.0, get)
}

fn load(path: &std::path::Path) -> anyhow::Result<Report> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The markdown table of one scenario.
fn table(scenario: &str, ours: &Report, peer: &Report) -> String {
    let mut s = format!("### {scenario}\n\n");
    let params: Vec<String> = ours
        .params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let _ = writeln!(s, "Parameters: {}\n", params.join(" "));
    s.push_str("| metric | ours (chat-gateway) | peer (Node socket.io) | ours / peer |\n");
    s.push_str("| --- | ---: | ---: | ---: |\n");
    for (name, get, unit) in METRICS {
        let (a, b) = (get(ours), get(peer));
        if a == 0.0 && b == 0.0 {
            continue;
        }
        let ratio = if b != 0.0 {
            format!("{:.2}", a / b)
        } else {
            "-".into()
        };
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {ratio} |",
            show(a, *unit),
            show(b, *unit)
        );
    }
    for failure in ours.failures().into_iter().chain(peer.failures()) {
        let _ = writeln!(s, "\nFAILURE {failure}");
    }
    s.push('\n');
    s
}

/// Prints (and writes to `out`) the tables of every scenario both sides ran.
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
    for sc in scenarios {
        let dir = std::path::Path::new(dir);
        let peer_path = dir.join(format!("peer-{sc}.json"));
        if !peer_path.exists() {
            continue;
        }
        let ours = load(&dir.join(format!("ours-{sc}.json")))?;
        let peer = load(&peer_path)?;
        text.push_str(&table(&sc, &ours, &peer));
    }
    print!("{text}");
    if let Some(out) = out {
        std::fs::write(out, &text).with_context(|| format!("writing {out}"))?;
    }
    Ok(())
}
