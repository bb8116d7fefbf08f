//! `reconnect`: a reconnect storm. `connections` clients are spread over the
//! replicas (`--url`) and over `rooms` rooms; `senders` per room, all on the
//! second replica, send at `rate` from the start to the end. After
//! `kill-after-s` of sending, the tool SIGKILLs the first replica
//! (`--kill-pid`), and each of its clients does what socket.io-client does
//! by default: it waits a random 0.5–1.5 s, then reconnects, here to the
//! second replica, with `since` = the newest message it received; a failed
//! attempt is retried after twice the delay (±50 %, at most 5 s), until
//! `reconnect-within-s` after the kill (socket.io-client leaves a refused
//! CONNECT to the application; here every failure is retried). The messages
//! of the new welcome's `history` that a client had not received count as
//! delivered (recovered), so a message acked while it was away that is in
//! neither is lost.
//!
//! Sending goes on `hold` seconds past that bound, then the drain. The
//! survivors (`--server-pid`, never the killed one) are measured over the
//! storm, from the kill until the last client of the killed replica is back
//! or gave up (CPU), and their RSS is sampled from just before the kill until
//! the end of the sending (before, peak, after).

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use chat_core::MessageId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Ctx, merge};
use crate::procstat::{self, Meter};
use crate::report::{Latency, ReconnectReport, Report, histogram};
use crate::session::{self, Outcome, SendPlan, Start};
use crate::wire::{self, Target, Welcome, Ws};

/// socket.io-client's `reconnectionDelay` (ms): the first wait, doubled
/// after each failed attempt.
const DELAY_MS: f64 = 1000.0;
/// socket.io-client's `reconnectionDelayMax` (ms).
const DELAY_MAX_MS: f64 = 5000.0;
/// socket.io-client's `randomizationFactor`: each wait is ±50 % at random.
const JITTER: f64 = 0.5;
/// How often the survivors' RSS is sampled for its peak.
const RSS_EVERY: Duration = Duration::from_millis(50);

/// Where a client of the killed replica reconnects, and as whom.
struct Redial {
    target: Target,
    src: IpAddr,
    token: String,
}

/// The storm's bounds, the same for every client of the killed replica.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the kill is due: a connection lost before is not the storm's.
    kill_at: Instant,
    /// No attempt runs past this.
    give_up: Instant,
    /// The longest one attempt may take.
    attempt_timeout: Duration,
}

/// How one client of the killed replica got back.
#[derive(Debug, Default)]
struct Rejoin {
    /// Its connection was lost at the kill (not before).
    dropped: bool,
    /// Reconnect attempts made.
    attempts: u64,
    /// Why attempts failed.
    errors: Vec<String>,
    /// When its `welcome` came again, and how long that attempt took (µs).
    back: Option<(Instant, u64)>,
    /// That `welcome` said `recovered: false`, or could not be read.
    not_recovered: bool,
}

/// A tiny deterministic PRNG (SplitMix64), so that each client waits the
/// same delays from run to run and side to side.
struct Rng(u64);

