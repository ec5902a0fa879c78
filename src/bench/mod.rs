//! `syncnet bench`: a load generator for echo-like services (SPEC §1.5).
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
//!   a stale or repeated reply is caught. Latency goes into an HDR histogram.
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

mod bulk;
#[cfg(target_os = "linux")]
mod event_loop;
mod hold;
mod pingpong;
mod report;
mod requests;

use std::fmt;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use hdrhistogram::Histogram;

use crate::Error;

pub use report::BenchReport;

/// How long one connect, read or write may wait before it counts as an
/// error; also how long in-flight work may run on after the window.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Stack of each connection thread: the buffers live on the heap.
const THREAD_STACK: usize = 256 * 1024;

/// Threads that open the connections: at most this many connects are in
/// flight at once.
const OPENERS: usize = 64;

/// How often the live progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What each connection does (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Mode {
    /// Send `size` bytes, read the echo back, repeat; measures requests/s and latency.
    #[default]
    Pingpong,
    /// Stream chunks one way while reading the echo the other; measures MB/s.
    Bulk,
    /// Open the connections, keep them idle, check they still echo at the end.
    Hold,
}

impl Mode {
    /// The name as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Pingpong => "pingpong",
            Mode::Bulk => "bulk",
            Mode::Hold => "hold",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    /// ```
    /// use syncnet::bench::Mode;
    /// assert_eq!("bulk".parse::<Mode>(), Ok(Mode::Bulk));
    /// assert!("ping".parse::<Mode>().is_err());
    /// ```
    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "pingpong" => Ok(Mode::Pingpong),
            "bulk" => Ok(Mode::Bulk),
            "hold" => Ok(Mode::Hold),
            _ => Err(format!(
                "'{text}' is not a mode (expected pingpong, bulk or hold)"
            )),
        }
    }
}

/// Settings of one benchmark run (the flags of `syncnet bench`).
///
/// ```no_run
/// use std::time::Duration;
/// use syncnet::bench::{BenchOptions, Mode};
///
/// let report = syncnet::bench::run(&BenchOptions {
///     connect: "127.0.0.1:3000".into(),
///     connections: 16,
///     duration: Duration::from_secs(5),
///     mode: Mode::Pingpong,
///     ..BenchOptions::default()
/// })?;
/// println!("{report}");
/// std::process::exit(report.exit_code());
/// # Ok::<(), syncnet::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Server address (`--connect`), resolved once at the start; the first
    /// address it resolves to is used. Defaults to `127.0.0.1:3000`.
    pub connect: String,
    /// Connections opened at the start and used for the whole run
    /// (`-c, --connections`). Defaults to 50.
    pub connections: usize,
    /// Length of the measured window, after the warm-up (`-d, --duration`);
    /// in hold mode, how long the connections are held. Defaults to 10 s.
    pub duration: Duration,
    /// Request size in bytes in pingpong mode, chunk size in bulk mode
    /// (`--size`); hold mode always echoes 16 bytes. `None` means the mode's
    /// default: 64 for pingpong, 65536 for bulk. Defaults to `None`.
    pub size: Option<usize>,
    /// What each connection does (`--mode`). Defaults to [`Mode::Pingpong`].
    pub mode: Mode,
    /// Pingpong requests in flight per connection (`--pipeline`). Defaults to 1.
    pub pipeline: usize,
    /// Pingpong requests per second in total over all connections
    /// (`--rate`), each connection sending `rate / connections` per second
    /// on a fixed schedule, latency measured from the intended send time.
    /// 0 is a closed loop: each connection sends as soon as it can.
    /// Defaults to 0.
    pub rate: u64,
    /// Time before the measured window during which traffic runs but nothing
    /// is counted (`--warmup`); not used in hold mode. Defaults to 1 s.
    pub warmup: Duration,
    /// Show a live progress line on stderr, redrawn about 4 times a second
    /// and cleared at the end (the binary sets this when stderr is a
    /// terminal). Defaults to `false`.
    pub progress: bool,
    /// Speak TLS (`--tls`, `--tls-ca`, `--tls-cert`/`--tls-key`,
    /// `--tls-server-name`): pingpong with `pipeline` 1, one thread per
    /// connection. Defaults to `None` (plain TCP).
    pub tls: Option<crate::ClientTls>,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            connect: "127.0.0.1:3000".to_string(),
            connections: 50,
            duration: Duration::from_secs(10),
            size: None,
            mode: Mode::Pingpong,
            pipeline: 1,
            rate: 0,
            warmup: Duration::from_secs(1),
            progress: false,
            tls: None,
        }
    }
}

