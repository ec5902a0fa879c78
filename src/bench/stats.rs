//! What a run counts: [`Stats`], shared by every connection, and
//! [`Recorder`], one connection's lock-free view of it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::latency::Latencies;
use super::window::Window;

/// Counters shared by every connection thread of one run.
pub(crate) struct Stats {
    /// Latency of each measured request, in nanoseconds.
    pub(super) latency: Mutex<Latencies>,
    /// Requests (or bulk chunks) completed so far, warm-up included: for the progress line.
    pub(super) completed: AtomicU64,
    /// Echoed bytes read back so far, warm-up included: for the progress line.
    pub(super) bytes_total: AtomicU64,
    /// Echoed bytes read back inside the measured window (bulk mode).
    pub(super) bytes_measured: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) connect_errors: AtomicU64,
    /// The first connect error's message, so a run against a dead port says why.
    first_connect_error: Mutex<Option<String>>,
}

impl Stats {
    pub(super) fn new() -> Stats {
        Stats {
            latency: Mutex::new(Latencies::default()),
            completed: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            bytes_measured: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
            first_connect_error: Mutex::new(None),
        }
    }

    /// Counts a failed connection; the first one's `why` is kept.
    pub(super) fn connect_error(&self, why: &dyn std::fmt::Display) {
        self.connect_errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_connect_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(why.to_string());
        }
    }

    /// The first connect error's message, if any connection failed.
    pub(super) fn first_connect_error(&self) -> Option<String> {
        self.first_connect_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records round-trip times measured outside a [`Recorder`] (hold mode).
    pub(super) fn record_all(&self, latencies: &[Duration]) {
        let mut histogram = match self.latency.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        for took in latencies {
            let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            histogram.record(nanos.max(1));
        }
        self.completed
            .fetch_add(latencies.len() as u64, Ordering::Relaxed);
    }

    pub(super) fn histogram(&self) -> Latencies {
        match self.latency.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// One connection's view of [`Stats`]: latencies are buffered locally and
/// merged under the lock in batches, so the hot path takes no lock.
pub(crate) struct Recorder<'a> {
    stats: &'a Stats,
    window: Window,
    size: u64,
    pending: Vec<u64>,
    completed: u64,
    last_flush: Instant,
}

impl<'a> Recorder<'a> {
    const BATCH: usize = 1024;
    const FLUSH_EVERY: Duration = Duration::from_millis(100);

    pub(super) fn new(stats: &'a Stats, window: Window, size: usize) -> Recorder<'a> {
        Recorder {
            stats,
            window,
            size: size as u64,
            pending: Vec::with_capacity(Self::BATCH),
            completed: 0,
            last_flush: window.start,
        }
    }

    /// One verified request, intended at `sent`, its echo complete at `done`.
    pub(super) fn request(&mut self, sent: Instant, done: Instant) {
        self.completed += 1;
        if self.window.measures(sent, done) {
            let nanos = u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX);
            self.pending.push(nanos.max(1));
        }
        if self.pending.len() >= Self::BATCH || done - self.last_flush >= Self::FLUSH_EVERY {
            self.flush(done);
        }
    }

    fn flush(&mut self, now: Instant) {
        self.last_flush = now;
        let stats = self.stats;
        stats.completed.fetch_add(self.completed, Ordering::Relaxed);
        stats
            .bytes_total
            .fetch_add(self.completed * self.size, Ordering::Relaxed);
        self.completed = 0;
        if self.pending.is_empty() {
            return;
        }
        let mut histogram = match stats.latency.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        for &nanos in &self.pending {
            histogram.record(nanos);
        }
        drop(histogram);
        self.pending.clear();
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.flush(Instant::now());
    }
}
