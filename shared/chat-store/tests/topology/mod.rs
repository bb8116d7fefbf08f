//! Real Redis for the store's tests, from the test suite's one harness
//! (tests/support/topology.mjs) through its command-line entry, `node
//! tests/support/topology_cli.mjs KIND`: a single redis-server, a 6-node Redis Cluster
//! (3 primaries, 3 replicas) or a primary + replica watched by 3 sentinels, on free loopback
//! ports. A [`Topology`]'s `url` is the `fred` form (`redis://…`, `redis-cluster://…`,
//! `redis-sentinel://…`); dropping it closes the script's stdin, upon which the script
//! SIGKILLs every Redis process, as it does when this test process dies.
//!
//! Use it from a test file with `mod topology;`. Everything here blocks the calling thread;
//! from inside a tokio test that has traffic running, call the fault methods through
//! `tokio::task::spawn_blocking`.

// A test file uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/support/topology_cli.mjs"
);

/// A running topology. Dropping it stops every process.
pub(crate) struct Topology {
    /// The `REDIS_URL` to give `fred`.
    pub(crate) url: String,
    script: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.script.wait();
    }
}

/// Starts one redis-server.
pub(crate) fn start_single() -> Result<Topology> {
    start("single")
}

/// Starts a Redis Cluster of 3 primaries with one replica each, every node ok and every replica
/// in sync (about 6 s).
pub(crate) fn start_cluster() -> Result<Topology> {
    start("cluster")
}

/// Starts a primary, a replica and 3 sentinels monitoring them as `chat` (quorum 2, down after
/// 1 s), every sentinel knowing the replica and the other sentinels (about 7 s).
pub(crate) fn start_sentinel() -> Result<Topology> {
    start("sentinel")
}

fn start(kind: &str) -> Result<Topology> {
    let mut script = Command::new("node")
        .arg(SCRIPT)
        .arg(kind)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("node must be installed (the test command installs it)")?;
    let stdin = script.stdin.take().context("the script's stdin")?;
    let stdout = BufReader::new(script.stdout.take().context("the script's stdout")?);
    let mut topology = Topology {
        url: String::new(),
        script,
        stdin: Some(stdin),
        stdout,
    };
    let ready = topology.read()?;
    if let Some(error) = ready.get("error") {
        bail!("starting a Redis {kind}: {error}");
    }
    topology.url = ready["url"].as_str().context("no url")?.to_owned();
    Ok(topology)
}

impl Topology {
    fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the topology script exited");
        }
        Ok(serde_json::from_str(&line)?)
    }

    /// Calls `method` of the harness's topology (see tests/support/topology.mjs) with `args`;
    /// resolves with its result, in which a node is its port.
    pub(crate) fn call(&mut self, method: &str, args: Value) -> Result<Value> {
        let stdin = self.stdin.as_mut().context("stopped")?;
        writeln!(stdin, "{}", json!({ "call": method, "args": args }))?;
        let mut reply = self.read()?;
        if let Some(error) = reply.get("error") {
            bail!("{method}: {error}");
        }
        Ok(reply["ok"].take())
    }

    /// Sends `command` (split at spaces) to the data node on `port`; its reply (an error reply
    /// is an `Err`).
    pub(crate) fn command_on(&mut self, port: u16, command: &str) -> Result<Value> {
        self.call("commandOn", json!([port, command]))
    }

    /// Cluster: the port of the primary serving `key`'s hash slot.
    pub(crate) fn owner_of(&mut self, key: &str) -> Result<u16> {
        port(&self.call("ownerOf", json!([key]))?)
    }

    /// Cluster: SIGKILLs the primary serving `key` and waits until its replica is promoted
    /// and every live node is ok again (about 3 s). Returns the promoted replica's port.
    pub(crate) fn kill_primary_of(&mut self, key: &str) -> Result<u16> {
        port(&self.call("killPrimaryOf", json!([key]))?["promoted"])
    }

    /// Sentinel: the current primary's port, as a live sentinel reports it.
    pub(crate) fn primary_port(&mut self) -> Result<u16> {
        port(&self.call("primaryPort", json!([]))?)
    }

    /// Sentinel: SIGKILLs the primary and waits until every sentinel reports the promoted
    /// replica and it answers `ROLE` as master (about 2-3 s). Returns its port.
    pub(crate) fn failover(&mut self) -> Result<u16> {
        port(&self.call("failover", json!([]))?["promoted"])
    }

    /// Sentinel: SIGSTOPs the replica (it stays connected and stops answering, as a replica
    /// stalled by its disk, its host or the network would). Returns its port.
    pub(crate) fn pause_replica(&mut self) -> Result<u16> {
        port(&self.call("pauseReplica", json!([]))?)
    }

    /// Sentinel: SIGCONTs the paused replica and waits until it has caught up.
    pub(crate) fn resume_replica(&mut self) -> Result<()> {
        self.call("resumeReplica", json!([]))?;
        Ok(())
    }
}

fn port(value: &Value) -> Result<u16> {
    value
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .with_context(|| format!("not a port: {value}"))
}
