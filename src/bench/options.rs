//! The settings of one run: [`Mode`], [`BenchOptions`] with their defaults,
//! and the checks [`run`](super::run) makes before it starts.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::Error;

/// Size of the one echo at each end of a hold: hold mode always echoes this
/// many bytes.
pub(super) const HOLD_ECHO_SIZE: usize = 16;

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
            (None, Mode::Hold) => HOLD_ECHO_SIZE,
            (None, _) => 64,
        }
    }

    /// Rejects settings a run cannot use, naming the flag.
    pub(super) fn validate(&self) -> Result<(), Error> {
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
