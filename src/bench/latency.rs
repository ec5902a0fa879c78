//! [`Latencies`]: a latency histogram in integer log-linear buckets.
//!
//! Each power of two is cut into 128 sub-buckets, so a reported value is
//! within 1/128 (under 0.8 %) of the true one — finer than the run-to-run
//! noise of any benchmark on a shared machine. Integer arithmetic only: no
//! floating-point logarithm, so the binary links no libm (which would cost
//! every `syncnet serve` process a few hundred KiB of resident memory at
//! start-up, for a feature only `syncnet bench` uses).

/// Sub-buckets per power of two: 2^7 = 128.
const SUB_BITS: u32 = 7;
const SUB_COUNT: usize = 1 << SUB_BITS;
/// Enough buckets for any `u64`: values below 128 exactly, then 57 powers of two.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB_COUNT;

/// Latencies in nanoseconds (any `u64` unit works), counted per bucket.
#[derive(Debug, Clone)]
pub(crate) struct Latencies {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }
}

/// The bucket of `value`.
fn index_of(value: u64) -> usize {
    if value < SUB_COUNT as u64 {
        return value as usize;
    }
    let magnitude = 63 - value.leading_zeros(); // >= SUB_BITS here
    let shift = magnitude - SUB_BITS;
    let sub = ((value >> shift) as usize) & (SUB_COUNT - 1);
    (shift as usize + 1) * SUB_COUNT + sub
}

/// The smallest value in bucket `index`.
fn lowest_in(index: usize) -> u64 {
    let (bucket, sub) = (index / SUB_COUNT, (index % SUB_COUNT) as u64);
    if bucket == 0 {
        sub
    } else {
        (SUB_COUNT as u64 + sub) << (bucket - 1)
    }
}

impl Latencies {
    /// Counts one value.
    pub(crate) fn record(&mut self, value: u64) {
        self.counts[index_of(value)] += 1;
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// How many values were counted.
    pub(crate) fn len(&self) -> u64 {
        self.total
    }

    /// True when nothing was counted.
    pub(crate) fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest value counted (exact).
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0.0–1.0): the highest value of the
    /// bucket holding the ⌈q·n⌉-th smallest value, never above the maximum.
    pub(crate) fn value_at_quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let highest = lowest_in(index + 1).saturating_sub(1);
                return highest.min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        for value in [
            0,
            1,
            127,
            128,
            129,
            255,
            256,
            1000,
            123_456_789,
            u64::MAX / 3,
            u64::MAX,
        ] {
            let index = index_of(value);
            assert!(index < BUCKETS, "{value}");
            assert!(lowest_in(index) <= value, "{value}");
            if index + 1 < BUCKETS {
                assert!(value < lowest_in(index + 1), "{value}");
            }
        }
        assert_eq!(index_of(127) + 1, index_of(128));
    }

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut latencies = Latencies::default();
        for value in 1..=100_000u64 {
            latencies.record(value * 1000);
        }
        assert_eq!(latencies.len(), 100_000);
        assert_eq!(latencies.max(), 100_000_000);
        for (q, exact) in [
            (0.5, 50_000_000.0),
            (0.9, 90_000_000.0),
            (0.99, 99_000_000.0),
        ] {
            let got = latencies.value_at_quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact < 0.01,
                "q {q}: {got} vs {exact}"
            );
        }
        assert_eq!(latencies.value_at_quantile(1.0), 100_000_000);
        assert!(Latencies::default().is_empty());
    }
}
