//! The scenarios: a population of clients is connected (`connect`), then
//! each client runs a [`session`](crate::session) with or without a send
//! plan, and the outcomes are merged into one [`Report`].
//!
//! - `fanout`: rooms × members, every member sends at `rate` for `duration`.
//! - `ramp`: `fanout` again and again with a rising rate until p99 or loss
//!   breaks its bound.
//! - `storm`: `connections` handshakes, `concurrency` at a time.
//! - `idle`: hold `connections`; server RSS growth per connection.
//! - `large-room`: one room of `members`, one sender, fan-out latency to all.
//! - `flood`: `fanout` at a moderate rate, without and then with one abusive
//!   user pipelining `message sent` and `history` ([`flood`]).
//! - `hostile-read`: `fanout` at a moderate rate, without and then with one
//!   user sending `read` with the oldest id of a room full of 8 KB messages
//!   ([`hostile_read`]).
//! - `reconnect-loop`: `fanout` at a moderate rate, without and then with one
//!   user looping handshakes on 20 connections ([`reconnect_loop`]).
//! - `typing`: `fanout`, then `fanout` again with every member also emitting
//!   `typing` every `typing-ms` (keystrokes), reported side by side.
//! - `reconnect`: a reconnect storm; one replica is killed and its clients
//!   reconnect to another with `since` ([`reconnect`]).
//! - `many-rooms`: direct conversations, pairs in rooms of their own among
//!   many idle rooms: memory, CPU and Redis at rest and under load
//!   ([`many_rooms`]).

mod fill;
mod flood;
mod hostile_read;
mod many_rooms;
mod phases;
mod reconnect;
mod reconnect_loop;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chat_core::RoomClaims;
use chat_core::token::TokenSigner;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::RunArgs;
use crate::procstat::Meter;
use crate::redisstat::RedisMeter;
use crate::report::{Latency, Report, TypingReport, histogram};
use crate::session::{self, Outcome, SendPlan, Start};
use crate::wire::{self, Target};

/// A connected client, already reading, waiting for the scenario to start it.
struct Client {
    id: u32,
    start: oneshot::Sender<Start>,
    session: JoinHandle<Outcome>,
}

/// One client's handshake, prepared before the handshakes start.
struct Job {
    i: usize,
    room: usize,
    target: Target,
    src: IpAddr,
    /// The client's room token.
    token: String,
    /// The Socket.IO CONNECT frame with the client's token.
    connect: String,
}

/// The clients that reached `welcome`, and how the handshakes went.
struct Population {
    clients: Vec<Client>,
    /// Frames the clients received before the scenario started them
    /// (`user entered` of later joiners, mostly).
    heard: Arc<AtomicU64>,
    report: Report,
}

