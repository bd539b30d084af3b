//! A closed-loop load generator: `concurrency` tasks each run one operation after another
//! until a deadline or an operation budget is reached (both always bounded).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::cpu::{self, CpuTicks};
use super::stats::Stat;

/// What a load run did.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    /// Operations that succeeded.
    pub ops: u64,
    /// Operations that failed.
    pub errors: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of every successful operation.
    pub latencies: Vec<Duration>,
    /// The machine's CPU time during the run (client and server alike: both run here).
    pub cpu: CpuTicks,
}

impl LoadResult {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { self.ops as f64 / s } else { 0.0 }
    }

    /// Latency summary.
    pub fn stat(&self) -> Stat {
        Stat::of(&self.latencies)
    }

    /// Adds another run (rates combine as total operations over total time).
    pub fn absorb(&mut self, other: LoadResult) {
        self.ops += other.ops;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
        self.latencies.extend(other.latencies);
        self.cpu = self.cpu + other.cpu;
    }
}

/// Runs `op(task, i)` from `concurrency` tasks until `duration` has passed or `max_ops`
/// operations were started.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    duration: Duration,
    max_ops: u64,
    op: F,
) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let started_ops = Arc::new(AtomicU64::new(0));
    let ticks = CpuTicks::now();
    let start = Instant::now();
    let deadline = start + duration;
    let mut handles = Vec::with_capacity(concurrency);
    for task in 0..concurrency.max(1) {
        let op = op.clone();
        let started_ops = started_ops.clone();
        handles.push(tokio::spawn(async move {
            let mut out = LoadResult::default();
            while Instant::now() < deadline {
                let i = started_ops.fetch_add(1, Ordering::Relaxed);
                if i >= max_ops {
                    break;
                }
                let t = Instant::now();
                match op(task, i).await {
                    Ok(()) => {
                        out.latencies.push(t.elapsed());
                        out.ops += 1;
                    }
                    Err(e) => {
                        out.errors += 1;
                        if out.first_error.is_none() {
                            out.first_error = Some(format!("{e:#}"));
                        }
                    }
                }
            }
            out
        }));
    }
    let mut total = LoadResult::default();
    for h in handles {
        match h.await {
            Ok(r) => {
                total.ops += r.ops;
                total.errors += r.errors;
                if total.first_error.is_none() {
                    total.first_error = r.first_error;
                }
                total.latencies.extend(r.latencies);
            }
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert(e.to_string());
            }
        }
    }
    total.elapsed = start.elapsed();
    total.cpu = cpu::since(ticks);
    total
}

/// What the machine's CPU paid per operation on each side of a comparison, and how much of its
/// time was stolen meanwhile: `CPU per op (client + server, steal excluded): ours 812 µs,
/// baseline 640 µs, ratio 0.788; steal 12% of the machine's time`. The ratio is the
/// baseline's over ours, so it reads like a throughput ratio (higher is better). `None` off
/// Linux.
pub fn cpu_note(ours: &LoadResult, base: &LoadResult) -> Option<String> {
    let (o, b) = (
        ours.cpu.busy_us_per(ours.ops)?,
        base.cpu.busy_us_per(base.ops)?,
    );
    let steal = cpu::steal_text(&(ours.cpu + base.cpu)).unwrap_or_default();
    Some(format!(
        "CPU per op (client + server, steal excluded): ours {o:.0} µs, baseline {b:.0} µs, \
         ratio {:.3}; {steal}",
        b / o
    ))
}

/// Runs the baseline and ours in alternating rounds (`rounds` each, `duration` per round,
/// order flipped every round) and returns both totals.
pub async fn alternate<FB, FutB, FO, FutO>(
    concurrency: usize,
    duration: Duration,
    rounds: usize,
    max_ops: u64,
    base: FB,
    ours: FO,
) -> (LoadResult, LoadResult)
where
    FB: Fn(usize, u64) -> FutB + Send + Sync + Clone + 'static,
    FutB: Future<Output = anyhow::Result<()>> + Send + 'static,
    FO: Fn(usize, u64) -> FutO + Send + Sync + Clone + 'static,
    FutO: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut b = LoadResult::default();
    let mut o = LoadResult::default();
    for r in 0..rounds.max(1) {
        if r % 2 == 0 {
            b.absorb(closed_loop(concurrency, duration, max_ops, base.clone()).await);
            o.absorb(closed_loop(concurrency, duration, max_ops, ours.clone()).await);
        } else {
            o.absorb(closed_loop(concurrency, duration, max_ops, ours.clone()).await);
            b.absorb(closed_loop(concurrency, duration, max_ops, base.clone()).await);
        }
    }
    (b, o)
}
