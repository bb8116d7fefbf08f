//! `chat-load`: a load tool for the chat gateway (and for anything that
//! speaks the same contract, such as the Node peer in `tests/peer`).
//!
//! It speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself, mints room
//! tokens with a PKCS#8 key, spreads connections over several replicas and
//! loopback source addresses, and reports latency percentiles, losses and the
//! CPU and memory of the servers and of itself.
//!
//! # Layout
//! - `wire`: Engine.IO/Socket.IO framing and the handshake.
//! - `session`: one connected client: pings, sends, deliveries, acks.
//! - `scenario`: fanout, ramp, storm, idle, large-room, flood, hostile-read,
//!   reconnect-loop, typing, reconnect, many-rooms.
//! - `abuser`: one connection of the flood's abusive user.
//! - `hostile`: the hostile user of hostile-read and reconnect-loop.
//! - `procstat`: CPU time and RSS from `/proc`.
//! - `redisstat`: per Redis node: role, CPU and `INFO commandstats`.
//! - `report`: the JSON report, its table and its failures.
//! - `compare`: ours-vs-peer tables from two sets of reports.

mod abuser;
mod compare;
mod hostile;
mod procstat;
mod redisstat;
mod report;
mod scenario;
mod session;
mod wire;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chat-load",
    about = "Load tool for the chat gateway's Socket.IO contract"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one scenario against one or more replicas.
    Run(Box<RunArgs>),
    /// Prints side-by-side tables of `ours-*.json` and `base-*.json` / `peer-*.json` in a directory.
    Compare {
        /// Directory of reports written with `--json`.
        dir: String,
        /// Also write the tables (markdown) to this file.
        #[arg(long)]
        out: Option<String>,
    },
}