impl BenchOptions {
    /// The request or chunk size this run uses: `size`, or the mode's default.
    pub fn effective_size(&self) -> usize {
        match (self.size, self.mode) {
            (Some(size), _) => size,
            (None, Mode::Bulk) => 65536,
            (None, Mode::Hold) => hold::ECHO_SIZE,
            (None, _) => 64,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        if self.connections == 0 {
            return Err(Error::config("--connections", "must be at least 1"));
        }
        if self.duration.is_zero() {
            return Err(Error::config("--duration", "must be longer than 0"));
        }
        if self.size == Some(0) {
            return Err(Error::config("--size", "must be at least 1 byte"));
        }
        if self.pipeline == 0 {
            return Err(Error::config("--pipeline", "must be at least 1"));
        }
        if self.tls.is_some() && (self.mode != Mode::Pingpong || self.pipeline > 1) {
            return Err(Error::config(
                "--tls",
                "bench speaks TLS in --mode pingpong with --pipeline 1 only",
            ));
        }
        Ok(())
    }
}

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
    raise_fd_limit(opts.connections);
    let stats = Stats::new();
    let progress = Progress::new(opts.progress);
    let report = match opts.mode {
        Mode::Pingpong if opts.tls.is_some() => {
            pingpong::run_tls(opts, &stats, &progress)?;
            report::BenchReport::measured(opts, &stats)
        }
        Mode::Pingpong => {
            let (conns, _) = open_all(opts, &target, &stats, &progress, |_, _| true)?;
            pingpong::run(opts, conns, &stats, &progress)?;
            report::BenchReport::measured(opts, &stats)
        }
        Mode::Bulk => {
            let (conns, _) = open_all(opts, &target, &stats, &progress, |_, _| true)?;
            start_together(opts, conns, &stats, &progress, |(_, stream), window| {
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

/// Where the plain-TCP connections go; [`Target::open`] is the one place
/// such a connection is made (TLS runs connect through
/// [`Client::connect_tls`](crate::Client::connect_tls) instead).
#[derive(Debug, Clone)]
pub struct Target {
    addr: SocketAddr,
}

impl Target {
    /// Resolves `connect` (the `--connect` value) to its first address.
    ///
    /// # Errors
    /// [`Error::Address`] when it does not resolve.
    pub fn resolve(connect: &str) -> Result<Target, Error> {
        let bad = || Error::Address {
            setting: "--connect".into(),
            value: connect.to_string(),
        };
        let addr = connect
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        Ok(Target { addr })
    }

    /// The address connections go to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens one connection ready for the benchmark: connected within 5 s,
    /// `TCP_NODELAY` on, reads and writes bounded by a 5 s timeout.
    ///
    /// # Errors
    /// The operating system's error (counted in `connect_errors`).
    pub fn open(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(stream)
    }
}

/// Each connection needs one descriptor: raise the soft limit when the
/// run would not fit under it (best effort; a failed connect is counted).
fn raise_fd_limit(connections: usize) {
    let wanted = connections as u64 + 64;
    let current = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
    if current < wanted {
        let _ = rlimit::increase_nofile_limit(wanted);
    }
}

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
    fn starting_now(opts: &BenchOptions) -> Window {
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
    fn measures(&self, sent: Instant, done: Instant) -> bool {
        sent >= self.warm_end && done <= self.end
    }
}

/// Counters shared by every connection thread of one run.
pub(crate) struct Stats {
    /// Latency of each measured request, in nanoseconds.
    latency: Mutex<Histogram<u64>>,
    /// Requests (or bulk chunks) completed so far, warm-up included: for the progress line.
    completed: AtomicU64,
    /// Echoed bytes read back so far, warm-up included: for the progress line.
    bytes_total: AtomicU64,
    /// Echoed bytes read back inside the measured window (bulk mode).
    bytes_measured: AtomicU64,
    errors: AtomicU64,
    connect_errors: AtomicU64,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            latency: Mutex::new(new_histogram()),
            completed: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            bytes_measured: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            connect_errors: AtomicU64::new(0),
        }
    }

    fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records round-trip times measured outside a [`Recorder`] (hold mode).
    fn record_all(&self, latencies: &[Duration]) {
        let mut histogram = match self.latency.lock() {
            Ok(h) => h,
            Err(poisoned) => poisoned.into_inner(),
        };
        for took in latencies {
            let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            histogram.saturating_record(nanos.max(1));
        }
        self.completed
            .fetch_add(latencies.len() as u64, Ordering::Relaxed);
    }

    fn histogram(&self) -> Histogram<u64> {
        match self.latency.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// 1 ns to 60 s at 3 significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid")
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

    fn new(stats: &'a Stats, window: Window, size: usize) -> Recorder<'a> {
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
    fn request(&mut self, sent: Instant, done: Instant) {
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
            histogram.saturating_record(nanos);
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

/// Marks one connection failed, so that its writer and reader threads count
/// one error between them, not one each.
#[derive(Default)]
pub(crate) struct Failure(AtomicBool);

impl Failure {
    /// Counts the error unless this connection already failed; shuts the
    /// socket down so the other thread on it stops at once.
    fn fail(&self, stats: &Stats, stream: &TcpStream) {
        if !self.0.swap(true, Ordering::Relaxed) {
            stats.error();
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }

    fn failed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Reads exactly `buf.len()` bytes; end of input, an error or passing
/// `hard_end` is an error.
fn read_exact_until(mut stream: impl Read, buf: &mut [u8], hard_end: Instant) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if got < buf.len() && Instant::now() > hard_end {
            return Err(io::ErrorKind::TimedOut.into());
        }
    }
    Ok(())
}

/// Opens `opts.connections` connections from a few opener threads (at most
/// 64 connects in flight); `check` may test each new one (hold mode's first
/// echo) and reject it. Returns the connections with their numbers, and
/// when the last opener finished.
fn open_all(
    opts: &BenchOptions,
    target: &Target,
    stats: &Stats,
    progress: &Progress,
    check: impl Fn(usize, &mut TcpStream) -> bool + Sync,
) -> Result<(Vec<(usize, TcpStream)>, Instant), Error> {
    let n = opts.connections;
    let next = AtomicUsize::new(0);
    let tried = AtomicUsize::new(0);
    let mut opened = Vec::with_capacity(n);
    let mut finished = Instant::now();
    thread::scope(|scope| -> Result<(), Error> {
        let mut openers = Vec::new();
        for i in 0..n.min(OPENERS) {
            let (next, tried, check) = (&next, &tried, &check);
            let open_some = move || {
                let mut mine = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= n {
                        return (mine, Instant::now());
                    }
                    match target.open() {
                        Ok(mut stream) => {
                            if check(index, &mut stream) {
                                mine.push((index, stream));
                            }
                        }
                        Err(_) => {
                            stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tried.fetch_add(1, Ordering::Relaxed);
                }
            };
            let spawned = thread::Builder::new()
                .name(format!("bench-open-{i}"))
                .stack_size(THREAD_STACK)
                .spawn_scoped(scope, open_some);
            match spawned {
                Ok(handle) => openers.push(handle),
                Err(source) => {
                    // The others stop taking work.
                    next.store(n, Ordering::Relaxed);
                    return Err(Error::Thread {
                        what: "bench opener",
                        source,
                    });
                }
            }
        }
        while progress.enabled && openers.iter().any(|h| !h.is_finished()) {
            progress.connecting(tried.load(Ordering::Relaxed), n);
            thread::sleep(Duration::from_millis(20));
        }
        for opener in openers {
            // An opener that panicked loses its connections: not established.
            if let Ok((mine, done)) = opener.join() {
                opened.extend(mine);
                finished = finished.max(done);
            }
        }
        Ok(())
    })?;
    opened.sort_unstable_by_key(|(index, _)| *index);
    Ok((opened, finished))
}

/// Starts one thread per item of `work`, fixes the window once all exist,
/// and lets them all go at once with it; shows progress until the window
/// ends and returns when every thread has finished.
fn start_together<T: Send>(
    opts: &BenchOptions,
    work: Vec<T>,
    stats: &Stats,
    progress: &Progress,
    body: impl Fn(T, Window) + Sync,
) -> Result<(), Error> {
    if work.is_empty() {
        return Ok(());
    }
    let n = work.len();
    thread::scope(|scope| {
        // Dropped on return: a thread still waiting then exits without running.
        let (go_tx, go_rx) = bounded::<Window>(n);
        for (i, item) in work.into_iter().enumerate() {
            let (go_rx, body) = (go_rx.clone(), &body);
            thread::Builder::new()
                .name(format!("bench-{i}"))
                .stack_size(THREAD_STACK)
                .spawn_scoped(scope, move || {
                    if let Ok(window) = go_rx.recv() {
                        body(item, window);
                    }
                })
                .map_err(|source| Error::Thread {
                    what: "bench connection",
                    source,
                })?;
        }
        let window = Window::starting_now(opts);
        for _ in 0..n {
            let _ = go_tx.send(window);
        }
        progress.until(window, stats, opts);
        Ok(())
    })
}

/// The live progress line on stderr (when enabled).
pub(crate) struct Progress {
    enabled: bool,
}

impl Progress {
    fn new(enabled: bool) -> Progress {
        Progress { enabled }
    }

    fn show(&self, line: fmt::Arguments<'_>) {
        if self.enabled {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        }
    }

    fn connecting(&self, done: usize, total: usize) {
        if done == total || done.is_multiple_of(100) {
            self.show(format_args!("connecting: {done}/{total}"));
        }
    }

    /// Redraws the line about 4 times a second until `window.end`; returns
    /// at once when progress is off.
    fn until(&self, window: Window, stats: &Stats, opts: &BenchOptions) {
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

    fn clear(&self) {
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
