//! The live progress line on stderr.

use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::options::{BenchOptions, Mode};
use super::stats::Stats;
use super::window::Window;

/// How often the live progress line is redrawn.
pub(super) const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// The live progress line on stderr (when enabled).
pub(crate) struct Progress {
    enabled: bool,
}

impl Progress {
    pub(super) fn new(enabled: bool) -> Progress {
        Progress { enabled }
    }

    /// Whether the line is shown at all.
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    pub(super) fn show(&self, line: fmt::Arguments<'_>) {
        if self.enabled {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
    }

    pub(super) fn connecting(&self, done: usize, total: usize) {
        if done == total || done.is_multiple_of(100) {
            self.show(format_args!("connecting: {done}/{total}"));
        }
    }

    /// Redraws the line about 4 times a second until `window.end`; returns
    /// at once when progress is off.
    pub(super) fn until(&self, window: Window, stats: &Stats, opts: &BenchOptions) {
        if !self.enabled {
            return;
        }
        let mut last = (
            Instant::now(),
            stats.completed.load(Ordering::Relaxed),
            stats.bytes_total.load(Ordering::Relaxed),
        );
        loop {
            let now = Instant::now();
            if now >= window.end {
                break;
            }
            thread::sleep(PROGRESS_EVERY.min(window.end - now));
            let now = Instant::now();
            let completed = stats.completed.load(Ordering::Relaxed);
            let bytes = stats.bytes_total.load(Ordering::Relaxed);
            let secs = (now - last.0).as_secs_f64().max(1e-9);
            let rps = (completed - last.1) as f64 / secs;
            let mbps = (bytes - last.2) as f64 / secs / 1e6;
            last = (now, completed, bytes);
            let phase = if now < window.warm_end {
                "warm-up".to_string()
            } else {
                let left = window.end.saturating_duration_since(now).as_secs_f64();
                format!("{left:.1}s left")
            };
            let errors = stats.errors.load(Ordering::Relaxed);
            if opts.mode == Mode::Bulk {
                self.show(format_args!(
                    "bulk [{phase}] {:.1} MB echoed, {mbps:.1} MB/s, {errors} errors",
                    bytes as f64 / 1e6
                ));
            } else {
                self.show(format_args!(
                    "{} [{phase}] {completed} requests, {rps:.0}/s, {errors} errors",
                    opts.mode
                ));
            }
        }
    }

    pub(super) fn clear(&self) {
        if self.enabled {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}

/// True when stderr is a terminal: the binary's default for `progress`.
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}