impl Rng {
    /// The generator of client `id`.
    fn new(id: u32) -> Self {
        Self(u64::from(id) ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The wait before reconnect attempt `n` (0: the first), as
/// socket.io-client's backoff computes it: 1 s doubled per failed attempt,
/// ±50 % at random, then at most 5 s.
fn delay(n: u32, rng: &mut Rng) -> Duration {
    let base = DELAY_MS * 2f64.powi(n.min(16) as i32);
    let ms = base * (1.0 + JITTER * (2.0 * rng.unit() - 1.0));
    Duration::from_secs_f64(ms.min(DELAY_MAX_MS) / 1000.0)
}

impl Ctx<'_> {
    /// Runs the `reconnect` scenario.
    pub(super) async fn reconnect(&self) -> anyhow::Result<Report> {
        let a = self.args;
        let urls = self.targets.len();
        if urls < 2 {
            bail!(
                "--scenario reconnect needs two --url at least: the first one is killed, \
                 its clients reconnect to the second"
            );
        }
        let pid = a
            .kill_pid
            .context("--scenario reconnect needs --kill-pid: the process of the first --url")?;
        ensure!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "--kill-pid {pid}: no such process"
        );
        ensure!(
            !a.server_pid.contains(&pid),
            "--kill-pid {pid} is also a --server-pid: measure the survivors only"
        );
        let rooms = a.rooms.max(1);
        let jobs = self.prepare_connections()?;
        // Client i is on replica i % urls: those of the first reconnect to the second.
        let mut redials: Vec<Option<Redial>> = jobs
            .iter()
            .map(|j| {
                (j.i % urls == 0).then(|| Redial {
                    target: self.targets[1].clone(),
                    src: j.src,
                    token: j.token.clone(),
                })
            })
            .collect();
        let mut pop = self.connect(jobs).await?;
        self.settle(&pop).await;

        let secs = Duration::from_secs_f64;
        let t0 = Instant::now() + Duration::from_millis(50);
        let window = Window {
            kill_at: t0 + secs(a.kill_after_s),
            give_up: t0 + secs(a.kill_after_s + a.reconnect_within_s),
            attempt_timeout: Duration::from_secs(a.connect_timeout_s),
        };
        let until = window.give_up + secs(a.hold);
        let stop_at = until + secs(a.drain);
        let senders = Senders {
            urls,
            slots: rooms * a.senders,
            period: secs(1.0 / a.rate.max(0.001)),
            start: t0,
            until,
            pad: a.size,
        };

        // Each reconnecting client holds a clone of `done` until it is back or
        // gave up: the channel closes when the last one is.
        let (done, mut storm) = mpsc::channel::<()>(1);
        let mut plain = Vec::new();
        let mut rejoining = Vec::new();
        for c in std::mem::take(&mut pop.clients) {
            let start = Start {
                plan: senders.plan(c.id),
                stop_at,
            };
            // A session that already ended (dropped) has its outcome anyway.
            let _ = c.start.send(start);
            match redials.get_mut(c.id as usize).and_then(Option::take) {
                Some(r) => rejoining.push(tokio::spawn(rejoin(
                    c.id,
                    c.session,
                    r,
                    start,
                    window,
                    done.clone(),
                ))),
                None => plain.push(c.session),
            }
        }
        drop(done);

        tokio::time::sleep_until(window.kill_at).await;
        let meter = Meter::start(&a.server_pid, &a.aux_pid);
        let rss = tokio::spawn(watch_rss(
            a.server_pid.clone(),
            until.max(Instant::now() + RSS_EVERY),
        ));
        let killed = Instant::now();
        kill(pid).await?;
        let deadline = window.give_up + Duration::from_secs(1);
        let _ = tokio::time::timeout_at(deadline, async { while storm.recv().await.is_some() {} })
            .await;
        let storm_s = killed.elapsed().as_secs_f64();
        let measured = meter.stop();

        let mut outs = Vec::with_capacity(plain.len() + rejoining.len());
        for s in plain {
            outs.push(s.await.context("a session task panicked")?);
        }
        let mut rejoins = Vec::with_capacity(rejoining.len());
        for t in rejoining {
            let (out, rj) = t.await.context("a reconnecting client's task panicked")??;
            outs.push(out);
            rejoins.push(rj);
        }
        let (rss_peak, rss_after) = rss.await.context("the RSS sampler panicked")?;

        let mut rc = summarize(&rejoins, killed);
        rc.storm_s = storm_s;
        rc.survivor_cpu_s = measured.servers.iter().map(|u| u.cpu_s).sum();
        rc.survivor_rss_kb_before = measured.servers.iter().map(|u| u.before.rss_kb).sum();
        rc.survivor_rss_kb_peak = rss_peak;
        rc.survivor_rss_kb_after = rss_after;
        let sending_s = (until - t0).as_secs_f64();
        let mut r = pop.report;
        r.params = self.params(&[
            ("connections", a.connections.into()),
            ("rooms", rooms.into()),
            ("senders", senders.count(a.connections).into()),
            ("rate", a.rate.into()),
            ("kill_after_s", a.kill_after_s.into()),
            ("reconnect_within_s", a.reconnect_within_s.into()),
        ]);
        merge(&mut r, outs, sending_s);
        r.set_usage(measured, storm_s);
        r.reconnect = Some(rc);
        Ok(r)
    }
}

/// Who sends in the `reconnect` scenario, and how: the first `slots`
/// clients of the second replica, `slots / rooms` per room.
#[derive(Debug, Clone, Copy)]
struct Senders {
    urls: usize,
    slots: usize,
    period: Duration,
    start: Instant,
    until: Instant,
    pad: usize,
}

impl Senders {
    /// The position of client `id` among the senders, if it is one.
    fn slot(&self, id: u32) -> Option<usize> {
        let id = id as usize;
        let slot = id / self.urls;
        (id % self.urls == 1 && slot < self.slots).then_some(slot)
    }

