//! CPU time and resident memory of processes, read from `/proc`, so a
//! report can say what a delivered message cost the server and whether the
//! load tool itself was the limit.

use serde::{Deserialize, Serialize};

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Sample {
    /// User + system CPU seconds since the process started.
    pub(crate) cpu_s: f64,
    /// Of which in the kernel (system calls, and on loopback the receiving
    /// side's TCP work, which runs in the sender's system call).
    #[serde(default)]
    pub(crate) sys_s: f64,
    /// Resident set size, KiB.
    pub(crate) rss_kb: u64,
}

/// Reads `pid` (or `self`); a process that is gone reads as zeros.
pub(crate) fn sample(pid: Option<u32>) -> Sample {
    let dir = pid.map_or_else(|| "/proc/self".to_owned(), |p| format!("/proc/{p}"));
    let (user_s, sys_s) = std::fs::read_to_string(format!("{dir}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime / TICKS_PER_S, stime / TICKS_PER_S))
        })
        .unwrap_or((0.0, 0.0));
    let rss_kb = std::fs::read_to_string(format!("{dir}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    Sample {
        cpu_s: user_s + sys_s,
        sys_s,
        rss_kb,
    }
}

/// Before/after readings of one process over a measured phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Usage {
    /// The process id (0 for the load tool itself).
    pub(crate) pid: u32,
    /// At the start of the phase.
    pub(crate) before: Sample,
    /// At the end of the phase.
    pub(crate) after: Sample,
    /// CPU seconds spent in the phase.
    pub(crate) cpu_s: f64,
    /// Of which in the kernel.
    #[serde(default)]
    pub(crate) sys_s: f64,
    /// RSS growth in the phase, KiB (may be negative).
    pub(crate) rss_growth_kb: i64,
}

/// Samples a set of processes at the start of a phase.
pub(crate) struct Meter {
    pids: Vec<u32>,
    before: Vec<Sample>,
    aux: Vec<u32>,
    aux_before: Vec<Sample>,
    own: Sample,
}

/// What a [`Meter`] measured over its phase.
pub(crate) struct Measured {
    /// The servers under test.
    pub(crate) servers: Vec<Usage>,
    /// Other processes of the system under test (Redis).
    pub(crate) aux: Vec<Usage>,
    /// The load tool.
    pub(crate) tool: Usage,
}

impl Meter {
    /// Starts measuring the servers `pids`, the other processes `aux` and the tool itself.
    pub(crate) fn start(pids: &[u32], aux: &[u32]) -> Self {
        Self {
            pids: pids.to_vec(),
            before: pids.iter().map(|p| sample(Some(*p))).collect(),
            aux: aux.to_vec(),
            aux_before: aux.iter().map(|p| sample(Some(*p))).collect(),
            own: sample(None),
        }
    }

    /// Ends the phase: the usage of every server and of the tool.
    pub(crate) fn stop(&self) -> Measured {
        let usage = |pid: u32, before: Sample, after: Sample| Usage {
            pid,
            before,
            after,
            cpu_s: after.cpu_s - before.cpu_s,
            sys_s: after.sys_s - before.sys_s,
            rss_growth_kb: after.rss_kb as i64 - before.rss_kb as i64,
        };
        let read = |pids: &[u32], before: &[Sample]| -> Vec<Usage> {
            pids.iter()
                .zip(before)
                .map(|(p, b)| usage(*p, *b, sample(Some(*p))))
                .collect()
        };
        Measured {
            servers: read(&self.pids, &self.before),
            aux: read(&self.aux, &self.aux_before),
            tool: usage(0, self.own, sample(None)),
        }
    }
}