/// Runs the scenario `args.scenario`.
pub(crate) async fn run(args: &RunArgs) -> anyhow::Result<Report> {
    let targets = args
        .url
        .iter()
        .map(|u| Target::parse(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if targets.is_empty() {
        bail!("give at least one --url");
    }
    let pem = std::fs::read_to_string(&args.key)
        .with_context(|| format!("reading --key {}", args.key))?;
    let signer = TokenSigner::from_pkcs8_pem(&pem)
        .with_context(|| format!("--key {} is not a PKCS#8 Ed25519 PEM", args.key))?;
    let ctx = Ctx {
        args,
        targets,
        signer,
    };
    let mut report = match args.scenario.as_str() {
        "fanout" => ctx.fanout(args.rate).await?,
        "ramp" => ctx.ramp().await?,
        "storm" => ctx.storm().await?,
        "idle" => ctx.idle().await?,
        "large-room" => ctx.large_room().await?,
        "flood" => ctx.flood().await?,
        "hostile-read" => ctx.hostile_read().await?,
        "reconnect-loop" => ctx.reconnect_loop().await?,
        "typing" => ctx.typing().await?,
        "reconnect" => ctx.reconnect().await?,
        "many-rooms" => ctx.many_rooms().await?,
        other => {
            bail!(
                "unknown --scenario {other}: fanout, ramp, storm, idle, large-room, flood, hostile-read, reconnect-loop, typing, reconnect or many-rooms"
            )
        }
    };
    report.scenario = args.scenario.clone();
    report.label = args.label.clone();
    Ok(report)
}

struct Ctx<'a> {
    args: &'a RunArgs,
    targets: Vec<Target>,
    signer: TokenSigner,
}

impl Ctx<'_> {
    fn params(&self, pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
        let mut m: BTreeMap<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        m.insert("urls".into(), self.targets.len().into());
        m.insert("source_ips".into(), self.args.source_ips.into());
        m
    }

    /// Mints every client's token and writes its CONNECT frame, before any
    /// handshake starts (so the handshake phase measures handshakes only).
    /// Client `i` goes to scenario room `room_of(i)`, replica `i % urls`,
    /// source 127.0.0.(1 + i % source_ips), as a user of its own.
    fn prepare(&self, n: usize, room_of: impl Fn(usize) -> usize) -> anyhow::Result<Vec<Job>> {
        self.prepare_for(n, room_of, |i| i)
    }

    /// `--connections` clients ([`Self::prepare`]), the clients of each
    /// replica spread over the `--rooms` rooms in turn.
    fn prepare_connections(&self) -> anyhow::Result<Vec<Job>> {
        let rooms = self.args.rooms.max(1);
        let urls = self.targets.len();
        self.prepare(self.args.connections, |i| (i / urls) % rooms)
    }

    /// [`Self::prepare`], with client `i` signed in as user `user_of(i)`
    /// (`sub` = `load-<run>-<user>`), so that several clients can be one user.
    fn prepare_for<U: std::fmt::Display>(
        &self,
        n: usize,
        room_of: impl Fn(usize) -> usize,
        user_of: impl Fn(usize) -> U,
    ) -> anyhow::Result<Vec<Job>> {
        let run_tag = format!("{}-{}", std::process::id(), wire::now_us());
        self.prepare_as(n, room_of, |i| {
            let user = user_of(i);
            (format!("load-{run_tag}-{user}"), format!("u{user}"))
        })
    }

    /// [`Self::prepare`], with client `i` signed in as the user (`sub`,
    /// display name) `user_of(i)` says, exactly.
    fn prepare_as(
        &self,
        n: usize,
        room_of: impl Fn(usize) -> usize,
        user_of: impl Fn(usize) -> (String, String),
    ) -> anyhow::Result<Vec<Job>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("clock before 1970")?
            .as_secs();
        let run_tag = format!("{}-{}", std::process::id(), wire::now_us());
        let mut jobs = Vec::with_capacity(n);
        for i in 0..n {
            let room = room_of(i);
            let (sub, name) = user_of(i);
            let claims = RoomClaims {
                iss: self.args.issuer.clone(),
                aud: self.args.audience.clone(),
                sub,
                name,
                room: format!("{}{}", self.args.room_prefix, self.args.room_offset + room),
                iat: now,
                exp: now + 300,
                jti: format!("{run_tag}-{i}"),
                sid: None,
                admin: false,
            };
            let token = self.signer.mint(&claims).context("minting a room token")?;
            let src = IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                1 + (i % self.args.source_ips.clamp(1, 250)) as u8,
            ));
            jobs.push(Job {
                i,
                room,
                target: self.targets[i % self.targets.len()].clone(),
                src,
                connect: wire::connect_frame(&token),
                token,
            });
        }
        Ok(jobs)
    }

    /// Runs the handshakes of `jobs`, `concurrency` at a time.
    async fn connect(&self, jobs: Vec<Job>) -> anyhow::Result<Population> {
        let n = jobs.len();
        let permits = Arc::new(Semaphore::new(self.args.concurrency.max(1)));
        let timeout = Duration::from_secs(self.args.connect_timeout_s);
        let start = Instant::now();
        let mut set = JoinSet::new();
        for job in jobs {
            let permits = permits.clone();
            set.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let t0 = wire::now_us();
                let r = wire::open(&job.target, job.src, job.connect, timeout).await;
                (job.i, job.room, r, wire::now_us() - t0)
            });
        }
        let mut report = Report {
            connections_attempted: n as u64,
            ..Report::default()
        };
        let mut welcome = histogram();
        let mut clients = Vec::with_capacity(n);
        let heard = Arc::new(AtomicU64::new(0));
        while let Some(joined) = set.join_next().await {
            let (i, room, r, us) = joined.context("a connect task panicked")?;
            match r {
                Ok((ws, frame)) => {
                    welcome.saturating_record(us.max(1));
                    let (start, told) = oneshot::channel();
                    let id = i as u32;
                    let since = wire::newest_in_welcome(frame.as_str());
                    let session =
                        tokio::spawn(session::run(ws, id, room, since, told, heard.clone()));
                    clients.push(Client { id, start, session });
                }
                Err(e) => *report.connect_errors.entry(e.0).or_default() += 1,
            }
        }
        let secs = start.elapsed().as_secs_f64();
        report.connections_ok = clients.len() as u64;
        report.connections_failed = report.connections_attempted - report.connections_ok;
        report.handshake_s = secs;
        report.handshakes_per_s = clients.len() as f64 / secs.max(1e-9);
        report.welcome = Latency::of(&welcome);
        clients.sort_by_key(|c| c.id);
        Ok(Population {
            clients,
            heard,
            report,
        })
    }

    /// Waits until no client has received anything for `--settle-ms` (the
    /// `user entered` of the last joiners has reached everyone), at most
    /// `--max-settle-s`.
    async fn settle(&self, pop: &Population) {
        let quiet = Duration::from_millis(self.args.settle_ms);
        let give_up = Instant::now() + Duration::from_secs_f64(self.args.max_settle_s);
        let mut last = pop.heard.load(Ordering::Relaxed);
        let mut since = Instant::now();
        while since.elapsed() < quiet && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(50).min(quiet)).await;
            let now = pop.heard.load(Ordering::Relaxed);
            if now != last {
                last = now;
                since = Instant::now();
            }
        }
    }

    /// Starts every client's session; `plan_of(client)` says who sends.
    async fn sessions(
        clients: Vec<Client>,
        stop_at: Instant,
        plan_of: impl Fn(&Client) -> Option<SendPlan>,
    ) -> anyhow::Result<Vec<Outcome>> {
        let mut sessions = Vec::with_capacity(clients.len());
        for c in clients {
            let plan = plan_of(&c);
            // A session that already ended (dropped) has its outcome anyway.
            let _ = c.start.send(Start { plan, stop_at });
            sessions.push(c.session);
        }
        let mut outs = Vec::with_capacity(sessions.len());
        for s in sessions {
            outs.push(s.await.context("a session task panicked")?);
        }
        Ok(outs)
    }

    /// [`Self::sessions`] in which every client sends on `plan`, the first
    /// sends spread over one period by client id.
    async fn steady_sessions(
        clients: Vec<Client>,
        stop_at: Instant,
        plan: SendPlan,
    ) -> anyhow::Result<Vec<Outcome>> {
        let senders = clients.len();
        Self::sessions(clients, stop_at, |c| {
            Some(plan.spread(c.id as usize, senders))
        })
        .await
    }

    /// Connects rooms × members and lets every member send at `rate` /s.
    async fn fanout(&self, rate: f64) -> anyhow::Result<Report> {
        self.fanout_with(rate, None).await
    }

    /// `fanout` without typing, then (new connections, same rooms) the same
    /// fan-out with every member also emitting `typing` every `--typing-ms`.
    /// The report is the second run's, with the first one in `typing.plain`.
    async fn typing(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let mut plain = self.fanout_with(a.rate, None).await?;
        plain.scenario = "fanout".into();
        plain.label = a.label.clone();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let every = Duration::from_millis(a.typing_ms.max(1));
        let mut r = self.fanout_with(a.rate, Some(every)).await?;
        if let Some(t) = r.typing.as_mut() {
            t.plain = Some(Box::new(plain));
        }
        Ok(r)
    }

    /// [`Self::fanout`]; with `typing`, every member also emits `typing` that often.
    async fn fanout_with(&self, rate: f64, typing: Option<Duration>) -> anyhow::Result<Report> {
        let a = self.args;
        let members = a.members.max(1);
        let n = a.rooms * members;
        let jobs = self.prepare(n, |i| i / members)?;
        let mut pop = self.connect(jobs).await?;
        self.settle(&pop).await;
        // What Redis does with every client connected and nobody sending
        // (heartbeats, sweeps): the fixed load the sends come on top of.
        let idle = if a.redis_node.is_empty() || a.redis_idle_s <= 0.0 {
            Vec::new()
        } else {
            let m = RedisMeter::start(&a.redis_node).await;
            tokio::time::sleep(Duration::from_secs_f64(a.redis_idle_s)).await;
            m.stop(a.redis_idle_s).await
        };
        let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let duration = Duration::from_secs_f64(a.duration);
        let t0 = Instant::now() + Duration::from_millis(50);
        let until = t0 + duration;
        let stop_at = until + Duration::from_secs_f64(a.drain);
        let meter = Meter::start(&a.server_pid, &a.aux_pid);
        let redis = RedisMeter::start(&a.redis_node).await;
        let plan = SendPlan {
            typing,
            ..SendPlan::steady(t0, period, until, a.size)
        };
        let outs = Self::steady_sessions(std::mem::take(&mut pop.clients), stop_at, plan).await?;
        let measured = meter.stop();
        let typing_sent: u64 = outs.iter().map(|o| o.typing_sent).sum();
        let typing_received: u64 = outs.iter().map(|o| o.typing_received).sum();
        let nodes = redis.stop(a.duration + a.drain).await;
        let mut r = pop.report;
        r.redis = nodes;
        r.redis_idle = idle;
        r.params = self.params(&[
            ("rooms", a.rooms.into()),
            ("members", members.into()),
            ("rate", rate.into()),
            ("duration_s", a.duration.into()),
            ("size", a.size.into()),
        ]);
        merge(&mut r, outs, a.duration);
        r.set_usage(measured, a.duration + a.drain);
        if let Some(every) = typing {
            r.params
                .insert("typing_ms".into(), (every.as_millis() as u64).into());
            r.typing = Some(TypingReport::of(&r, typing_sent, typing_received));
        }
        Ok(r)
    }

    /// Raises the per-member rate by `ramp_factor` until p99 or loss breaks its bound.
    async fn ramp(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let mut rate = a.rate;
        let mut steps: Vec<Report> = Vec::new();
        for _ in 0..a.ramp_steps.max(1) {
            let step = self.fanout(rate).await?;
            let loss = step.lost as f64 / step.expected.max(1) as f64;
            let broke = step.e2e.p99_us as f64 > a.max_p99_ms * 1000.0
                || loss > a.max_loss
                || step.connections_failed > 0;
            eprintln!(
                "ramp: rate {rate:.2}/member/s -> {:.0} deliveries/s, p99 {}, loss {:.5}{}",
                step.deliveries_per_s,
                crate::report::ms(step.e2e.p99_us),
                loss,
                if broke { " (bound broken)" } else { "" }
            );
            steps.push(step);
            if broke {
                break;
            }
            rate *= a.ramp_factor;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // The headline is the fastest step that kept its bounds (or the first one).
        let good = steps
            .iter()
            .rposition(|s| {
                s.e2e.p99_us as f64 <= a.max_p99_ms * 1000.0
                    && (s.lost as f64 / s.expected.max(1) as f64) <= a.max_loss
            })
            .unwrap_or(0);
        let mut r = steps.get(good).cloned().unwrap_or_default();
        r.params.insert("max_p99_ms".into(), a.max_p99_ms.into());
        r.params.insert("max_loss".into(), a.max_loss.into());
        r.steps = steps;
        Ok(r)
    }

    /// `connections` handshakes, `concurrency` at a time.
    async fn storm(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let rooms = a.rooms.max(1);
        let jobs = self.prepare_connections()?;
        let meter = Meter::start(&a.server_pid, &a.aux_pid);
        let mut pop = self.connect(jobs).await?;
        let measured = meter.stop();
        let secs = pop.report.handshake_s;
        let stop_at = Instant::now() + Duration::from_secs_f64(a.hold);
        let outs = Self::sessions(std::mem::take(&mut pop.clients), stop_at, |_| None).await?;
        let mut r = pop.report;
        r.params = self.params(&[
            ("connections", a.connections.into()),
            ("concurrency", a.concurrency.into()),
            ("rooms", rooms.into()),
        ]);
        merge(&mut r, outs, 0.0);
        r.set_usage(measured, secs);
        Ok(r)
    }

    /// Holds `connections` open and reports server RSS growth per connection.
    // Starts as `storm` does; what it measures, and when, is its own.
    async fn idle(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let rooms = a.rooms.max(1);
        let jobs = self.prepare_connections()?;
        let meter = Meter::start(&a.server_pid, &a.aux_pid);
        let started = Instant::now();
        let mut pop = self.connect(jobs).await?;
        let ok = pop.report.connections_ok;
        let stop_at =
            Instant::now() + Duration::from_secs_f64(a.settle_ms as f64 / 1000.0 + a.hold);
        // Sample while every connection is still open, just before the sessions end.
        let sample_at = stop_at - Duration::from_millis(200);
        let sampler = tokio::spawn(async move {
            tokio::time::sleep_until(sample_at).await;
            (meter.stop(), started.elapsed().as_secs_f64())
        });
        let outs = Self::sessions(std::mem::take(&mut pop.clients), stop_at, |_| None).await?;
        let (measured, secs) = sampler.await.context("the sampler panicked")?;
        let mut r = pop.report;
        r.params = self.params(&[
            ("connections", a.connections.into()),
            ("rooms", rooms.into()),
            ("hold_s", a.hold.into()),
        ]);
        merge(&mut r, outs, 0.0);
        r.set_usage(measured, secs);
        let growth_kb: i64 = r.servers.iter().map(|u| u.rss_growth_kb).sum();
        r.server_rss_bytes_per_connection = growth_kb as f64 * 1024.0 / ok.max(1) as f64;
        Ok(r)
    }

    /// One room of `members`; client 0 sends `messages` at `rate` /s.
    async fn large_room(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let rss_of_servers = |pids: &[u32]| -> u64 {
            pids.iter()
                .map(|p| crate::procstat::sample(Some(*p)).rss_kb)
                .sum()
        };
        let empty = rss_of_servers(&a.server_pid);
        let jobs = self.prepare(a.members, |_| 0)?;
        let mut pop = self.connect(jobs).await?;
        self.settle(&pop).await;
        let period = Duration::from_secs_f64(1.0 / a.rate.max(0.001));
        let t0 = Instant::now() + Duration::from_millis(50);
        let send_s = period.as_secs_f64() * a.messages as f64;
        let until = t0 + Duration::from_secs_f64(send_s + 0.5);
        let drained = until + Duration::from_secs_f64(a.drain);
        // With --quiet-s every member stays connected, quiet, that much longer.
        let stop_at = drained + Duration::from_secs_f64(a.quiet_s);
        let meter = Meter::start(&a.server_pid, &a.aux_pid);
        let pids = a.server_pid.clone();
        let quiet = a.quiet_s > 0.0;
        // CPU and RSS "after" are measured at the end of the drain, as without a
        // quiet period; the quiet RSS just before the sessions end.
        let sampler = tokio::spawn(async move {
            tokio::time::sleep_until(drained).await;
            let measured = meter.stop();
            let quiet_rss = if quiet {
                tokio::time::sleep_until(stop_at - Duration::from_millis(200)).await;
                pids.iter()
                    .map(|p| crate::procstat::sample(Some(*p)).rss_kb)
                    .sum()
            } else {
                0
            };
            (measured, quiet_rss)
        });
        let messages = a.messages;
        let pad = a.size;
        let outs = Self::sessions(std::mem::take(&mut pop.clients), stop_at, |c| {
            (c.id == 0).then_some(SendPlan {
                start: t0,
                period,
                until,
                max: messages,
                pad,
                typing: None,
            })
        })
        .await?;
        let (measured, quiet_rss) = sampler.await.context("the sampler panicked")?;
        let mut r = pop.report;
        if quiet {
            r.server_rss_kb_empty = empty;
            r.server_rss_kb_quiet = quiet_rss;
            r.server_rss_bytes_per_connection_quiet =
                (quiet_rss as f64 - empty as f64) * 1024.0 / r.connections_ok.max(1) as f64;
        }
        r.params = self.params(&[
            ("members", a.members.into()),
            ("messages", a.messages.into()),
            ("rate", a.rate.into()),
            ("size", a.size.into()),
            ("quiet_s", a.quiet_s.into()),
        ]);
        merge(&mut r, outs, send_s);
        r.set_usage(measured, send_s + a.drain);
        Ok(r)
    }
}

