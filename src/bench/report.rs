//! `BenchReport`: what one run measured, as a human summary or one JSON object.

use std::fmt;
use std::sync::atomic::Ordering;

use super::hold::Held;
use super::options::{BenchOptions, Mode};
use super::stats::Stats;

/// The result of one [`run`](super::run), covering the measured window only
/// (never the warm-up).
///
/// Its `Display` is the human summary; [`BenchReport::to_json`] gives the
/// JSON object of `syncnet bench --json` (`docs/reference.md`, "Flags",
/// `syncnet bench`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct BenchReport {
    /// The mode that ran.
    pub mode: Mode,
    /// Connections asked for (`connect_errors` of them may have failed).
    pub connections: usize,
    /// Requests whose echo came back intact inside the measured window. Bulk
    /// mode: chunks' worth of bytes echoed in the window. Hold mode: the
    /// final echoes, one per held connection.
    pub requests: u64,
    /// `requests` per second of the measured window (0 in hold mode).
    pub rps: f64,
    /// Echoed bytes read back per second of the measured window, in
    /// 10^6 bytes per second (0 in hold mode).
    pub mbps: f64,
    /// Median round-trip latency in µs, from the intended send time when
    /// `rate` is set (0 in bulk mode, which measures no latency).
    pub p50_us: f64,
    /// 90th percentile latency in µs.
    pub p90_us: f64,
    /// 99th percentile latency in µs.
    pub p99_us: f64,
    /// 99.9th percentile latency in µs.
    pub p999_us: f64,
    /// Highest latency in µs.
    pub max_us: f64,
    /// Echoes that were wrong, short or missing: a mismatched byte, end of
    /// input, an I/O error or a timeout. Each ends its connection. Counted
    /// over the whole run, warm-up included, so no error is ever hidden.
    pub errors: u64,
    /// Connections that could not be opened.
    pub connect_errors: u64,
    /// Hold mode: connections open whose first echo came back intact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established: Option<usize>,
    /// Hold mode: seconds it took to open all of them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub establish_secs: Option<f64>,
    /// Seconds of the measured window (hold mode: of the hold).
    #[serde(skip)]
    window_secs: f64,
    /// Why the first failed connection failed (shown in the text report).
    #[serde(skip)]
    first_connect_error: Option<String>,
}

fn round_to(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

impl BenchReport {
    /// Pingpong and bulk: the counters of the measured window.
    pub(super) fn measured(opts: &BenchOptions, stats: &Stats) -> BenchReport {
        let secs = opts.duration.as_secs_f64();
        let histogram = stats.histogram();
        let (requests, bytes) = match opts.mode {
            Mode::Bulk => {
                let bytes = stats.bytes_measured.load(Ordering::Relaxed);
                (bytes / opts.effective_size() as u64, bytes)
            }
            _ => {
                let requests = histogram.len();
                (requests, requests * opts.effective_size() as u64)
            }
        };
        let mut report = BenchReport::empty(opts, stats, secs);
        report.requests = requests;
        report.rps = round_to(requests as f64 / secs, 1);
        report.mbps = round_to(bytes as f64 / secs / 1e6, 3);
        report.set_latency(stats);
        report
    }

    /// Hold mode: the connect phase and the final echoes.
    pub(super) fn held(opts: &BenchOptions, stats: &Stats, held: Held) -> BenchReport {
        let mut report = BenchReport::empty(opts, stats, opts.duration.as_secs_f64());
        report.requests = stats.histogram().len();
        report.set_latency(stats);
        report.established = Some(held.established);
        report.establish_secs = Some(round_to(held.establish_secs, 3));
        report
    }

    fn empty(opts: &BenchOptions, stats: &Stats, window_secs: f64) -> BenchReport {
        BenchReport {
            mode: opts.mode,
            connections: opts.connections,
            requests: 0,
            rps: 0.0,
            mbps: 0.0,
            p50_us: 0.0,
            p90_us: 0.0,
            p99_us: 0.0,
            p999_us: 0.0,
            max_us: 0.0,
            errors: stats.errors.load(Ordering::Relaxed),
            connect_errors: stats.connect_errors.load(Ordering::Relaxed),
            established: None,
            establish_secs: None,
            window_secs,
            first_connect_error: stats.first_connect_error(),
        }
    }

    fn set_latency(&mut self, stats: &Stats) {
        let histogram = stats.histogram();
        if histogram.is_empty() {
            return;
        }
        let us = |nanos: u64| round_to(nanos as f64 / 1000.0, 1);
        self.p50_us = us(histogram.value_at_quantile(0.50));
        self.p90_us = us(histogram.value_at_quantile(0.90));
        self.p99_us = us(histogram.value_at_quantile(0.99));
        self.p999_us = us(histogram.value_at_quantile(0.999));
        self.max_us = us(histogram.max());
    }

    /// The report as one JSON object with the keys listed in
    /// `docs/reference.md` ("Flags", `syncnet bench`): `mode`,
    /// `connections`, `requests`, `rps`, `mbps`, `p50_us`, `p90_us`,
    /// `p99_us`, `p999_us`, `max_us`, `errors`, `connect_errors`, and in hold
    /// mode `established` and `establish_secs`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The exit code of this run (`docs/reference.md`, "Exit codes"): 1 if
    /// any error (a wrong echo or a failed connect) was counted, else 0.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.errors > 0 || self.connect_errors > 0)
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} with {} connections, {:.1}s measured",
            self.mode, self.connections, self.window_secs
        )?;
        if let (Some(established), Some(secs)) = (self.established, self.establish_secs) {
            writeln!(
                f,
                "  established  {established} of {} in {secs:.3}s",
                self.connections
            )?;
        }
        let unit = match self.mode {
            Mode::Bulk => "chunks",
            Mode::Hold => "final echoes",
            _ => "requests",
        };
        writeln!(f, "  {unit:<11}  {}", self.requests)?;
        if self.mode != Mode::Hold {
            writeln!(f, "  requests/s   {:.1}", self.rps)?;
            writeln!(f, "  MB/s         {:.3} (echoed, 10^6 bytes)", self.mbps)?;
        }
        if self.mode == Mode::Bulk {
            writeln!(f, "  latency      not measured in bulk mode")?;
        } else {
            writeln!(
                f,
                "  latency µs   p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
                self.p50_us, self.p90_us, self.p99_us, self.p999_us, self.max_us
            )?;
        }
        write!(
            f,
            "  errors       {} (connect errors {})",
            self.errors, self.connect_errors
        )?;
        if let Some(first) = &self.first_connect_error {
            write!(f, "\n  first connect error: {first}")?;
        }
        Ok(())
    }
}