    /// Client `id`'s plan: senders spread their first sends over one period.
    fn plan(&self, id: u32) -> Option<SendPlan> {
        let slot = self.slot(id)?;
        let plan = SendPlan::steady(self.start, self.period, self.until, self.pad);
        Some(plan.spread(slot, self.slots))
    }

    /// How many of `connections` clients send.
    fn count(&self, connections: usize) -> usize {
        (0..connections as u32)
            .filter(|&id| self.slot(id).is_some())
            .count()
    }
}

/// Client `id` of the killed replica: its session until its connection is
/// lost, then [`redial`], then the session again on the new connection with
/// the new welcome's history. `done` is dropped once it is back or gave up.
async fn rejoin(
    id: u32,
    session: JoinHandle<Outcome>,
    r: Redial,
    start: Start,
    window: Window,
    done: mpsc::Sender<()>,
) -> anyhow::Result<(Outcome, Rejoin)> {
    let out = session.await.context("a session task panicked")?;
    let mut rejoin = Rejoin::default();
    // Lost before the kill (a failure of its own), or not at all.
    if out.dropped.is_none() || Instant::now() < window.kill_at {
        return Ok((out, rejoin));
    }
    rejoin.dropped = true;
    let back = redial(id, &r, out.last_id, window, &mut rejoin).await;
    drop(done);
    let Some((ws, frame)) = back else {
        return Ok((out, rejoin));
    };
    let welcome = Welcome::parse(frame.as_str()).unwrap_or_default();
    rejoin.not_recovered = !welcome.recovered;
    let out = session::resume(ws, id, out, &welcome.history, start).await;
    Ok((out, rejoin))
}

/// Reconnects client `id` as socket.io-client would: waits [`delay`], tries,
/// and after a failure waits again, longer, as long as an attempt can start
/// before `window.give_up`. Returns the socket and welcome frame of the
/// attempt that succeeded.
async fn redial(
    id: u32,
    r: &Redial,
    since: Option<MessageId>,
    window: Window,
    rejoin: &mut Rejoin,
) -> Option<(Ws, Utf8Bytes)> {
    let mut rng = Rng::new(id);
    let connect = wire::connect_frame_with_since(&r.token, since);
    let mut n = 0;
    loop {
        let at = Instant::now() + delay(n, &mut rng);
        if at >= window.give_up {
            return None;
        }
        tokio::time::sleep_until(at).await;
        let timeout = window.attempt_timeout.min(window.give_up - at);
        rejoin.attempts += 1;
        let started = Instant::now();
        match wire::open(&r.target, r.src, connect.clone(), timeout).await {
            Ok(opened) => {
                let now = Instant::now();
                rejoin.back = Some((now, (now - started).as_micros() as u64));
                return Some(opened);
            }
            Err(e) => rejoin.errors.push(e.0),
        }
        n += 1;
    }
}

/// SIGKILLs `pid` (with kill(1): the tool has no binding to the system call).
async fn kill(pid: u32) -> anyhow::Result<()> {
    let status = tokio::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .await
        .context("running kill -9")?;
    ensure!(status.success(), "kill -9 {pid} failed ({status})");
    Ok(())
}

/// The summed RSS (KiB) of `pids`, sampled every [`RSS_EVERY`] until `until`:
/// the highest sample, and the last.
async fn watch_rss(pids: Vec<u32>, until: Instant) -> (u64, u64) {
    let mut every = tokio::time::interval(RSS_EVERY);
    let (mut peak, mut last) = (0, 0);
    while Instant::now() < until {
        every.tick().await;
        last = pids.iter().map(|p| procstat::sample(Some(*p)).rss_kb).sum();
        peak = peak.max(last);
    }
    (peak, last)
}

/// The storm's figures from the clients of the killed replica, `killed`
/// being the instant of the kill.
fn summarize(rejoins: &[Rejoin], killed: Instant) -> ReconnectReport {
    let mut rc = ReconnectReport {
        clients: rejoins.len() as u64,
        ..ReconnectReport::default()
    };
    let mut handshakes = histogram();
    let mut first: Option<Duration> = None;
    let mut last = Duration::ZERO;
    for rj in rejoins {
        rc.attempts += rj.attempts;
        rc.attempts_failed += rj.errors.len() as u64;
        for e in &rj.errors {
            *rc.attempt_errors.entry(e.clone()).or_default() += 1;
        }
        if !rj.dropped {
            continue;
        }
        rc.dropped += 1;
        let Some((at, us)) = rj.back else {
            rc.never_back += 1;
            continue;
        };
        rc.back += 1;
        rc.not_recovered += u64::from(rj.not_recovered);
        handshakes.saturating_record(us.max(1));
        let after = at.saturating_duration_since(killed);
        first = Some(first.map_or(after, |f| f.min(after)));
        last = last.max(after);
    }
    rc.handshake = Latency::of(&handshakes);
    rc.first_back_s = first.unwrap_or_default().as_secs_f64();
    rc.all_back_s = last.as_secs_f64();
    rc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_socket_io_client_backoff() {
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            let first = delay(0, &mut rng).as_millis();
            assert!((500..=1500).contains(&first), "{first}");
            let second = delay(1, &mut rng).as_millis();
            assert!((1000..=3000).contains(&second), "{second}");
            let late = delay(9, &mut rng).as_millis();
            assert!((2500..=5000).contains(&late), "{late}");
        }
        // The same client waits the same from run to run; clients differ.
        let once = delay(0, &mut Rng::new(3));
        assert_eq!(once, delay(0, &mut Rng::new(3)));
        assert_ne!(once, delay(0, &mut Rng::new(4)));
    }

