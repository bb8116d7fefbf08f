//! What each Redis node did over a measured phase: its role, its CPU (from
//! `/proc/<pid>/stat`, the pid being the one the node reports in `INFO
//! server`; where the node reports it, from `INFO cpu` instead: the same
//! process times, from `getrusage`, in microseconds rather than the 10 ms
//! ticks of `/proc`, which a 2 s idle reading of a node doing 0.01 cores
//! cannot resolve) and its commands (`INFO commandstats`: calls and microseconds per
//! command), so a report shows how the load spread over a cluster's shards
//! and what one message cost Redis.
//!
//! Nodes are read with a `fred` client of their own, only on loopback,
//! once at the start and once at the end of the phase (a few milliseconds
//! each); the client connects before the first reading, so the commands of
//! its handshake fall outside the phase.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use fred::prelude::{Builder, Client, ClientLike, Config};
use fred::types::InfoKind;
use serde::{Deserialize, Serialize};

use crate::procstat::{Sample, sample};

/// Calls and time of one command on one node.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct Calls {
    pub(crate) calls: u64,
    pub(crate) usec: u64,
}

/// One reading of one node.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    role: String,
    pid: u32,
    cpu: Sample,
    commands: BTreeMap<String, Calls>,
}

/// What one node did over the phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct NodeUsage {
    /// `host:port`.
    pub(crate) addr: String,
    /// `master` or `slave` (INFO replication), at the end of the phase.
    pub(crate) role: String,
    pub(crate) pid: u32,
    /// Length of the phase, seconds.
    pub(crate) secs: f64,
    /// CPU seconds in the phase (user + system).
    pub(crate) cpu_s: f64,
    /// Of which in the kernel.
    pub(crate) sys_s: f64,
    /// Calls per command in the phase (the tool's own `INFO` left out).
    /// Commands run by a script (`redis.call`) are counted too, and their
    /// time is also inside the script's (`evalsha`).
    pub(crate) commands: BTreeMap<String, Calls>,
}

impl NodeUsage {
    /// `primary` or `replica`.
    pub(crate) fn role_name(&self) -> &'static str {
        if self.role == "master" {
            "primary"
        } else {
            "replica"
        }
    }

    /// The six commands called most, most first, with their calls:
    /// `evalsha 120, get 40, …`.
    pub(crate) fn top_commands(&self) -> String {
        let mut top: Vec<(&String, &Calls)> = self.commands.iter().collect();
        top.sort_by_key(|b| std::cmp::Reverse(b.1.calls));
        let cmds: Vec<String> = top
            .iter()
            .take(6)
            .map(|(k, c)| format!("{k} {}", c.calls))
            .collect();
        cmds.join(", ")
    }
}

/// Checks `addr` is a loopback `host:port` the tool may query.
pub(crate) fn check_addr(addr: &str) -> anyhow::Result<()> {
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("--redis-node {addr}: expected host:port"))?;
    port.parse::<u16>()
        .with_context(|| format!("--redis-node {addr}: bad port"))?;
    if host != "127.0.0.1" && host != "localhost" && !host.starts_with("127.") {
        bail!("--redis-node {addr}: loopback addresses only");
    }
    Ok(())
}

