//! `ServerConfig`: every server setting, its default, and its validation.
//!
//! `impl Default for ServerConfig` is the one place a default is written; the
//! CLI, environment and TOML layers only override fields of it.

use std::time::Duration;

use crate::{Cidr, Error, TlsSettings};

/// Every setting of a [`Server`](crate::Server).
///
/// Build one with [`Server::builder`](crate::Server::builder) (which starts
/// from [`ServerConfig::default`]) or fill the fields yourself and pass it to
/// [`Builder::config`](crate::Builder::config). A zero [`Duration`] turns a
/// timeout off.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Address to accept on. Defaults to `127.0.0.1:3000`.
    pub listen: String,
    /// Most connections served at once, one worker thread each. Defaults to 512.
    pub workers: usize,
    /// Accepted connections that may wait for a free worker. Defaults to 128.
    pub queue: usize,
    /// A connection that waited this long for a worker is closed. Defaults to 10 s.
    pub queue_timeout: Duration,
    /// Close a connection that sends nothing for this long. Defaults to 5 min.
    pub idle_timeout: Duration,
    /// Close a connection whose peer stops reading for this long. Defaults to 30 s.
    pub write_timeout: Duration,
    /// Close any connection after this long. Defaults to 0 (off).
    pub max_lifetime: Duration,
    /// On shutdown, keep accepting this long with `/readyz` at 503. Defaults to 0.
    pub shutdown_delay: Duration,
    /// How long open connections get to finish on shutdown. Defaults to 30 s.
    pub drain_timeout: Duration,
    /// TCP keepalive idle time; zero turns keepalive off. Defaults to 60 s.
    pub keepalive: Duration,
    /// Set `TCP_NODELAY` on accepted sockets. Defaults to `true`.
    pub nodelay: bool,
    /// Listen backlog. Defaults to 1024.
    pub backlog: u32,
    /// Stack size of each worker thread in bytes. Defaults to
    /// [`DEFAULT_WORKER_STACK_SIZE`].
    pub worker_stack_size: usize,
    /// Address of the admin HTTP endpoint (`/metrics`, `/healthz`, `/readyz`),
    /// or `None` for no endpoint. Defaults to `Some("127.0.0.1:9464")`.
    pub admin: Option<String>,
    /// When not empty, only clients in these networks may connect. Defaults to empty (all).
    pub allow: Vec<Cidr>,
    /// Clients in these networks never may; deny wins over allow. Defaults to empty.
    pub deny: Vec<Cidr>,
    /// Most open connections from one client IP; 0 = no limit. Defaults to 0.
    pub max_conns_per_ip: u32,
    /// New connections per second from one client IP (burst of the same
    /// size); 0 = no limit. Defaults to 0.
    pub conn_rate_per_ip: u32,
    /// Per-connection cap on bytes read per second; 0 = no cap. Defaults to 0.
    pub max_bytes_per_sec: u64,
    /// Expect a PROXY protocol v1/v2 header on every connection and use its
    /// client address. Defaults to `false`.
    pub proxy_protocol: bool,
    /// With `proxy_protocol`, accept connections only from these peers; empty
    /// = from anyone (with a start-up warning). Defaults to empty.
    pub trusted_proxies: Vec<Cidr>,
    /// Serve TLS 1.2/1.3 with these files (and mTLS with a client CA);
    /// `None` = plain TCP. Defaults to `None`.
    pub tls: Option<TlsSettings>,
    /// Longest a TLS handshake or a PROXY header read may take. Defaults to 10 s.
    pub handshake_timeout: Duration,
    /// Log one line per connection close (and a debug line per open).
    /// Defaults to `true`; the admin endpoint's own server turns it off.
    pub log_connections: bool,
}

