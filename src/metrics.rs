//! The metrics registry each server owns, and the names `docs/reference.md` ("Metrics") gives them.
//!
//! Counters are `prometheus` atomics, touched once per connection (accept,
//! reject, close), never per read or write: a connection counts its own bytes
//! and the totals are brought up to date when `/metrics` is scraped and when
//! the connection closes (see [`crate::conn`]).

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Why a connection never reached the handler (`connections_rejected_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// Queue full, queue timeout, or no worker thread could be started.
    Overload,
    /// Allow/deny list, untrusted proxy, or an mTLS name that is not allowed.
    Denied,
    /// The per-IP connection limit was reached.
    PerIpLimit,
    /// The per-IP new-connection rate was exceeded.
    RateLimit,
    /// The TLS handshake failed or timed out.
    Tls,
    /// A missing or malformed PROXY protocol header.
    Protocol,
    /// The server shut down before a worker took the connection.
    Shutdown,
}

impl RejectReason {
    /// Every reason, in the order metrics list them.
    pub const ALL: [RejectReason; 7] = [
        RejectReason::Overload,
        RejectReason::Denied,
        RejectReason::PerIpLimit,
        RejectReason::RateLimit,
        RejectReason::Tls,
        RejectReason::Protocol,
        RejectReason::Shutdown,
    ];

    /// The label value, e.g. `overload`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Overload => "overload",
            RejectReason::Denied => "denied",
            RejectReason::PerIpLimit => "per_ip_limit",
            RejectReason::RateLimit => "rate_limit",
            RejectReason::Tls => "tls",
            RejectReason::Protocol => "protocol",
            RejectReason::Shutdown => "shutdown",
        }
    }
}

/// Why a served connection ended (`connections_closed_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The handler finished: for echo, the peer closed its sending side.
    Eof,
    /// The peer sent nothing for `--idle-timeout`.
    IdleTimeout,
    /// The peer stopped reading for `--write-timeout`.
    WriteTimeout,
    /// The connection reached `--max-lifetime`.
    Lifetime,
    /// The handler returned an error (e.g. connection reset).
    Error,
    /// The connection ended while the server was draining.
    Drain,
    /// The handler panicked.
    Panic,
}

impl CloseReason {
    /// Every reason, in the order metrics list them.
    pub const ALL: [CloseReason; 7] = [
        CloseReason::Eof,
        CloseReason::IdleTimeout,
        CloseReason::WriteTimeout,
        CloseReason::Lifetime,
        CloseReason::Error,
        CloseReason::Drain,
        CloseReason::Panic,
    ];

    /// The label value, e.g. `idle_timeout`.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Eof => "eof",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::Lifetime => "lifetime",
            CloseReason::Error => "error",
            CloseReason::Drain => "drain",
            CloseReason::Panic => "panic",
        }
    }
}

/// What kind of error `accept()` returned (`accept_errors_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AcceptErrorKind {
    /// EMFILE / ENFILE: out of file descriptors.
    FdLimit,
    /// ENOBUFS / ENOMEM.
    NoMemory,
    /// Anything else (ECONNABORTED, EPERM from a firewall, ...).
    Other,
}

impl AcceptErrorKind {
    const ALL: [AcceptErrorKind; 3] = [
        AcceptErrorKind::FdLimit,
        AcceptErrorKind::NoMemory,
        AcceptErrorKind::Other,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AcceptErrorKind::FdLimit => "fd_limit",
            AcceptErrorKind::NoMemory => "no_memory",
            AcceptErrorKind::Other => "other",
        }
    }
}

/// Why a framed request did not get its normal answer
/// (`request_errors_total{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestErrorKind {
    /// A frame over the maximum size (the connection then closes).
    FrameTooLarge,
    /// A frame that could not be read or parsed as a request.
    Malformed,
    /// The handler answered with an error of its own.
    Handler,
    /// The request's deadline passed before or during its handler.
    Deadline,
    /// The connection's request-rate limit refused it.
    RateLimit,
}

impl RequestErrorKind {
    /// Every kind, in label order.
    pub const ALL: [RequestErrorKind; 5] = [
        RequestErrorKind::FrameTooLarge,
        RequestErrorKind::Malformed,
        RequestErrorKind::Handler,
        RequestErrorKind::Deadline,
        RequestErrorKind::RateLimit,
    ];

    /// The `kind` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestErrorKind::FrameTooLarge => "frame_too_large",
            RequestErrorKind::Malformed => "malformed",
            RequestErrorKind::Handler => "handler",
            RequestErrorKind::Deadline => "deadline",
            RequestErrorKind::RateLimit => "rate_limit",
        }
    }
}

/// Histogram buckets of `request_duration_seconds`: 100 µs to 10 s.
const REQUEST_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// Histogram buckets of `connection_duration_seconds`: 1 ms to 1 h.
const DURATION_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

