//! Medians and percentiles computed here (no benchmarking framework): every number in the
//! report comes from a list of `Instant`-measured durations.

use std::time::Duration;

use serde::Serialize;

/// Summary of a list of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Stat {
    /// Samples.
    pub n: usize,
    /// Median (the mean of the two middle samples when `n` is even).
    pub median_ms: f64,
    /// 95th percentile (nearest rank).
    pub p95_ms: f64,
    /// 99th percentile (nearest rank).
    pub p99_ms: f64,
    /// The slowest sample.
    pub max_ms: f64,
    /// Arithmetic mean.
    pub mean_ms: f64,
}

impl Stat {
    /// Summarises `samples` (empty gives all zeros).
    pub fn of(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        Self::of_ms(&mut ms)
    }

    /// Summarises samples already in milliseconds (sorted in place).
    pub fn of_ms(ms: &mut [f64]) -> Self {
        if ms.is_empty() {
            return Self::default();
        }
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        Self {
            n,
            median_ms: median,
            p95_ms: nearest_rank(ms, 0.95),
            p99_ms: nearest_rank(ms, 0.99),
            max_ms: ms[n - 1],
            mean_ms: ms.iter().sum::<f64>() / n as f64,
        }
    }
}

/// The nearest-rank percentile of sorted samples: the smallest sample with at least `p` of
/// all samples at or below it.
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A small deterministic generator (SplitMix64) for picking tenants and rows, so runs are
/// repeatable without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stat::of_ms(&mut v);
        assert_eq!(s.n, 100);
        assert_eq!(s.median_ms, 50.5);
        assert_eq!(s.p95_ms, 95.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
        let mut odd = vec![3.0, 1.0, 2.0];
        assert_eq!(Stat::of_ms(&mut odd).median_ms, 2.0);
        assert_eq!(Stat::of(&[]).n, 0);
    }

    #[test]
    fn rng_is_deterministic_and_bounded() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
    }
}
