//! The standard `process_*` metrics (Linux), readable in systemd's sandbox.
//!
//! The `prometheus` crate's process collector supplies them all from
//! `/proc/self` (memory, CPU, threads, open and maximum descriptors), but it
//! dates the process's start from the boot time in `/proc/stat`, which a
//! unit with `ProcSubset=pid` (`deploy/syncnet.service`) hides: there
//! `process_start_time_seconds` would read 0. This module reports that one
//! metric itself, from what `subset=pid` still shows: the process's start
//! in clock ticks since boot (`/proc/self/stat`, field 22), against the
//! time since boot now (`CLOCK_BOOTTIME`, the clock that start is counted
//! on) and the wall clock now:
//!
//! ```text
//! start = now (wall clock) − (boot time now − starttime ticks / CLK_TCK)
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use nix::time::{ClockId, clock_gettime};
use nix::unistd::{SysconfVar, sysconf};
use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, Opts};

/// The name of the metric this module supplies in place of the crate's.
const START_TIME: &str = "process_start_time_seconds";

/// The crate's process collector with `process_start_time_seconds`
/// computed as the module docs say.
pub(crate) struct ProcessMetrics {
    inner: ProcessCollector,
    start_time: Gauge,
}

impl ProcessMetrics {
    /// The metrics of this process. The start time is read once: it cannot
    /// change. When it cannot be read the gauge stays 0, as before.
    pub(crate) fn for_self() -> ProcessMetrics {
        let start_time = Gauge::with_opts(Opts::new(
            START_TIME,
            "Start time of the process since unix epoch in seconds.",
        ))
        .expect("valid metric");
        if let Some(seconds) = start_time_seconds() {
            start_time.set(seconds);
        }
        ProcessMetrics {
            inner: ProcessCollector::for_self(),
            start_time,
        }
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs: Vec<&Desc> = self
            .inner
            .desc()
            .into_iter()
            .filter(|d| d.fq_name != START_TIME)
            .collect();
        descs.extend(self.start_time.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families: Vec<MetricFamily> = self
            .inner
            .collect()
            .into_iter()
            .filter(|f| f.name() != START_TIME)
            .collect();
        families.extend(self.start_time.collect());
        families
    }
}

/// When this process started, in seconds since the Unix epoch, or `None`
/// when `/proc/self/stat` or a clock cannot be read.
fn start_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = start_ticks(&stat)?;
    let per_second = sysconf(SysconfVar::CLK_TCK).ok()??;
    let since_boot = clock_gettime(ClockId::CLOCK_BOOTTIME).ok()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let since_boot = since_boot.tv_sec() as f64 + since_boot.tv_nsec() as f64 / 1e9;
    let age = since_boot - ticks as f64 / per_second as f64;
    Some(now.as_secs_f64() - age.max(0.0))
}

/// Field 22 of a `/proc/PID/stat` line: the start time in clock ticks since
/// boot. The command name (field 2) is in parentheses and may hold spaces
/// and parentheses itself, so fields are counted after the last `)`.
fn start_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Field 3 (the state) is the first one after the name.
    after_name.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_ticks_skips_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 9 0 \
                    123456 123456789 600 18446744073709551615";
        assert_eq!(start_ticks(stat), Some(123456));
        assert_eq!(start_ticks("4242 (truncated"), None);
    }

    #[test]
    fn this_process_started_a_moment_ago() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = start_time_seconds().expect("readable here");
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "{start} vs {now}"
        );
    }
}