/// One server's metrics. Cheap to share (`Arc`); every field is an atomic.
pub(crate) struct Metrics {
    registry: Registry,
    pub accepted: IntCounter,
    rejected: [IntCounter; RejectReason::ALL.len()],
    closed: [IntCounter; CloseReason::ALL.len()],
    accept_errors: [IntCounter; AcceptErrorKind::ALL.len()],
    pub active: IntGauge,
    pub queued: IntGauge,
    pub workers_busy: IntGauge,
    pub bytes_received: IntCounter,
    pub bytes_sent: IntCounter,
    pub duration: Histogram,
    pub handler_panics: IntCounter,
    pub tls_handshake_failures: IntCounter,
    /// The framed-service metrics (`syncnet::service::FramedService`).
    pub requests: RequestMetrics,
}

/// The metrics of framed request/response services, shared by every
/// connection of a server. A connection counts into a local copy and
/// publishes it before it sends a burst of replies (see
/// [`LocalRequestMetrics`]), so a request costs no shared atomic.
pub(crate) struct RequestMetrics {
    pub total: IntCounter,
    pub errors: [IntCounter; RequestErrorKind::ALL.len()],
    pub duration: Histogram,
}

/// One connection's unpublished request counts.
pub(crate) struct LocalRequestMetrics {
    total: prometheus::local::LocalIntCounter,
    errors: [u64; RequestErrorKind::ALL.len()],
    duration: prometheus::local::LocalHistogram,
}

impl RequestMetrics {
    /// Metrics registered nowhere, for a service run outside a server.
    pub(crate) fn detached() -> RequestMetrics {
        let counter = || IntCounter::new("detached", "not exposed").expect("valid metric");
        RequestMetrics {
            total: counter(),
            errors: RequestErrorKind::ALL.map(|_| counter()),
            duration: Histogram::with_opts(HistogramOpts::new("detached", "not exposed"))
                .expect("valid metric"),
        }
    }

    /// A local copy for one connection.
    pub(crate) fn local(&self) -> LocalRequestMetrics {
        LocalRequestMetrics {
            total: self.total.local(),
            errors: [0; RequestErrorKind::ALL.len()],
            duration: self.duration.local(),
        }
    }
}

impl LocalRequestMetrics {
    /// Counts one request and how long it took.
    #[inline]
    pub(crate) fn request(&mut self, seconds: f64) {
        self.total.inc();
        self.duration.observe(seconds);
    }

    /// Counts one error of `kind`.
    #[inline]
    pub(crate) fn error(&mut self, kind: RequestErrorKind) {
        self.errors[kind as usize] += 1;
    }

    /// Adds what was counted since the last publish to the shared metrics.
    pub(crate) fn publish(&mut self, shared: &RequestMetrics) {
        self.total.flush();
        self.duration.flush();
        for (count, counter) in self.errors.iter_mut().zip(&shared.errors) {
            if *count > 0 {
                counter.inc_by(*count);
                *count = 0;
            }
        }
    }
}

/// Registers every collector `make` returns in `registry`, or none of them:
/// on the first failure the ones already registered are taken out again
/// (`make` is called again for their handles). The error names the metric
/// and the builder method `setting` that asked for it.
///
/// # Errors
/// [`Error::Config`](crate::Error::Config), e.g. when a name is already
/// registered (`owner` says what there may be one of per registry).
pub(crate) fn register_all(
    registry: &Registry,
    make: impl Fn() -> Vec<Box<dyn prometheus::core::Collector>>,
    setting: &str,
    owner: &str,
) -> Result<(), crate::Error> {
    for (done, collector) in make().into_iter().enumerate() {
        let name = collector
            .desc()
            .first()
            .map_or_else(String::new, |d| d.fq_name.clone());
        if let Err(e) = registry.register(collector) {
            for registered in make().into_iter().take(done) {
                let _ = registry.unregister(registered);
            }
            return Err(crate::Error::config(
                setting,
                format!("cannot register {name}: {e} (one {owner} per registry)"),
            ));
        }
    }
    Ok(())
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("syncnet")
}

/// Registers `collector` and hands it back; registration of our own fixed
/// names into a fresh registry can only fail on a programming error.
fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are unique within a server's registry");
    c
}