/// Folds the clients' outcomes into `r`; `secs` is the sending window.
fn merge(r: &mut Report, outs: Vec<Outcome>, secs: f64) {
    let acked: HashSet<u64> = outs
        .iter()
        .flat_map(|o| o.acked_keys.iter().copied())
        .collect();
    let mut acked_in_room: HashMap<usize, u64> = HashMap::new();
    for o in &outs {
        *acked_in_room.entry(o.room).or_default() += o.acked_keys.len() as u64;
    }
    let mut e2e = histogram();
    let mut ack = histogram();
    let mut complete: HashMap<u64, u32> = HashMap::new();
    for o in outs {
        r.sent += o.sent;
        r.acked_ok += o.acked_keys.len() as u64;
        for (k, v) in o.ack_errors {
            r.ack_failed += v;
            *r.ack_errors.entry(k).or_default() += v;
        }
        for (_, us) in o.ack_us {
            ack.saturating_record(u64::from(us).max(1));
        }
        let expected = acked_in_room.get(&o.room).copied().unwrap_or(0);
        let mut got = o.recovered.iter().filter(|k| acked.contains(k)).count() as u64;
        for (key, us) in &o.deliveries {
            e2e.saturating_record(u64::from(*us).max(1));
            let worst = complete.entry(*key).or_default();
            *worst = (*worst).max(*us);
            if acked.contains(key) {
                got += 1;
            }
        }
        r.expected += expected;
        r.lost += expected.saturating_sub(got);
        r.delivered += o.deliveries.len() as u64;
        r.recovered += o.recovered.len() as u64;
        r.duplicated += o.duplicated;
        r.out_of_order += o.out_of_order;
        if let Some(why) = o.dropped {
            r.dropped += 1;
            *r.drop_reasons.entry(why).or_default() += 1;
        }
    }
    r.ack_missing = r.sent.saturating_sub(r.acked_ok + r.ack_failed);
    let mut fc = histogram();
    for us in complete.into_values() {
        fc.saturating_record(u64::from(us).max(1));
    }
    r.e2e = Latency::of(&e2e);
    r.ack = Latency::of(&ack);
    r.fanout_complete = Latency::of(&fc);
    r.measure_s = secs;
    if secs > 0.0 {
        r.sends_per_s = r.sent as f64 / secs;
        r.deliveries_per_s = r.delivered as f64 / secs;
    }
}
