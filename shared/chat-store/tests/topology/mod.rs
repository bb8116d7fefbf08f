//! Real Redis topologies for the store's tests, on free loopback ports in temporary
//! directories, with no persistence: a 6-node Redis Cluster (3 primaries, 3 replicas)
//! and a primary + replica watched by 3 sentinels. Each is a [`Topology`] whose `url` is
//! the `fred` form (`redis-cluster://…`, `redis-sentinel://…`) and whose `Drop` SIGKILLs
//! every process and removes the directories.
//!
//! Use it from a test file with `mod topology;`. Everything here blocks the calling
//! thread (plain `std` processes and sockets); from inside a tokio test that has traffic
//! running, call the fault methods through `tokio::task::spawn_blocking`.

// A test file uses the part it needs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// Which topology a [`Topology`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Cluster,
    Sentinel,
}

/// One process of a topology: a data node or a sentinel.
pub(crate) struct Node {
    pub(crate) port: u16,
    child: Option<Child>,
}

impl Node {
    /// Whether the process is still running.
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends `signal` (`STOP`, `CONT`) to the process.
    fn signal(&self, signal: &str) -> Result<()> {
        let child = self.child.as_ref().context("the process is gone")?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -{signal} {} failed", child.id());
        }
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running topology. Dropping it kills every process.
pub(crate) struct Topology {
    pub(crate) kind: Kind,
    /// The `REDIS_URL` to give `fred`.
    pub(crate) url: String,
    /// The data nodes (cluster: the first 3 start as primaries; sentinel: primary, replica).
    pub(crate) nodes: Vec<Node>,
    /// The sentinels (empty for a cluster).
    pub(crate) sentinels: Vec<Node>,
    /// The Sentinel service name (`chat`).
    pub(crate) service_name: String,
    dir: PathBuf,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for node in self.nodes.iter_mut().chain(self.sentinels.iter_mut()) {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a Redis Cluster of 3 primaries with one replica each and waits until every node
/// reports `cluster_state:ok`, all slots are covered and the replicas are in sync
/// (about 6 s).
pub(crate) fn start_cluster() -> Result<Topology> {
    let mut topology = Topology::new(Kind::Cluster)?;
    for i in 0..6 {
        let dir = topology.subdir(&format!("node-{i}"))?;
        let node = spawn_on_free_port(|port| {
            let bus_port = free_port()?;
            let mut args = data_node_args(port, &dir);
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &bus_port.to_string(),
                    // Failure detected in about a second, so a failover completes in a few.
                    "--cluster-node-timeout",
                    "1000",
                ]
                .map(String::from),
            );
            let mut command = Command::new("redis-server");
            command.args(args);
            Ok(command)
        })?;
        topology.nodes.push(node);
    }
    let ports: Vec<u16> = topology.nodes.iter().map(|n| n.port).collect();
    let mut create = Command::new("redis-cli");
    create.arg("--cluster").arg("create");
    create.args(ports.iter().map(|p| format!("127.0.0.1:{p}")));
    create.args(["--cluster-replicas", "1", "--cluster-yes"]);
    let out = create
        .output()
        .context("redis-cli must be installed (the test command installs it)")?;
    if !out.status.success() {
        bail!(
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    topology.url = format!(
        "redis-cluster://127.0.0.1:{}?{}",
        ports[0],
        ports[1..]
            .iter()
            .map(|p| format!("node=127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join("&")
    );
    poll("the cluster to be ok on every node", || {
        topology.cluster_converged()
    })?;
    Ok(topology)
}

/// Starts a primary, a replica (`--replicaof`) and 3 sentinels monitoring them as `chat`
/// (quorum 2, down after 1 s), and waits until every sentinel knows the replica and the
/// other sentinels (about 7 s).
pub(crate) fn start_sentinel() -> Result<Topology> {
    let mut topology = Topology::new(Kind::Sentinel)?;
    topology.service_name = "chat".into();
    for i in 0..2 {
        let dir = topology.subdir(&format!("data-{i}"))?;
        let primary = topology.nodes.first().map(|n| n.port);
        let node = spawn_on_free_port(|port| {
            let mut args = data_node_args(port, &dir);
            if let Some(primary) = primary {
                args.extend([
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    primary.to_string(),
                ]);
            }
            let mut command = Command::new("redis-server");
            command.args(args);
            Ok(command)
        })?;
        topology.nodes.push(node);
    }
    let (primary, replica) = (topology.nodes[0].port, topology.nodes[1].port);
    poll("the replica to sync", || {
        Ok(info_field(replica, "INFO replication", "master_link_status")?.as_deref() == Some("up"))
    })?;
    for i in 0..3 {
        let dir = topology.subdir(&format!("sentinel-{i}"))?;
        let name = topology.service_name.clone();
        let node = spawn_on_free_port(|port| {
            // Sentinels rewrite their configuration file, so each one gets its own.
            let conf = dir.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\n\
                     sentinel monitor {name} 127.0.0.1 {primary} 2\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 5000\n",
                    dir.display()
                ),
            )?;
            let mut command = Command::new("redis-sentinel");
            command.arg(conf);
            Ok(command)
        })?;
        topology.sentinels.push(node);
    }
    let ports: Vec<u16> = topology.sentinels.iter().map(|n| n.port).collect();
    topology.url = format!(
        "redis-sentinel://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}&sentinelServiceName={}",
        ports[0], ports[1], ports[2], topology.service_name
    );
    poll("the sentinels to know the replica and each other", || {
        topology.sentinels_ready(primary)
    })?;
    Ok(topology)
}

impl Topology {
    fn new(kind: Kind) -> Result<Self> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "chat-store-{kind:?}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Topology {
            kind,
            url: String::new(),
            nodes: Vec::new(),
            sentinels: Vec::new(),
            service_name: String::new(),
            dir,
        })
    }

