//! Disturbance accounting: how much CPU processes this benchmark did not
//! start used while a measurement ran, read from `/proc/*/stat`.
//!
//! Kernel threads are left out (softirq work of our own traffic lands in
//! `ksoftirqd`), and so is every descendant of this process (the daemon,
//! iperf3, trafgen...). A process born during the window counts with all its
//! CPU time; one that exited during the window is missed.

use std::collections::HashMap;
use std::fs;
use std::time::{Duration, Instant};

use anyhow::Result;

const PF_KTHREAD: u64 = 0x0020_0000;

/// CPU time of every process that is not ours, in clock ticks.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    taken: Instant,
    ticks: HashMap<u32, (String, u64)>,
}

/// What others used between two snapshots.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Disturbance {
    /// Fraction of one core used by others over the window.
    pub other_cores: f64,
    /// The biggest consumers, `comm:percent`.
    pub top: Vec<String>,
}

struct ProcStat {
    comm: String,
    ppid: u32,
    flags: u64,
    ticks: u64,
}

fn read_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 2..].split(' ').collect();
    // Fields after the comm: state(0) ppid(1) ... flags(6) ... utime(11) stime(12).
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(ProcStat {
        comm,
        ppid: number(1)? as u32,
        flags: number(6)?,
        ticks: number(11)? + number(12)?,
    })
}

impl CpuSnapshot {
    pub fn take() -> Self {
        let me = std::process::id();
        let stats: HashMap<u32, ProcStat> = fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| Some((pid, read_stat(pid)?)))
            .collect();
        let is_ours = |mut pid: u32| {
            for _ in 0..64 {
                if pid == me {
                    return true;
                }
                match stats.get(&pid) {
                    Some(stat) if stat.ppid > 1 => pid = stat.ppid,
                    _ => return false,
                }
            }
            false
        };
        let ticks = stats
            .iter()
            .filter(|(pid, stat)| stat.flags & PF_KTHREAD == 0 && **pid != 2 && !is_ours(**pid))
            .map(|(pid, stat)| (*pid, (stat.comm.clone(), stat.ticks)))
            .collect();
        Self {
            taken: Instant::now(),
            ticks,
        }
    }

    /// What others used from `self` to now.
    pub fn since(&self) -> Disturbance {
        let now = Self::take();
        let elapsed = now.taken.duration_since(self.taken).as_secs_f64().max(1e-3);
        let hz = clock_ticks_per_second();
        let mut used: Vec<(String, f64)> = now
            .ticks
            .iter()
            .filter_map(|(pid, (comm, ticks))| {
                let before = self.ticks.get(pid).map_or(0, |(_, t)| *t);
                let delta = ticks.saturating_sub(before);
                (delta > 0).then(|| (comm.clone(), delta as f64 / hz / elapsed))
            })
            .collect();
        used.sort_by(|a, b| b.1.total_cmp(&a.1));
        Disturbance {
            other_cores: used.iter().map(|(_, share)| share).sum(),
            top: used
                .iter()
                .take(3)
                .map(|(comm, share)| format!("{comm}:{:.0}%", share * 100.0))
                .collect(),
        }
    }
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// Waits up to `patience` for a `window` in which others used less than
/// `threshold` of a core; returns whether one was found.
pub fn wait_quiet(threshold: f64, window: Duration, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    loop {
        let start = CpuSnapshot::take();
        std::thread::sleep(window);
        if start.since().other_cores < threshold {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), in
/// nanoseconds: what it used, whoever else ran meanwhile.
pub fn thread_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// A measurement with its disturbance, generic over the measured value.
pub struct Measured<T> {
    pub value: Result<T, String>,
    pub attempts: usize,
    pub others: Disturbance,
}

/// Runs `f` after waiting briefly for a quiet moment. A run during which
/// others used more than `threshold` of a core is repeated, up to
/// `attempts` runs in all; the least disturbed one is kept.
pub fn measure<T>(
    threshold: f64,
    attempts: usize,
    mut f: impl FnMut() -> Result<T>,
) -> Measured<T> {
    let mut best: Option<Measured<T>> = None;
    let mut tries = 0;
    for attempt in 1..=attempts.max(1) {
        tries = attempt;
        wait_quiet(
            threshold,
            Duration::from_millis(250),
            Duration::from_millis(1500),
        );
        let snapshot = CpuSnapshot::take();
        let value = f().map_err(|e| format!("{e:#}"));
        let others = snapshot.since();
        let failed = value.is_err();
        let quiet = others.other_cores < threshold;
        let better = best
            .as_ref()
            .is_none_or(|b| b.value.is_err() || others.other_cores < b.others.other_cores);
        if better && (!failed || best.is_none()) {
            best = Some(Measured {
                value,
                attempts: attempt,
                others,
            });
        }
        if quiet && !failed {
            break;
        }
    }
    let mut best = best.expect("at least one attempt");
    best.attempts = tries;
    best
}
