//! [`TokenBucket`]: the integer, nanosecond-exact token bucket under the
//! per-IP connection rate ([`PerIpTable`](super::PerIpTable)) and the read
//! throttle ([`ReadThrottle`](super::ReadThrottle)).

use std::time::{Duration, Instant};

/// Fixed-point scale: the bucket counts credit in billionths of a token, so
/// that `rate` tokens per second over `n` nanoseconds add exactly `rate * n`
/// credit, with no rounding and no floating point.
const SCALE: u128 = 1_000_000_000;

/// A token bucket: holds at most `capacity` tokens, gains `rate` tokens per
/// second, starts full. Integer arithmetic, exact to the nanosecond.
///
/// Time only moves forward: a `now` earlier than one already seen (threads
/// racing to the lock with slightly older timestamps) adds nothing.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    /// The most tokens the bucket holds (also how many it starts with).
    capacity: u64,
    /// Tokens gained per second.
    rate: u64,
    /// Tokens × [`SCALE`].
    credit: u128,
    /// The latest time seen: the credit is up to date as of then.
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilled at `rate_per_sec`.
    pub(crate) fn new(capacity: u64, rate_per_sec: u64, now: Instant) -> TokenBucket {
        TokenBucket {
            capacity,
            rate: rate_per_sec,
            credit: u128::from(capacity) * SCALE,
            last: now,
        }
    }

    /// The credit of a full bucket: capacity × [`SCALE`].
    fn max_credit(&self) -> u128 {
        u128::from(self.capacity) * SCALE
    }

    /// Adds the credit earned since the latest time seen, up to a full
    /// bucket; a `now` that is not later adds nothing.
    fn refill(&mut self, now: Instant) {
        if now > self.last {
            let nanos = now.duration_since(self.last).as_nanos();
            let gained = nanos.saturating_mul(u128::from(self.rate));
            self.credit = self.credit.saturating_add(gained).min(self.max_credit());
            self.last = now;
        }
    }

    /// Whole tokens available at `now`.
    pub(crate) fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        // credit <= capacity * SCALE, so the quotient fits in u64.
        (self.credit / SCALE) as u64
    }

    /// Whether the bucket is full at `now` (nothing taken that has not been
    /// refilled).
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.credit >= self.max_credit()
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.credit >= SCALE {
            self.credit -= SCALE;
            true
        } else {
            false
        }
    }

    /// Takes as many tokens as are available, up to `want`, and returns how
    /// many it took.
    #[cfg(test)] // only the tests need it
    pub(crate) fn take_up_to(&mut self, want: u64, now: Instant) -> u64 {
        let n = want.min(self.available(now));
        self.credit -= u128::from(n) * SCALE;
        n
    }

    /// Takes `n` tokens without refilling first; takes what is there if that
    /// is fewer (the bucket never goes below empty).
    pub(crate) fn take(&mut self, n: u64) {
        self.credit = self.credit.saturating_sub(u128::from(n) * SCALE);
    }

    /// How long from `now` until `need` tokens are available (zero if they
    /// already are). `need` above the capacity is taken as the capacity.
    /// With a rate of zero and too few tokens, `Duration::MAX`.
    pub(crate) fn wait_time(&mut self, need: u64, now: Instant) -> Duration {
        self.refill(now);
        let target = u128::from(need.min(self.capacity)) * SCALE;
        if self.credit >= target {
            return Duration::ZERO;
        }
        if self.rate == 0 {
            return Duration::MAX;
        }
        let missing = target - self.credit;
        let rate = u128::from(self.rate);
        let nanos = missing.div_ceil(rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}