    fn subdir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    fn live_ports(&mut self) -> Vec<u16> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.alive().then_some(n.port))
            .collect()
    }

    /// Sends an inline command to the data node on `port` (for a cluster, the node must
    /// serve the key; see [`Topology::owner_of`]).
    pub(crate) fn command_on(&self, port: u16, command: &str) -> Result<Reply> {
        command_on(port, command)
    }

    /// Cluster: the port of the primary serving `key`'s hash slot.
    pub(crate) fn owner_of(&mut self, key: &str) -> Result<u16> {
        let any = *self.live_ports().first().context("no live node")?;
        let slot = command_on(any, &format!("CLUSTER KEYSLOT {key}"))?.int()?;
        cluster_nodes(any)?
            .into_iter()
            .find(|n| {
                n.is_primary && !n.failed && n.slots.iter().any(|&(a, b)| (a..=b).contains(&slot))
            })
            .map(|n| n.port)
            .ok_or_else(|| anyhow!("no node serves slot {slot}"))
    }

    /// Cluster: SIGKILLs the primary serving `key` and waits until its replica is promoted
    /// and every live node is ok again (about 3 s). Returns the promoted replica's port.
    pub(crate) fn kill_primary_of(&mut self, key: &str) -> Result<u16> {
        let owner = self.owner_of(key)?;
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port == owner)
            .context("owner is not one of ours")?;
        node.kill();
        poll("a replica to take over", || self.cluster_converged())?;
        let promoted = self.owner_of(key)?;
        if promoted == owner {
            bail!("slot of {key} still served by the killed node");
        }
        Ok(promoted)
    }

    /// Sentinel: the current primary's port, as the first live sentinel reports it.
    pub(crate) fn primary_port(&mut self) -> Result<u16> {
        let sentinel = self
            .sentinels
            .iter_mut()
            .find_map(|s| s.alive().then_some(s.port))
            .context("no live sentinel")?;
        self.asked_primary(sentinel)
    }

    fn asked_primary(&self, sentinel: u16) -> Result<u16> {
        let reply = command_on(
            sentinel,
            &format!("SENTINEL GET-MASTER-ADDR-BY-NAME {}", self.service_name),
        )?;
        let addr = reply.array()?;
        Ok(addr.get(1).context("no primary address")?.text()?.parse()?)
    }

    /// Sentinel: SIGKILLs the primary and waits until every sentinel reports the promoted
    /// replica and it answers `ROLE` as master (about 2-3 s). Returns its port.
    pub(crate) fn failover(&mut self) -> Result<u16> {
        let old = self.primary_port()?;
        let replica = self
            .nodes
            .iter_mut()
            .find_map(|n| (n.port != old && n.alive()).then_some(n.port))
            .context("no live replica to promote")?;
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == old) {
            node.kill();
        }
        let sentinels: Vec<u16> = self.sentinels.iter().map(|s| s.port).collect();
        poll("the sentinels to promote the replica", || {
            for &s in &sentinels {
                if self.asked_primary(s)? != replica {
                    return Ok(false);
                }
            }
            let role = command_on(replica, "ROLE")?;
            Ok(role.array()?.first().map(|r| r.text()).transpose()? == Some("master"))
        })?;
        Ok(replica)
    }

    /// Sentinel: SIGSTOPs the replica (it stays connected and stops answering, as a replica
    /// stalled by its disk, its host or the network would). Returns its port.
    pub(crate) fn pause_replica(&mut self) -> Result<u16> {
        let primary = self.primary_port()?;
        let replica = self
            .nodes
            .iter_mut()
            .filter(|n| n.port != primary)
            .find_map(|n| n.alive().then_some(&*n))
            .context("no live replica")?;
        replica.signal("STOP")?;
        Ok(replica.port)
    }

    /// Sentinel: SIGCONTs the replica on `port`.
    pub(crate) fn resume(&mut self, port: u16) -> Result<()> {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .context("no such node")?
            .signal("CONT")
    }

    /// Every live node says `cluster_state:ok` with all slots, all of them agree on one slot
    /// map whose owners are live, and every live replica is in sync.
    fn cluster_converged(&mut self) -> Result<bool> {
        let live = self.live_ports();
        let mut agreed: Option<SlotMap> = None;
        for &port in &live {
            let info = command_on(port, "CLUSTER INFO")?.text()?.to_string();
            let field = |name: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
                    .map(String::from)
            };
            if field("cluster_state").as_deref() != Some("ok")
                || field("cluster_slots_ok").as_deref() != Some("16384")
                || field("cluster_known_nodes").as_deref() != Some("6")
            {
                return Ok(false);
            }
            let view = cluster_nodes(port)?;
            let mut owners: SlotMap = view
                .iter()
                .filter(|n| n.is_primary && !n.slots.is_empty())
                .map(|n| (n.port, n.slots.clone()))
                .collect();
            owners.sort();
            if view.iter().any(|n| {
                n.is_primary && !n.slots.is_empty() && (n.failed || !live.contains(&n.port))
            }) {
                return Ok(false);
            }
            if agreed.as_ref().is_some_and(|a| *a != owners) {
                return Ok(false);
            }
            agreed = Some(owners);
            let me = view
                .iter()
                .find(|n| n.myself)
                .context("no myself in CLUSTER NODES")?;
            if !me.is_primary
                && info_field(port, "INFO replication", "master_link_status")?.as_deref()
                    != Some("up")
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Every sentinel reports `primary` healthy, a replica in sync and the other sentinels.
    fn sentinels_ready(&self, primary: u16) -> Result<bool> {
        for s in &self.sentinels {
            let master = pairs(&command_on(
                s.port,
                &format!("SENTINEL MASTER {}", self.service_name),
            )?)?;
            let field = |name: &str| {
                master
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            if field("port") != Some(&primary.to_string())
                || field("flags") != Some("master")
                || field("num-other-sentinels") != Some("2")
            {
                return Ok(false);
            }
            let replicas = command_on(s.port, &format!("SENTINEL REPLICAS {}", self.service_name))?;
            let synced = replicas
                .array()?
                .iter()
                .filter_map(|r| pairs(r).ok())
                .any(|r| {
                    r.iter().any(|(k, v)| k == "flags" && v == "slave")
                        && r.iter()
                            .any(|(k, v)| k == "master-link-status" && v == "ok")
                });
            if !synced {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// A Redis reply (RESP2).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Reply>),
}

impl Reply {
    /// The text of a status or bulk reply.
    pub(crate) fn text(&self) -> Result<&str> {
        match self {
            Reply::Status(s) | Reply::Bulk(Some(s)) => Ok(s),
            other => bail!("expected text, got {other:?}"),
        }
    }

    pub(crate) fn int(&self) -> Result<i64> {
        match self {
            Reply::Int(i) => Ok(*i),
            other => bail!("expected an integer, got {other:?}"),
        }
    }

    pub(crate) fn array(&self) -> Result<&[Reply]> {
        match self {
            Reply::Array(items) => Ok(items),
            other => bail!("expected an array, got {other:?}"),
        }
    }
}

/// Sends one inline command to `127.0.0.1:port` and reads its reply; an error reply is an `Err`.
pub(crate) fn command_on(port: u16, command: &str) -> Result<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    match read_reply(&mut BufReader::new(stream))? {
        Reply::Error(e) => bail!("{command} on {port}: {e}"),
        reply => Ok(reply),
    }
}

fn read_reply(reader: &mut impl BufRead) -> Result<Reply> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.strip_suffix("\r\n").context("connection closed")?;
    let (kind, rest) = line.split_at(1);
    Ok(match kind {
        "+" => Reply::Status(rest.into()),
        "-" => Reply::Error(rest.into()),
        ":" => Reply::Int(rest.parse()?),
        "$" => {
            let len: i64 = rest.parse()?;
            if len < 0 {
                Reply::Bulk(None)
            } else {
                let mut buf = vec![0; len as usize + 2];
                reader.read_exact(&mut buf)?;
                buf.truncate(len as usize);
                Reply::Bulk(Some(String::from_utf8(buf)?))
            }
        }
        "*" => {
            let count: i64 = rest.parse()?;
            let mut items = Vec::new();
            for _ in 0..count.max(0) {
                items.push(read_reply(reader)?);
            }
            Reply::Array(items)
        }
        _ => bail!("unexpected reply {line:?}"),
    })
}

/// A flat `[field, value, …]` array reply as pairs.
fn pairs(reply: &Reply) -> Result<Vec<(String, String)>> {
    let items = reply.array()?;
    items
        .chunks(2)
        .map(|kv| {
            Ok((
                kv[0].text()?.to_string(),
                kv.get(1)
                    .map(|v| v.text().unwrap_or("").to_string())
                    .unwrap_or_default(),
            ))
        })
        .collect()
}

/// A `field:value` line of an `INFO`-style reply.
fn info_field(port: u16, command: &str, name: &str) -> Result<Option<String>> {
    let text = command_on(port, command)?.text()?.to_string();
    Ok(text.lines().find_map(|l| {
        l.strip_prefix(name)?
            .strip_prefix(':')
            .map(|v| v.trim().to_string())
    }))
}

/// Which primary (port) serves which slot ranges.
type SlotMap = Vec<(u16, Vec<(i64, i64)>)>;

/// One line of `CLUSTER NODES`.
struct ClusterNode {
    port: u16,
    is_primary: bool,
    myself: bool,
    failed: bool,
    slots: Vec<(i64, i64)>,
}

fn cluster_nodes(port: u16) -> Result<Vec<ClusterNode>> {
    let text = command_on(port, "CLUSTER NODES")?.text()?.to_string();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let addr = fields.get(1).context("CLUSTER NODES line")?;
            let port = addr
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .context("address")?;
            let flags: Vec<&str> = fields.get(2).context("flags")?.split(',').collect();
            let slots = fields
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('['))
                .map(|s| {
                    let (a, b) = s.split_once('-').unwrap_or((s, s));
                    Ok((a.parse()?, b.parse()?))
                })
                .collect::<Result<_>>()?;
            Ok(ClusterNode {
                port: port.parse()?,
                is_primary: flags.contains(&"master"),
                myself: flags.contains(&"myself"),
                failed: flags.iter().any(|f| *f == "fail" || *f == "fail?"),
                slots,
            })
        })
        .collect()
}