/// Default stack size of a worker thread: 256 KiB.
///
/// Chosen by measurement: a worker's stack high-water mark (read from
/// `/proc/PID/mem`) is about 9 KiB for a plain echo connection including
/// its close log line, and about 21 KiB for a connection with a TLS 1.3
/// handshake — 256 KiB leaves twelve times that for handlers with buffers
/// of their own. Small enough that ten thousand workers reserve 2.5 GiB of
/// address space rather than 20 GiB with 2 MiB stacks (only touched pages
/// cost memory, and page tables cost an eighth of a page per thread). A stack overflow aborts the whole process, so raise it with
/// `--worker-stack-size` for handlers with deep recursion or large arrays.
pub const DEFAULT_WORKER_STACK_SIZE: usize = 256 * 1024;

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:3000".to_string(),
            workers: 512,
            queue: 128,
            queue_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            write_timeout: Duration::from_secs(30),
            max_lifetime: Duration::ZERO,
            shutdown_delay: Duration::ZERO,
            drain_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(60),
            nodelay: true,
            backlog: 1024,
            worker_stack_size: DEFAULT_WORKER_STACK_SIZE,
            admin: Some("127.0.0.1:9464".to_string()),
            allow: Vec::new(),
            deny: Vec::new(),
            max_conns_per_ip: 0,
            conn_rate_per_ip: 0,
            max_bytes_per_sec: 0,
            proxy_protocol: false,
            trusted_proxies: Vec::new(),
            tls: None,
            handshake_timeout: Duration::from_secs(10),
            log_connections: true,
        }
    }
}

/// The smallest worker stack we accept: below this even an echo loop and the
/// standard library's own frames risk overflowing, which aborts the process.
pub const MIN_WORKER_STACK_SIZE: usize = 64 * 1024;

impl ServerConfig {
    /// Checks the settings that have a lower bound, naming the flag at fault.
    ///
    /// # Errors
    /// [`Error::Config`] when `workers` or `backlog` is 0 or the worker stack
    /// is below [`MIN_WORKER_STACK_SIZE`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.workers == 0 {
            return Err(Error::config("--workers", "must be at least 1, got 0"));
        }
        if self.backlog == 0 {
            return Err(Error::config("--backlog", "must be at least 1, got 0"));
        }
        if self.handshake_timeout.is_zero() {
            return Err(Error::config(
                "--tls-handshake-timeout",
                "must be above 0 (it bounds the TLS handshake and the PROXY header read)",
            ));
        }
        if !self.trusted_proxies.is_empty() && !self.proxy_protocol {
            return Err(Error::config(
                "--trusted-proxy",
                "needs --proxy-protocol (without it no PROXY header is read)",
            ));
        }
        if self.worker_stack_size < MIN_WORKER_STACK_SIZE {
            return Err(Error::config(
                "--worker-stack-size",
                format!(
                    "must be at least {MIN_WORKER_STACK_SIZE} bytes, got {}",
                    self.worker_stack_size
                ),
            ));
        }
        Ok(())
    }
}

/// Parses a duration written as `250ms`, `30s`, `5m`, `1h` (or a bare `0`).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(syncnet::parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(syncnet::parse_duration("5m"), Ok(Duration::from_secs(300)));
/// assert_eq!(syncnet::parse_duration("0"), Ok(Duration::ZERO));
/// assert!(syncnet::parse_duration("5 parsecs").is_err());
/// ```
///
/// # Errors
/// A message saying what is expected, when `text` is not of that form.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let expected = || format!("'{text}' is not a duration (expected e.g. 250ms, 30s, 5m, 1h or 0)");
    let value: u64 = number.parse().map_err(|_| expected())?;
    let millis_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" if value == 0 => 0,
        _ => return Err(expected()),
    };
    value
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(expected)
}

/// Formats a duration the way [`parse_duration`] reads it (for logs and docs).
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0".to_string()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for text in ["0", "250ms", "30s", "5m", "1h"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
    }

    #[test]
    fn bad_durations_are_rejected() {
        for text in [
            "",
            "s",
            "10",
            "1.5s",
            "-1s",
            "10 s",
            "10d",
            "99999999999999999999h",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn validation_names_the_flag() {
        let cfg = ServerConfig {
            workers: 0,
            ..ServerConfig::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("--workers")
        );
        let cfg = ServerConfig {
            backlog: 0,
            ..ServerConfig::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("--backlog")
        );
    }
}