/// A client of the node at `addr`, connected; no command waits more than 2 s.
async fn connect(addr: &str) -> anyhow::Result<Client> {
    let mut builder = Builder::from_config(Config::from_url(&format!("redis://{addr}"))?);
    builder.with_connection_config(|c| c.connection_timeout = Duration::from_secs(2));
    builder.with_performance_config(|p| p.default_command_timeout = Duration::from_secs(2));
    let client = builder.build()?;
    client
        .init()
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    Ok(client)
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

async fn read(client: &Client) -> anyhow::Result<Snapshot> {
    let server: String = client.info(Some(InfoKind::Server)).await?;
    let repl: String = client.info(Some(InfoKind::Replication)).await?;
    let stats: String = client.info(Some(InfoKind::CommandStats)).await?;
    let cpu: String = client.info(Some(InfoKind::Cpu)).await?;
    let secs = |name: &str| field(&cpu, name).and_then(|v| v.parse::<f64>().ok());
    let pid: u32 = field(&server, "process_id")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut commands = BTreeMap::new();
    for line in stats.lines() {
        // cmdstat_evalsha:calls=12,usec=345,usec_per_call=28.75,rejected_calls=0,failed_calls=0
        let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let get = |k: &str| {
            rest.split(',')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        commands.insert(
            name.to_owned(),
            Calls {
                calls: get("calls"),
                usec: get("usec"),
            },
        );
    }
    Ok(Snapshot {
        role: field(&repl, "role").unwrap_or("?").to_owned(),
        pid,
        cpu: match (secs("used_cpu_user"), secs("used_cpu_sys")) {
            (Some(user), Some(sys)) => Sample {
                cpu_s: user + sys,
                sys_s: sys,
                rss_kb: 0,
            },
            _ if pid > 0 => sample(Some(pid)),
            _ => Sample::default(),
        },
        commands,
    })
}

/// Readings of a set of nodes at the start of a phase, with their clients.
pub(crate) struct RedisMeter {
    nodes: Vec<(String, Option<(Client, Snapshot)>)>,
}

impl RedisMeter {
    /// Reads every node in `addrs` (a node that does not answer is left out).
    pub(crate) async fn start(addrs: &[String]) -> Self {
        let mut nodes = Vec::with_capacity(addrs.len());
        for addr in addrs {
            let reading = match connect(addr).await {
                Ok(client) => match read(&client).await {
                    Ok(before) => Some((client, before)),
                    Err(_) => {
                        let _ = client.quit().await;
                        None
                    }
                },
                Err(_) => None,
            };
            nodes.push((addr.clone(), reading));
        }
        Self { nodes }
    }

    /// Reads them again: what each did since [`Self::start`], `secs` ago.
    pub(crate) async fn stop(self, secs: f64) -> Vec<NodeUsage> {
        let mut out = Vec::new();
        for (addr, reading) in self.nodes {
            let Some((client, before)) = reading else {
                continue;
            };
            let after = read(&client).await;
            let _ = client.quit().await;
            let Ok(after) = after else {
                continue;
            };
            let mut commands = BTreeMap::new();
            for (name, a) in &after.commands {
                // The tool's own readings, and the replicas' internal traffic.
                if name == "info" {
                    continue;
                }
                let b = before.commands.get(name).copied().unwrap_or_default();
                let d = Calls {
                    calls: a.calls.saturating_sub(b.calls),
                    usec: a.usec.saturating_sub(b.usec),
                };
                if d.calls > 0 {
                    commands.insert(name.clone(), d);
                }
            }
            let same = before.pid == after.pid && after.pid > 0;
            out.push(NodeUsage {
                addr,
                role: after.role,
                pid: after.pid,
                secs,
                cpu_s: if same {
                    after.cpu.cpu_s - before.cpu.cpu_s
                } else {
                    0.0
                },
                sys_s: if same {
                    after.cpu.sys_s - before.cpu.sys_s
                } else {
                    0.0
                },
                commands,
            });
        }
        out
    }
}

/// Calls of `cmd` summed over `nodes`.
pub(crate) fn total(nodes: &[NodeUsage], cmd: &str) -> Calls {
    nodes
        .iter()
        .filter_map(|n| n.commands.get(cmd))
        .fold(Calls::default(), |acc, c| Calls {
            calls: acc.calls + c.calls,
            usec: acc.usec + c.usec,
        })
}

/// Primaries only (`role:master`).
pub(crate) fn primaries(nodes: &[NodeUsage]) -> Vec<NodeUsage> {
    nodes
        .iter()
        .filter(|n| n.role == "master")
        .cloned()
        .collect()
}

/// CPU seconds of `nodes` over their phase, less what the same nodes spent
/// at rest (`idle`, scaled to the phase's length).
pub(crate) fn cpu_above_idle(nodes: &[NodeUsage], idle: &[NodeUsage]) -> f64 {
    nodes
        .iter()
        .map(|n| {
            let rest = idle
                .iter()
                .find(|i| i.addr == n.addr && i.secs > 0.0)
                .map_or(0.0, |i| i.cpu_s / i.secs * n.secs);
            n.cpu_s - rest
        })
        .sum()
}

/// Calls of every command of `nodes`, less what `idle` made at rest
/// (scaled to the phase's length), per command.
pub(crate) fn calls_above_idle(nodes: &[NodeUsage], idle: &[NodeUsage]) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for n in nodes {
        let rest = idle.iter().find(|i| i.addr == n.addr && i.secs > 0.0);
        for (cmd, c) in &n.commands {
            let at_rest = rest
                .and_then(|i| {
                    i.commands
                        .get(cmd)
                        .map(|r| r.calls as f64 / i.secs * n.secs)
                })
                .unwrap_or(0.0);
            *out.entry(cmd.clone()).or_default() += (c.calls as f64 - at_rest).max(0.0);
        }
    }
    out
}

/// Calls and µs of `cmd` on `nodes`, less what `idle` made at rest (scaled
/// to the phase's length); either may come out below zero by chance.
pub(crate) fn above_idle(nodes: &[NodeUsage], idle: &[NodeUsage], cmd: &str) -> (f64, f64) {
    let (mut calls, mut usec) = (0.0, 0.0);
    for n in nodes {
        let c = n.commands.get(cmd).copied().unwrap_or_default();
        let (rest_calls, rest_usec) = idle
            .iter()
            .find(|i| i.addr == n.addr && i.secs > 0.0)
            .and_then(|i| {
                let r = i.commands.get(cmd)?;
                let scale = n.secs / i.secs;
                Some((r.calls as f64 * scale, r.usec as f64 * scale))
            })
            .unwrap_or_default();
        calls += c.calls as f64 - rest_calls;
        usec += c.usec as f64 - rest_usec;
    }
    (calls, usec)
}

/// One line per node for the report's table, and the cost per send.
pub(crate) fn rows(nodes: &[NodeUsage], idle: &[NodeUsage], sends: u64) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let prim = primaries(nodes);
    if sends > 0 {
        let per = |v: f64| v / sends as f64;
        let calls = calls_above_idle(&prim, idle);
        let all: f64 = calls.values().sum();
        let named: Vec<String> = ["evalsha", "xadd", "incr", "spublish", "wait"]
            .iter()
            .filter_map(|c| {
                let v = calls.get(*c).copied().unwrap_or(0.0);
                (v > 0.0).then(|| format!("{c} {:.2}", per(v)))
            })
            .collect();
        rows.push((
            "redis per send".into(),
            format!(
                "primaries: {:.1} µs CPU{}, {:.2} commands ({})",
                per(cpu_above_idle(&prim, idle) * 1e6),
                if idle.is_empty() { "" } else { " above idle" },
                per(all),
                named.join(", ")
            ),
        ));
    }
    for n in idle {
        rows.push((
            format!("redis idle {}", n.addr),
            format!(
                "{:.3} cores; {:.0} commands/s",
                cores(n.cpu_s, n.secs),
                n.commands.values().map(|c| c.calls).sum::<u64>() as f64 / n.secs.max(1e-9)
            ),
        ));
    }
    for n in nodes {
        rows.push((
            format!("redis {}", n.addr),
            format!(
                "{} pid {}: {:.3} cores ({:.3} kernel); {}",
                n.role_name(),
                n.pid,
                cores(n.cpu_s, n.secs),
                cores(n.sys_s, n.secs),
                n.top_commands()
            ),
        ));
    }
    rows
}

fn cores(cpu_s: f64, secs: f64) -> f64 {
    if secs > 0.0 { cpu_s / secs } else { 0.0 }
}