/// Polls `check` every 50 ms until it is true, or fails after 30 s with `what`.
fn poll(what: &str, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    let mut last_error = None;
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}: {last_error:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port nothing listens on, below the kernel's range of ephemeral ports
/// (32768–60999 on Linux), so the local port of an outgoing connection never
/// takes the port of a node a test stopped and starts again (as in
/// tests/support/net.mjs).
fn free_port() -> Result<u16> {
    const FROM: u32 = 10_000;
    const SPAN: u32 = 12_768;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..SPAN {
        let step = u32::try_from(NEXT.fetch_add(1, Ordering::Relaxed) % SPAN as usize).unwrap_or(0);
        let port = u16::try_from(FROM + (seed.wrapping_add(step.wrapping_mul(7919)) % SPAN))?;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port below the ephemeral range")
}

fn data_node_args(port: u16, dir: &std::path::Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--dir",
        &dir.display().to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
        "--loglevel",
        "warning",
    ]
    .map(String::from)
    .to_vec()
}

/// Spawns the command `make(port)` builds on a free port and waits until it answers PING;
/// another process may take the port first, then it exits and we try a new one.
fn spawn_on_free_port(mut make: impl FnMut(u16) -> Result<Command>) -> Result<Node> {
    for _ in 0..5 {
        let port = free_port()?;
        let child = make(port)?.stdout(Stdio::null()).spawn().context(
            "redis-server and redis-sentinel must be installed (the test command installs them)",
        )?;
        let mut node = Node {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + TIMEOUT;
        while node.alive() && Instant::now() < deadline {
            if matches!(command_on(port, "PING"), Ok(Reply::Status(s)) if s == "PONG") {
                return Ok(node);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        node.kill();
    }
    bail!("could not start a Redis process")
}
