//! Gives the system back the memory a burst left behind.
//!
//! glibc's allocator returns freed memory to the kernel only from the top of
//! a heap; what a burst (a large room filling, a reconnect storm) frees in the
//! middle of its heaps stays resident until `malloc_trim` releases those
//! pages. Every [`CHECK_EVERY`] this replica reads its resident size; when it
//! grew by more than [`SLACK`] since the heap was last looked at (or once a
//! minute, for memory freed without growth) it compares it with what its heap
//! holds in use, and trims once the burst is over (the heap no longer grows)
//! and more than [`SLACK`] is resident but free, beyond what was so right
//! after the last trim. Looking at the heap locks each of glibc's arenas in
//! turn, so a replica whose size holds still only reads `/proc`, and never
//! trims twice for the same burst.
//!
//! Off glibc (musl, other systems) there is nothing to trim and the loop
//! does not run.

use std::time::Duration;

/// How often the heap is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Free resident memory tolerated beyond the level after the last trim.
pub const SLACK: u64 = 16 << 20;

/// One look at the process's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Resident set size (`VmRSS` of `/proc/self/status`).
    pub resident: u64,
    /// What the heap holds allocated (glibc's `mallinfo2`: arena and mmapped chunks).
    pub in_use: u64,
}

impl Sample {
    /// Resident memory that is not allocated: free heap pages, plus the fixed
    /// part (code, stacks) that is the same in every sample.
    fn idle(self) -> u64 {
        self.resident.saturating_sub(self.in_use)
    }
}

/// Checks between two looks at the heap when the resident size holds still.
pub const LOOK_AT_LEAST_EVERY: u32 = 12;

/// When to look at the heap and when to trim: pure decisions over samples.
#[derive(Debug, Default)]
pub struct Policy {
    /// The previous sample.
    last: Option<Sample>,
    /// [`Sample::idle`] right after the last trim (or at the first sample).
    floor: Option<u64>,
    /// The heap was growing at the last look: look again at the next check.
    watching: bool,
    /// Checks since the last look.
    unlooked: u32,
}

impl Policy {
    /// Whether the heap must be looked at now, given the resident size: at
    /// the first check, while a burst is watched, when the resident size grew
    /// by more than [`SLACK`] since the last look, and every
    /// [`LOOK_AT_LEAST_EVERY`] checks.
    pub fn wants_a_look(&mut self, resident: u64) -> bool {
        self.unlooked += 1;
        let look = match self.last {
            None => true,
            Some(last) => {
                self.watching
                    || resident > last.resident.saturating_add(SLACK)
                    || self.unlooked >= LOOK_AT_LEAST_EVERY
            }
        };
        if look {
            self.unlooked = 0;
        }
        look
    }

    /// Takes a sample; true when the allocator should be trimmed now: the
    /// heap has stopped growing and the free resident memory is more than
    /// [`SLACK`] above its floor.
    pub fn observe(&mut self, now: Sample) -> bool {
        let floor = *self.floor.get_or_insert(now.idle());
        let growing = self.last.is_some_and(|last| now.in_use > last.in_use);
        let settled = self.last.is_some() && !growing;
        self.watching = growing;
        self.last = Some(now);
        settled && now.idle() > floor.saturating_add(SLACK)
    }

    /// Records the sample taken right after a trim: the new floor.
    pub fn trimmed(&mut self, after: Sample) {
        self.floor = Some(after.idle());
        self.last = Some(after);
        self.watching = false;
    }
}