impl Metrics {
    /// A fresh registry with every metric at zero and `workers` set to the limit.
    pub(crate) fn new(workers: usize) -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            register(
                &registry,
                IntCounter::with_opts(opts(name, help)).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str| {
            register(
                &registry,
                IntGauge::with_opts(opts(name, help)).expect("valid metric"),
            )
        };
        let labelled = |name: &str, help: &str, label: &str, values: &[&str]| {
            let vec = register(
                &registry,
                IntCounterVec::new(opts(name, help), &[label]).expect("valid metric"),
            );
            values
                .iter()
                .map(|v| vec.with_label_values(&[*v]))
                .collect::<Vec<_>>()
        };

        let rejected = labelled(
            "connections_rejected_total",
            "Connections closed before reaching the handler, by reason.",
            "reason",
            &RejectReason::ALL.map(RejectReason::as_str),
        );
        let closed = labelled(
            "connections_closed_total",
            "Connections that reached the handler and then ended, by reason.",
            "reason",
            &CloseReason::ALL.map(CloseReason::as_str),
        );
        let accept_errors = labelled(
            "accept_errors_total",
            "Errors returned by accept(), by kind.",
            "kind",
            &AcceptErrorKind::ALL.map(AcceptErrorKind::as_str),
        );

        let build_info = register(
            &registry,
            IntGaugeVec::new(
                opts(
                    "build_info",
                    "Always 1; the version label says which build runs.",
                ),
                &["version"],
            )
            .expect("valid metric"),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let workers_gauge = gauge("workers", "Most connections served at once (--workers).");
        workers_gauge.set(i64::try_from(workers).unwrap_or(i64::MAX));

        let duration = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "connection_duration_seconds",
                    "How long served connections lasted, from worker pick-up to close.",
                )
                .namespace("syncnet")
                .buckets(DURATION_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
        );

        let request_errors = labelled(
            "request_errors_total",
            "Framed requests that got no normal answer, by kind.",
            "kind",
            &RequestErrorKind::ALL.map(RequestErrorKind::as_str),
        );
        let requests = RequestMetrics {
            total: counter("requests_total", "Request frames read by framed services."),
            errors: into_array(request_errors),
            duration: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "request_duration_seconds",
                        "From a request frame read to its answer, in framed services.",
                    )
                    .namespace("syncnet")
                    .buckets(REQUEST_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
        };

        #[cfg(target_os = "linux")]
        {
            let process = crate::process::ProcessMetrics::for_self();
            registry
                .register(Box::new(process))
                .expect("process metrics are registered once per registry");
        }

        Metrics {
            accepted: counter(
                "connections_accepted_total",
                "Connections returned by accept().",
            ),
            rejected: into_array(rejected),
            closed: into_array(closed),
            accept_errors: into_array(accept_errors),
            active: gauge(
                "connections_active",
                "Connections being served by a worker (TLS handshake included).",
            ),
            queued: gauge(
                "connections_queued",
                "Accepted connections waiting for a free worker.",
            ),
            workers_busy: gauge("workers_busy", "Worker threads serving a connection."),
            bytes_received: counter(
                "bytes_received_total",
                "Bytes read by handlers (plaintext for TLS).",
            ),
            bytes_sent: counter("bytes_sent_total", "Bytes written by handlers."),
            duration,
            handler_panics: counter("handler_panics_total", "Handler panics caught."),
            tls_handshake_failures: counter(
                "tls_handshake_failures_total",
                "TLS handshakes that failed or timed out.",
            ),
            requests,
            registry,
        }
    }

    /// The registry the metrics are in.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Counts one rejection.
    pub(crate) fn rejected(&self, reason: RejectReason) {
        self.rejected[reason as usize].inc();
    }

    /// Counts one close.
    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed[reason as usize].inc();
    }

    /// Counts one accept error.
    pub(crate) fn accept_error(&self, kind: AcceptErrorKind) {
        self.accept_errors[kind as usize].inc();
    }

    /// The registry in Prometheus text format 0.0.4.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            log::error!(target: "syncnet::admin", "encoding metrics failed: {e}");
        }
        out
    }
}

fn into_array<const N: usize>(v: Vec<IntCounter>) -> [IntCounter; N] {
    v.try_into()
        .unwrap_or_else(|_| unreachable!("one counter per label value"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_value_is_exposed_at_zero() {
        let m = Metrics::new(4);
        let text = String::from_utf8(m.encode()).unwrap();
        for r in RejectReason::ALL {
            let line = format!(
                "syncnet_connections_rejected_total{{reason=\"{}\"}} 0",
                r.as_str()
            );
            assert!(text.contains(&line), "missing {line}");
        }
        for r in CloseReason::ALL {
            let line = format!(
                "syncnet_connections_closed_total{{reason=\"{}\"}} 0",
                r.as_str()
            );
            assert!(text.contains(&line), "missing {line}");
        }
        assert!(text.contains("syncnet_workers 4"));
        assert!(text.contains("syncnet_build_info{version=\""));
    }

    #[test]
    fn counts_go_to_their_label() {
        let m = Metrics::new(1);
        m.rejected(RejectReason::Overload);
        m.closed(CloseReason::Panic);
        m.accept_error(AcceptErrorKind::FdLimit);
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(text.contains("syncnet_connections_rejected_total{reason=\"overload\"} 1"));
        assert!(text.contains("syncnet_connections_closed_total{reason=\"panic\"} 1"));
        assert!(text.contains("syncnet_accept_errors_total{kind=\"fd_limit\"} 1"));
    }
}