    #[test]
    fn senders_sit_on_the_second_replica_one_slot_each() {
        let now = Instant::now();
        let s = Senders {
            urls: 2,
            slots: 3,
            period: Duration::from_secs(1),
            start: now,
            until: now,
            pad: 0,
        };
        let ids: Vec<u32> = (0..20).filter(|&id| s.slot(id).is_some()).collect();
        assert_eq!(ids, vec![1, 3, 5]);
        assert_eq!(s.count(20), 3);
        assert!(s.plan(0).is_none());
        let offset = s.plan(5).map(|p| p.start - now);
        assert_eq!(offset, Some(Duration::from_secs(1).mul_f64(2.0 / 3.0)));
    }

    #[test]
    fn the_storm_ends_with_the_last_client_back() {
        let killed = Instant::now();
        let back = |ms: u64, us: u64| Some((killed + Duration::from_millis(ms), us));
        let rejoins = [
            Rejoin {
                dropped: true,
                attempts: 1,
                back: back(900, 2_000),
                ..Rejoin::default()
            },
            Rejoin {
                dropped: true,
                attempts: 2,
                errors: vec!["timeout".into()],
                back: back(3_100, 5_000),
                not_recovered: true,
            },
            Rejoin {
                dropped: true,
                attempts: 3,
                errors: vec![
                    "timeout".into(),
                    "refused: server_busy".into(),
                    "timeout".into(),
                ],
                back: None,
                ..Rejoin::default()
            },
            Rejoin::default(),
        ];
        let rc = summarize(&rejoins, killed);
        assert_eq!(
            (rc.clients, rc.dropped, rc.back, rc.never_back),
            (4, 3, 2, 1)
        );
        assert_eq!((rc.attempts, rc.attempts_failed), (6, 4));
        assert_eq!(rc.attempt_errors.get("timeout"), Some(&3));
        assert_eq!(rc.not_recovered, 1);
        assert!((rc.first_back_s - 0.9).abs() < 1e-6);
        assert!((rc.all_back_s - 3.1).abs() < 1e-6);
        assert_eq!(rc.handshake.count, 2);
    }
}
