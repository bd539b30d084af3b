//! The machine's CPU time, from the first line of `/proc/stat`, to measure what a load costs in
//! CPU rather than in wall time, and how much of the host's time a virtual machine lost.
//!
//! On a shared host the wall-clock throughput of a cell swings with what the neighbours do (the
//! virtual CPUs are *stolen*: runnable, not running), by far more than the 5% a target tells
//! apart. The CPU time a load consumed on the machine (user, nice, system, irq and softirq: the
//! bench's client and every PostgreSQL process, since the cluster runs on the same machine) is
//! charged only while a virtual CPU really runs, so CPU per operation moves much less with the
//! neighbours; on a machine that runs nothing else, the two sides' CPU per operation is what
//! their saturated throughput is in inverse. Steal is counted apart, so a report can say how
//! noisy its host was. Off Linux (no `/proc/stat`) everything here is `None`.

use std::ops::{Add, Sub};

/// Linux reports `/proc/stat` in `USER_HZ` ticks, 100 per second on every architecture it runs
/// on (`sysconf(_SC_CLK_TCK)`), whatever the kernel's own tick rate.
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time of the whole machine, in ticks, summed over its CPUs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    /// Running something: user, nice, system, irq, softirq.
    pub busy: u64,
    /// Runnable but not run, because the hypervisor ran something else.
    pub steal: u64,
    /// Everything, idle and I/O wait included.
    pub all: u64,
}

impl CpuTicks {
    /// The machine's counters now; `None` without a readable `/proc/stat`.
    pub fn now() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The aggregate `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq steal
    /// (guest time is already inside user and nice).
    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        let busy = at(0) + at(1) + at(2) + at(5) + at(6);
        let steal = at(7);
        Some(Self {
            busy,
            steal,
            all: busy + steal + at(3) + at(4),
        })
    }

    /// Busy CPU time in microseconds per operation; `None` without operations or ticks.
    pub fn busy_us_per(&self, ops: u64) -> Option<f64> {
        (ops > 0 && self.busy > 0).then(|| self.busy as f64 / TICKS_PER_SECOND * 1e6 / ops as f64)
    }

    /// The share of the machine's time that was stolen; `None` without ticks.
    pub fn steal_share(&self) -> Option<f64> {
        (self.all > 0).then(|| self.steal as f64 / self.all as f64)
    }
}

impl Sub for CpuTicks {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            busy: self.busy.saturating_sub(earlier.busy),
            steal: self.steal.saturating_sub(earlier.steal),
            all: self.all.saturating_sub(earlier.all),
        }
    }
}

impl Add for CpuTicks {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            busy: self.busy + other.busy,
            steal: self.steal + other.steal,
            all: self.all + other.all,
        }
    }
}

/// The counters' change since `start` (zero where either reading failed).
pub fn since(start: Option<CpuTicks>) -> CpuTicks {
    match (start, CpuTicks::now()) {
        (Some(a), Some(b)) => b - a,
        _ => CpuTicks::default(),
    }
}

/// "steal 12% of the machine's time", or nothing without ticks.
pub fn steal_text(t: &CpuTicks) -> Option<String> {
    t.steal_share()
        .map(|s| format!("steal {:.0}% of the machine's time", s * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aggregate_line_is_split_into_busy_steal_and_all() {
        let stat = "cpu  100 5 20 800 7 3 2 40 9 0\ncpu0 50 2 10 400 3 1 1 20 0 0\n";
        let t = CpuTicks::parse(stat).expect("parsed");
        assert_eq!(t.busy, 100 + 5 + 20 + 3 + 2);
        assert_eq!(t.steal, 40);
        assert_eq!(t.all, 130 + 40 + 800 + 7);
        let half = CpuTicks {
            busy: 65,
            steal: 20,
            all: 488,
        };
        assert_eq!(
            t - half,
            half + CpuTicks {
                busy: 0,
                steal: 0,
                all: 1
            }
        );
        assert_eq!(t.busy_us_per(130), Some(10_000.0));
        assert_eq!(t.busy_us_per(0), None);
        assert!(CpuTicks::parse("intr 1 2 3\n").is_none());
    }
}
