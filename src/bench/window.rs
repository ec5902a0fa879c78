//! [`Window`]: the phases of a run, fixed once every connection is open.

use std::time::Instant;

use super::IO_TIMEOUT;
use super::options::BenchOptions;

/// The phases of a run, fixed once every connection is open.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Traffic starts (the warm-up begins).
    pub start: Instant,
    /// The measured window begins.
    pub warm_end: Instant,
    /// The measured window ends: nothing new is sent from here on.
    pub end: Instant,
    /// In-flight work that has not finished by now counts as an error.
    pub hard_end: Instant,
}

impl Window {
    pub(super) fn starting_now(opts: &BenchOptions) -> Window {
        let start = Instant::now();
        let warm_end = start + opts.warmup;
        let end = warm_end + opts.duration;
        Window {
            start,
            warm_end,
            end,
            hard_end: end + IO_TIMEOUT,
        }
    }

    /// True when a request intended at `sent` and completed at `done`
    /// belongs to the measured window.
    pub(super) fn measures(&self, sent: Instant, done: Instant) -> bool {
        sent >= self.warm_end && done <= self.end
    }
}