/// Runs the policy until `stop` is cancelled (no-op off glibc).
pub async fn give_back(stop: tokio_util::sync::CancellationToken) {
    if sys::sample().is_none() {
        return;
    }
    let mut policy = Policy::default();
    let mut ticker = tokio::time::interval(CHECK_EVERY);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = stop.cancelled() => return,
        }
        let Some(resident) = sys::resident() else {
            return;
        };
        if !policy.wants_a_look(resident) {
            continue;
        }
        // Reading the heap's totals and trimming walk every arena: off the runtime's threads.
        let step = tokio::task::spawn_blocking(move || {
            let now = sys::sample()?;
            if !policy.observe(now) {
                return Some((policy, None));
            }
            sys::trim();
            let after = sys::sample()?;
            policy.trimmed(after);
            Some((policy, Some((now, after))))
        })
        .await;
        let Ok(Some((next, trimmed))) = step else {
            return;
        };
        policy = next;
        if let Some((before, after)) = trimmed {
            tracing::debug!(
                resident_before = before.resident,
                resident_after = after.resident,
                in_use = after.in_use,
                "gave freed heap memory back to the system"
            );
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod sys {
    use super::Sample;

    /// This process's resident size (`VmRSS`); `None` if `/proc` cannot be read.
    pub(super) fn resident() -> Option<u64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// This process's resident memory and heap in use; `None` if `/proc` cannot be read.
    pub(super) fn sample() -> Option<Sample> {
        let resident = resident()?;
        // SAFETY: `mallinfo2` takes no arguments and returns a plain struct; glibc
        // locks each arena while it adds it up.
        #[expect(unsafe_code, reason = "glibc's heap totals have no safe binding")]
        let info = unsafe { libc::mallinfo2() };
        Some(Sample {
            resident,
            in_use: (info.uordblks + info.hblkhd) as u64,
        })
    }

    /// Returns the free pages of every arena to the kernel (`malloc_trim(0)`).
    pub(super) fn trim() {
        // SAFETY: `malloc_trim` takes no pointers; it only releases pages of
        // free chunks, under each arena's lock.
        #[expect(unsafe_code, reason = "glibc's malloc_trim has no safe binding")]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod sys {
    use super::Sample;

    pub(super) fn resident() -> Option<u64> {
        None
    }

    pub(super) fn sample() -> Option<Sample> {
        None
    }

    pub(super) fn trim() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn at(resident_mb: u64, in_use_mb: u64) -> Sample {
        Sample {
            resident: resident_mb * MB,
            in_use: in_use_mb * MB,
        }
    }

    #[test]
    fn trims_once_a_burst_is_over_and_not_again_for_it() {
        let mut p = Policy::default();
        assert!(!p.observe(at(60, 40)), "the first sample sets the floor");
        assert!(!p.observe(at(300, 250)), "growing: the burst goes on");
        assert!(!p.observe(at(320, 260)), "still growing");
        assert!(p.observe(at(320, 80)), "settled with 240 MB free resident");
        p.trimmed(at(100, 80));
        assert!(!p.observe(at(100, 80)), "back at the floor");
        assert!(!p.observe(at(110, 80)), "within the slack");
    }

    #[test]
    fn the_heap_is_looked_at_when_the_resident_size_grows_or_a_burst_is_watched() {
        let mut p = Policy::default();
        assert!(p.wants_a_look(60 * MB), "the first check");
        assert!(!p.observe(at(60, 40)));
        assert!(!p.wants_a_look(70 * MB), "grew less than the slack");
        assert!(p.wants_a_look(100 * MB), "grew more than the slack");
        assert!(!p.observe(at(100, 80)), "growing");
        assert!(p.wants_a_look(100 * MB), "a growing heap is watched");
        assert!(p.observe(at(100, 45)), "settled, 55 MB free");
        p.trimmed(at(62, 45));
        for _ in 1..LOOK_AT_LEAST_EVERY {
            assert!(!p.wants_a_look(62 * MB), "holding still: /proc only");
        }
        assert!(p.wants_a_look(62 * MB), "and a look now and then");
    }

    #[test]
    fn a_heap_at_rest_is_never_trimmed() {
        let mut p = Policy::default();
        for _ in 0..10 {
            assert!(!p.observe(at(60, 40)));
        }
    }

    #[test]
    fn a_steady_load_whose_heap_holds_its_size_is_not_trimmed() {
        let mut p = Policy::default();
        assert!(!p.observe(at(200, 150)));
        for _ in 0..10 {
            assert!(
                !p.observe(at(205, 150)),
                "free resident memory within the slack"
            );
        }
    }

    #[test]
    fn a_later_burst_is_trimmed_again() {
        let mut p = Policy::default();
        assert!(!p.observe(at(60, 40)));
        assert!(!p.observe(at(200, 150)));
        assert!(p.observe(at(200, 50)));
        p.trimmed(at(70, 50));
        assert!(!p.observe(at(250, 200)));
        assert!(p.observe(at(250, 60)));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn trimming_returns_what_a_fragmented_heap_freed() {
        // 200 MB in 2 KB blocks; keep one in 64, so that no heap can shrink from its top.
        let blocks: Vec<Vec<u8>> = (0..100_000).map(|i| vec![i as u8; 2048]).collect();
        let kept: Vec<Vec<u8>> = blocks.into_iter().step_by(64).collect();
        let before = sys::sample().expect("a sample");
        sys::trim();
        let after = sys::sample().expect("a sample");
        assert!(kept.iter().all(|b| b.len() == 2048));
        assert!(
            after.resident + 100 * MB < before.resident,
            "trimming gave back at least 100 MB: {before:?} -> {after:?}"
        );
    }
}
