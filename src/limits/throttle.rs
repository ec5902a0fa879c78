//! [`ReadThrottle`]: `--max-bytes-per-sec` for one connection, consulted by
//! `Conn::read`; it delays reads and never refuses.

use std::time::{Duration, Instant};

use super::token_bucket::TokenBucket;

/// `--max-bytes-per-sec N` for one connection: a token bucket of bytes that
/// holds at most one second of tokens (`N`), refilled at `N` per second,
/// full at the start. It throttles and never refuses.
///
/// To keep a throttled connection from waking for every byte, a read that
/// has to wait waits until it can take `min(want, max(1, N / 20))` bytes,
/// i.e. at most about 50 ms worth: a throttled reader wakes about twenty
/// times a second, not once per byte.
///
/// How `Conn::read(buf)` should use it (when the limit is on):
///
/// ```text
/// loop {
///     match throttle.allowance(buf.len(), Instant::now()) {
///         Ok(n) => {
///             // never read more than the allowance
///             let got = stream.read(&mut buf[..n])?;
///             throttle.consume(got);
///             return Ok(got);
///         }
///         // Sleep, but wake early when shutdown starts (a throttled wait
///         // ends when shutdown starts; docs/reference.md, section
///         // Shutdown): e.g. wait on the shutdown
///         // signal's condvar/channel with this timeout rather than
///         // thread::sleep. After a shutdown wake, go on and read: the read
///         // side is shut down, so the read returns the buffered bytes and
///         // then end of input promptly.
///         Err(wait) => sleep_unless_shutdown(wait),
///     }
/// }
/// ```
///
/// `allowance` does not take the tokens; `consume` takes what the read
/// actually returned, so a short read does not waste budget. A `buf` of
/// length 0 gets `Ok(0)`.
#[derive(Debug, Clone)]
pub(crate) struct ReadThrottle {
    /// Bytes: capacity and rate both `--max-bytes-per-sec`.
    bucket: TokenBucket,
    /// The most a waiting read waits for: `max(1, rate / 20)` bytes, about
    /// 50 ms worth.
    min_grant: u64,
}

impl ReadThrottle {
    /// A throttle for `bytes_per_sec` (at least 1: the caller creates none
    /// when the limit is off).
    pub(crate) fn new(bytes_per_sec: u64, now: Instant) -> ReadThrottle {
        let rate = bytes_per_sec.max(1);
        ReadThrottle {
            bucket: TokenBucket::new(rate, rate, now),
            min_grant: (rate / 20).max(1),
        }
    }

    /// How many bytes (at most `want`) a read may take now, or how long to
    /// wait before asking again. Takes no tokens (see [`consume`]).
    ///
    /// [`consume`]: ReadThrottle::consume
    pub(crate) fn allowance(&mut self, want: usize, now: Instant) -> Result<usize, Duration> {
        if want == 0 {
            return Ok(0);
        }
        let want = u64::try_from(want).unwrap_or(u64::MAX);
        let available = self.bucket.available(now);
        let threshold = want.min(self.min_grant);
        if available >= threshold {
            // Both are at most `want`, which came from a usize.
            Ok(usize::try_from(want.min(available)).unwrap_or(usize::MAX))
        } else {
            Err(self.bucket.wait_time(threshold, now))
        }
    }

    /// Records that a read took `n` bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        self.bucket.take(u64::try_from(n).unwrap_or(u64::MAX));
    }
}
