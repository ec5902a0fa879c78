//! The upstreams of a [`Proxy`](super::Proxy): their state (active
//! connections, marked down until), their metrics, the choice of one for a
//! new client (least connections or round robin) and the connect with
//! failover.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::Balance;
use crate::Error;

/// One upstream: its address as given, and what the proxy knows of it.
#[derive(Debug)]
pub(super) struct Upstream {
    /// `host:port` as given to [`ProxyBuilder::upstream`](super::ProxyBuilder::upstream);
    /// the `upstream` label and log field.
    pub addr: String,
    /// Proxied connections open to it now.
    active: AtomicUsize,
    /// Skipped until then, after a failed connect.
    down_until: Mutex<Option<Instant>>,
    active_gauge: IntGauge,
    failures: IntCounter,
    up: IntGauge,
}

/// The per-upstream metrics, labelled `upstream`.
#[derive(Debug, Clone)]
pub(super) struct UpstreamMetrics {
    active: IntGaugeVec,
    failures: IntCounterVec,
    up: IntGaugeVec,
}

impl UpstreamMetrics {
    /// Every metric, registered nowhere yet.
    pub(super) fn new() -> UpstreamMetrics {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("syncnet");
        let labels = &["upstream"];
        UpstreamMetrics {
            active: IntGaugeVec::new(
                opts(
                    "upstream_connections_active",
                    "Proxied connections open to each upstream.",
                ),
                labels,
            )
            .expect("valid metric"),
            failures: IntCounterVec::new(
                opts(
                    "upstream_connect_failures_total",
                    "Connects to each upstream that failed or timed out.",
                ),
                labels,
            )
            .expect("valid metric"),
            up: IntGaugeVec::new(
                opts(
                    "upstream_up",
                    "1 when the upstream is used, 0 while it is marked down after a failed connect.",
                ),
                labels,
            )
            .expect("valid metric"),
        }
    }

    /// Registers the three metrics in `registry`, or none of them.
    ///
    /// # Errors
    /// [`Error::Config`] naming the metric already registered (one proxy per registry).
    pub(super) fn register(&self, registry: &Registry) -> Result<(), Error> {
        crate::metrics::register_all(
            registry,
            || self.collectors().into_iter().collect(),
            "ProxyBuilder::metrics",
            "Proxy",
        )
    }

    /// Handles on every metric, as the registry takes them.
    fn collectors(&self) -> [Box<dyn Collector>; 3] {
        [
            Box::new(self.active.clone()),
            Box::new(self.failures.clone()),
            Box::new(self.up.clone()),
        ]
    }

    /// The upstream `addr`'s metrics, at their starting values.
    pub(super) fn upstream(&self, addr: &str) -> Upstream {
        let up = self.up.with_label_values(&[addr]);
        up.set(1);
        Upstream {
            addr: addr.to_string(),
            active: AtomicUsize::new(0),
            down_until: Mutex::new(None),
            active_gauge: self.active.with_label_values(&[addr]),
            failures: self.failures.with_label_values(&[addr]),
            up,
        }
    }
}

impl Upstream {
    /// True while the upstream is marked down at `now`.
    fn is_down(&self, now: Instant) -> bool {
        let mut down = self.down_until.lock().unwrap_or_else(|p| p.into_inner());
        match *down {
            Some(until) if now < until => true,
            Some(_) => {
                *down = None;
                self.up.set(1);
                false
            }
            None => false,
        }
    }

    fn mark_down(&self, for_how_long: Duration) {
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + for_how_long);
        self.failures.inc();
        self.up.set(0);
    }

    fn mark_up(&self) {
        *self.down_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.up.set(1);
    }

    /// Connects to the upstream's first address that accepts within `timeout`
    /// (the whole attempt, all resolved addresses together).
    fn connect(&self, timeout: Duration) -> io::Result<TcpStream> {
        let deadline = Instant::now() + timeout;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "resolves to no address");
        for addr in self.addr.to_socket_addrs()? {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

/// A connection to an upstream, counted in its `active` while it lives.
#[derive(Debug)]
pub(super) struct Lease<'a> {
    pub upstream: &'a Upstream,
    pub stream: TcpStream,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.upstream.active.fetch_sub(1, Ordering::Relaxed);
        self.upstream.active_gauge.dec();
    }
}

/// The order in which to try the upstreams for one client: the ones not
/// marked down, by `balance`; when every one is marked down, all of them
/// (trying beats refusing every client until one comes back).
pub(super) fn order(upstreams: &[Upstream], balance: Balance, turn: usize) -> Vec<usize> {
    let now = Instant::now();
    let n = upstreams.len();
    // Rotating the start spreads ties (and is the whole of round robin).
    let rotated = (0..n).map(|i| (turn + i) % n);
    let mut usable: Vec<usize> = rotated
        .clone()
        .filter(|&i| !upstreams[i].is_down(now))
        .collect();
    if usable.is_empty() {
        usable = rotated.collect();
    }
    if balance == Balance::LeastConn {
        // Stable: equal counts keep their rotated order.
        usable.sort_by_key(|&i| upstreams[i].active.load(Ordering::Relaxed));
    }
    usable
}

/// Connects to the upstreams in `order`, each at most once, each under
/// `timeout`; one that fails is marked down for `down`. The error of the
/// last attempt when none connects.
pub(super) fn connect<'a>(
    upstreams: &'a [Upstream],
    order: &[usize],
    timeout: Duration,
    down: Duration,
) -> io::Result<Lease<'a>> {
    let mut last = None;
    for &i in order {
        let upstream = &upstreams[i];
        upstream.active.fetch_add(1, Ordering::Relaxed);
        match upstream.connect(timeout) {
            Ok(stream) => {
                upstream.mark_up();
                upstream.active_gauge.inc();
                return Ok(Lease { upstream, stream });
            }
            Err(e) => {
                upstream.active.fetch_sub(1, Ordering::Relaxed);
                upstream.mark_down(down);
                log::debug!(target: "syncnet::proxy", upstream = upstream.addr.as_str(), error:% = e; "upstream connect failed");
                last = Some(io::Error::new(
                    e.kind(),
                    format!("connecting to upstream {}: {e}", upstream.addr),
                ));
            }
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no upstream")))
}
