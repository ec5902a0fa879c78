//! `syncnet bench`: a load generator for echo-like services (its flags, JSON
//! keys and exit code: `docs/reference.md`, "Flags", `syncnet bench`).
//!
//! [`run`] opens `connections` connections to a server that echoes every
//! byte, drives them in one of three [`Mode`]s, checks **every echoed byte**,
//! and returns a [`BenchReport`] covering the measured window only:
//!
//! ```text
//!  connect all ──▶ warm-up (not counted) ──▶ measured window ──▶ drain (≤ 5 s) ──▶ report
//! ```
//!
//! * [`Mode::Pingpong`]: each connection sends `size` bytes, reads the echo
//!   back and compares it, `pipeline` requests in flight. Every request's
//!   payload differs from the one before (a pattern shifted per request), so
//!   a stale or repeated reply is caught. Latency goes into a log-linear histogram (`latency.rs`).
//! * [`Mode::Bulk`]: per connection a writer streams `size`-byte chunks while
//!   a reader checks the echoed stream against a position-dependent pattern
//!   (`offset % 251`); after the window the writer half-closes and the reader
//!   drains to end of input, and every byte written must have come back.
//! * [`Mode::Hold`]: opens the connections with one small echo each, keeps
//!   them idle for the duration, then does one more echo on each.
//!
//! With `rate > 0` (open loop), requests are sent on a fixed schedule and
//! latency runs from the *intended* send time, so a stalled server cannot
//! hide its stall by slowing the client down (no coordinated omission).
//!
//! ## Threads
//!
//! Connections are opened first (at most 64 connects in flight), then the
//! window starts with all of them open.
//!
//! * Closed-loop pingpong on Linux runs on epoll loops (`event_loop.rs`),
//!   one per core the process may use, each driving its share of the
//!   connections. A thread per connection costs the client a context switch
//!   per request: on a 2-core machine it drove only about 2/3 of the load
//!   of an epoll-based generator, and the server was not the limit.
//! * Open-loop pingpong (`rate > 0`) and bulk use one thread per connection
//!   with blocking I/O: `thread::sleep` paces requests to the microsecond,
//!   which epoll's millisecond timeout cannot. A `pipeline` above 1, and
//!   bulk mode, add a writer thread on the same socket (`&TcpStream` is
//!   `Read + Write`). Other systems run closed-loop pingpong this way too.
//! * Hold mode needs no thread per connection: the openers check each
//!   connection, and a few threads do the final echoes.
//!
//! ## Where TLS goes
//!
//! Every connection is made by one function, [`Target::open`]; a TLS client
//! wraps the stream there. Hold mode and the one-thread-per-connection
//! pingpong with `pipeline` 1 only need `Read + Write`. The epoll loop needs
//! a non-blocking stream, and bulk mode and deeper pipelines read and write
//! from two threads at once: with TLS those would need a TLS stream that
//! handles `WouldBlock`, or its own split.
//!
//! ## Files
//!
//! * `options.rs`: [`Mode`], [`BenchOptions`] and their checks.
//! * `connect.rs`: [`Target`] and opening a run's connections.
//! * `window.rs`, `stats.rs`: the phases of a run, and what it counts.
//! * `threads.rs`, `stream.rs`, `progress.rs`: connection threads that start
//!   together, per-connection I/O, the live progress line.
//! * `pingpong.rs` (with `event_loop.rs`, `requests.rs`), `bulk.rs`,
//!   `hold.rs`: the three modes; `report.rs`: [`BenchReport`].

mod bulk;
mod connect;
#[cfg(target_os = "linux")]
mod event_loop;
mod hold;
mod latency;
mod options;
mod pingpong;
mod progress;
mod report;
mod requests;
mod stats;
mod stream;
mod threads;
mod window;

use std::time::Duration;

use crate::Error;

pub use connect::Target;
pub use options::{BenchOptions, Mode};
pub use progress::stderr_is_terminal;
pub use report::BenchReport;

/// How long one connect, read or write may wait before it counts as an
/// error; also how long in-flight work may run on after the window.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one benchmark and reports on its measured window.
///
/// Blocks for about `warmup + duration` (hold mode: the time to connect,
/// plus `duration`), plus at most 5 s for in-flight work to finish.
/// Problems with the server are not `Err`: they are counted in the report's
/// `errors` and `connect_errors` (see [`BenchReport::exit_code`]).
///
/// # Errors
/// [`Error::Config`] for a zero `connections`, `duration`, `size` or
/// `pipeline`, TLS with another mode or a pipeline, or unusable TLS files; [`Error::Address`] when `connect` does not resolve;
/// [`Error::Thread`] when the operating system refuses a thread.
pub fn run(opts: &BenchOptions) -> Result<BenchReport, Error> {
    opts.validate()?;
    let target = Target::resolve(&opts.connect)?;
    connect::raise_fd_limit(opts.connections);
    let stats = stats::Stats::new();
    let progress = progress::Progress::new(opts.progress);
    let report = match opts.mode {
        Mode::Pingpong if opts.tls.is_some() => {
            pingpong::run_tls(opts, &stats, &progress)?;
            report::BenchReport::measured(opts, &stats)
        }
        Mode::Pingpong => {
            let (conns, _) = connect::open_all(opts, &target, &stats, &progress, |_, _| true)?;
            pingpong::run(opts, conns, &stats, &progress)?;
            report::BenchReport::measured(opts, &stats)
        }
        Mode::Bulk => {
            let (conns, _) = connect::open_all(opts, &target, &stats, &progress, |_, _| true)?;
            threads::start_together(opts, conns, &stats, &progress, |(_, stream), window| {
                bulk::connection(stream, window, opts, &stats);
            })?;
            report::BenchReport::measured(opts, &stats)
        }
        Mode::Hold => {
            let held = hold::run(opts, &target, &stats, &progress)?;
            report::BenchReport::held(opts, &stats, held)
        }
    };
    progress.clear();
    Ok(report)
}