/// The flags of `chat-load run`.
#[derive(Args, Debug, Clone)]
pub(crate) struct RunArgs {
    /// fanout, ramp, storm, idle, large-room, flood, hostile-read,
    /// reconnect-loop, typing, reconnect or many-rooms.
    #[arg(long, default_value = "fanout")]
    pub(crate) scenario: String,
    /// A replica, e.g. http://127.0.0.1:8081 (repeat for several; loopback only).
    #[arg(long, required = true)]
    pub(crate) url: Vec<String>,
    /// PKCS#8 PEM private key that room tokens are signed with.
    #[arg(long)]
    pub(crate) key: String,
    /// A server process to measure (CPU, RSS); repeat for several.
    #[arg(long)]
    pub(crate) server_pid: Vec<u32>,
    /// Another process of the system under test to measure apart (e.g. Redis); repeatable.
    #[arg(long)]
    pub(crate) aux_pid: Vec<u32>,
    /// fanout, ramp (flood, hostile-read, reconnect-loop: each phase): a
    /// Redis node (loopback host:port) whose role, CPU and commands (`INFO
    /// commandstats`) to report for the measured phase; repeat for every node
    /// of a cluster.
    #[arg(long)]
    pub(crate) redis_node: Vec<String>,
    /// fanout, many-rooms with `--redis-node`: first read the nodes over this
    /// many seconds with everyone connected and nobody sending (the fixed
    /// load of heartbeats and sweeps, subtracted from the cost per send); 0:
    /// skip.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) redis_idle_s: f64,
    /// Write the report as JSON here.
    #[arg(long)]
    pub(crate) json: Option<String>,
    /// Name of the side under test in reports.
    #[arg(long, default_value = "ours")]
    pub(crate) label: String,
    /// Spread connections over 127.0.0.1 ..= 127.0.0.N.
    #[arg(long, default_value_t = 4)]
    pub(crate) source_ips: usize,
    /// Rooms (fanout, ramp; storm, idle and reconnect spread over them).
    #[arg(long, default_value_t = 2)]
    pub(crate) rooms: usize,
    /// Members per room (fanout, ramp) or of the one room (large-room).
    #[arg(long, default_value_t = 10)]
    pub(crate) members: usize,
    /// Messages per second per sending member (ramp: the first step;
    /// reconnect: per sender).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) rate: f64,
    /// Seconds of sending (fanout, ramp steps; flood, hostile-read,
    /// reconnect-loop: each of their two phases).
    #[arg(long, default_value_t = 5.0)]
    pub(crate) duration: f64,
    /// Seconds to keep receiving after the last send.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) drain: f64,
    /// Before the first send: milliseconds in which no client may receive
    /// anything (idle: the wait before sampling).
    #[arg(long, default_value_t = 1000)]
    pub(crate) settle_ms: u64,
    /// Start anyway after this many seconds of waiting for quiet.
    #[arg(long, default_value_t = 120.0)]
    pub(crate) max_settle_s: f64,
    /// large-room: seconds to hold every member, quiet, after the drain; the
    /// servers' RSS is sampled at the end (what a burst left behind).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) quiet_s: f64,
    /// Bytes of padding per message text.
    #[arg(long, default_value_t = 0)]
    pub(crate) size: usize,
    /// Connections (storm, idle, reconnect: over all the replicas).
    #[arg(long, default_value_t = 200)]
    pub(crate) connections: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 50)]
    pub(crate) concurrency: usize,
    /// Seconds to hold the connections (storm, idle; reconnect: to go on
    /// sending after `--reconnect-within-s`).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) hold: f64,
    /// Messages the one sender sends (large-room).
    #[arg(long, default_value_t = 10)]
    pub(crate) messages: u64,
    /// Ramp: multiply the rate by this each step.
    #[arg(long, default_value_t = 1.5)]
    pub(crate) ramp_factor: f64,
    /// Ramp: at most this many steps.
    #[arg(long, default_value_t = 5)]
    pub(crate) ramp_steps: usize,
    /// Ramp: stop when end-to-end p99 exceeds this.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) max_p99_ms: f64,
    /// Ramp: stop when this fraction of deliveries is lost.
    #[arg(long, default_value_t = 0.001)]
    pub(crate) max_loss: f64,
    /// flood, hostile-read, reconnect-loop: connections of the one hostile
    /// user at a time (the contract's per-user limit is 20).
    #[arg(long, default_value_t = 20)]
    pub(crate) abuser_connections: usize,
    /// Flood: events (`message sent` and `history`, alternately) each abusive
    /// connection sends at most.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) abuser_events: u64,
    /// flood, hostile-read, reconnect-loop: send the hostile user to these
    /// replicas instead of `--url` (a control run: the tool does the same
    /// work, the normal users' servers are spared).
    #[arg(long)]
    pub(crate) abuser_url: Vec<String>,
    /// flood, hostile-read, reconnect-loop: put the hostile user in the first
    /// normal room instead of a room of its own.
    #[arg(long)]
    pub(crate) abuser_shares_room: bool,
    /// hostile-read, reconnect-loop: messages the hostile user's room is
    /// filled with first (default: 1000 for hostile-read, none for
    /// reconnect-loop).
    #[arg(long)]
    pub(crate) room_messages: Option<usize>,
    /// hostile-read, reconnect-loop: characters ('😀', 4 bytes each) of each
    /// of those messages.
    #[arg(long, default_value_t = 2000)]
    pub(crate) room_message_chars: usize,
    /// hostile-read, reconnect-loop: seconds from the end of the filling to
    /// the first phase at the earliest (the fillers' exits, `EXIT_GRACE_S`
    /// after they leave, then cost Redis in neither phase).
    #[arg(long, default_value_t = 6.0)]
    pub(crate) fill_settle_s: f64,
    /// hostile-read: milliseconds a reading connection waits after a refused
    /// `read` (the default budget refills one per 100 ms).
    #[arg(long, default_value_t = 100)]
    pub(crate) read_retry_ms: u64,
    /// hostile-read: seconds of the hostile user's reads alone, before the
    /// normal users connect (after as long a reading of Redis at rest): what
    /// one read costs Redis; 0: skip, and take it from the phases instead.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) read_alone_s: f64,
    /// hostile-read: milliseconds a `read` may go unanswered before the next one.
    #[arg(long, default_value_t = 1000)]
    pub(crate) read_ack_timeout_ms: u64,
    /// typing: milliseconds between one member's `typing` emits.
    #[arg(long, default_value_t = 300)]
    pub(crate) typing_ms: u64,
    /// reconnect: the process of the first `--url`, which the tool SIGKILLs
    /// (give the survivors as `--server-pid`).
    #[arg(long)]
    pub(crate) kill_pid: Option<u32>,
    /// reconnect: seconds of sending before the kill.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) kill_after_s: f64,
    /// reconnect: a client of the killed replica that has no `welcome` again
    /// this many seconds after the kill gives up (it never got back).
    #[arg(long, default_value_t = 30.0)]
    pub(crate) reconnect_within_s: f64,
    /// reconnect: senders per room, all on the second `--url` (the survivor).
    #[arg(long, default_value_t = 1)]
    pub(crate) senders: usize,
    /// many-rooms: how many rooms exist in Redis (seeded by the harness), for
    /// the report.
    #[arg(long, default_value_t = 0)]
    pub(crate) rooms_existing: usize,
    /// Room names are PREFIX + number.
    #[arg(long, default_value = "r")]
    pub(crate) room_prefix: String,
    /// First room number used.
    #[arg(long, default_value_t = 0)]
    pub(crate) room_offset: usize,
    /// Seconds a handshake (reconnect: each attempt) may take before it counts as failed.
    #[arg(long, default_value_t = 10)]
    pub(crate) connect_timeout_s: u64,
    /// Token `iss`.
    #[arg(long, default_value = "chat-web")]
    pub(crate) issuer: String,
    /// Token `aud`.
    #[arg(long, default_value = "chat-gateway")]
    pub(crate) audience: String,
    /// Runtime worker threads (default: one per core).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Exit with status 1 when connections failed or dropped, or messages were lost,
    /// duplicated, refused or never acknowledged.
    #[arg(long)]
    pub(crate) fail_on_errors: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Compare { dir, out } => compare::run(&dir, out.as_deref()),
        Command::Run(args) => run(&args),
    }
}

fn run(args: &RunArgs) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    for n in &args.redis_node {
        redisstat::check_addr(n)?;
    }
    let rt = rt.build().context("starting the tokio runtime")?;
    let report = rt.block_on(scenario::run(args))?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("encoding the report")?;
        std::fs::write(path, text).with_context(|| format!("writing --json {path}"))?;
    }
    // Ramp steps past the bound are expected to fail; judge the headline step only.
    let failures = report.failures();
    if args.fail_on_errors && !failures.is_empty() {
        for f in &failures {
            eprintln!("FAIL {f}");
        }
        std::process::exit(1);
    }
    // Closing thousands of sockets is the runtime's job; do not wait for stragglers.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
}
