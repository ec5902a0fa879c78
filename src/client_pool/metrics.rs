//! The pool's counts: [`PoolStats`], read from the same gauges and counters
//! that `ClientPoolBuilder::metrics` registers.

use prometheus::core::Collector;
use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry};

use crate::Error;

/// A snapshot of a pool's connections and counters, totals across
/// addresses ([`ClientPool::stats`](super::ClientPool::stats)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Open connections waiting in the pool for a checkout.
    pub idle: usize,
    /// Connections lent out, or being opened for a checkout.
    pub in_use: usize,
    /// Connections opened, replacements included.
    pub created: u64,
    /// Checkouts served by an idle connection.
    pub reused: u64,
    /// Idle connections found closed by the server at checkout and
    /// replaced by a new one (the caller saw no error).
    pub replaced: u64,
    /// Checkouts that gave up waiting ([`Error::PoolExhausted`]).
    pub checkout_timeouts: u64,
}

/// The gauges and counters, registered or not.
pub(super) struct PoolMetrics {
    /// Holds `idle` and `in_use`, for registration.
    connections: IntGaugeVec,
    pub idle: IntGauge,
    pub in_use: IntGauge,
    pub created: IntCounter,
    pub reused: IntCounter,
    pub replaced: IntCounter,
    pub checkout_timeouts: IntCounter,
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace("syncnet")
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::with_opts(opts(name, help)).expect("valid metric")
}

impl PoolMetrics {
    /// Every metric at zero, registered nowhere.
    pub(super) fn new() -> PoolMetrics {
        let connections = IntGaugeVec::new(
            opts(
                "client_pool_connections",
                "Connections of the client pool, idle or in use (lent out or opening).",
            ),
            &["state"],
        )
        .expect("valid metric");
        PoolMetrics {
            idle: connections.with_label_values(&["idle"]),
            in_use: connections.with_label_values(&["in_use"]),
            connections,
            created: counter(
                "client_pool_created_total",
                "Connections the client pool opened.",
            ),
            reused: counter(
                "client_pool_reused_total",
                "Checkouts served by an idle connection.",
            ),
            replaced: counter(
                "client_pool_replaced_total",
                "Idle connections found closed at checkout and replaced.",
            ),
            checkout_timeouts: counter(
                "client_pool_checkout_timeouts_total",
                "Checkouts that waited out the checkout timeout.",
            ),
        }
    }

    /// Registers every metric in `registry`, or none of them.
    ///
    /// # Errors
    /// [`Error::Config`] naming the metric that could not be registered.
    pub(super) fn register(&self, registry: &Registry) -> Result<(), Error> {
        crate::metrics::register_all(
            registry,
            || self.collectors().into_iter().collect(),
            "ClientPoolBuilder::metrics",
            "ClientPool",
        )
    }

    /// Handles on every metric, as the registry takes them.
    fn collectors(&self) -> [Box<dyn Collector>; 5] {
        [
            Box::new(self.connections.clone()),
            Box::new(self.created.clone()),
            Box::new(self.reused.clone()),
            Box::new(self.replaced.clone()),
            Box::new(self.checkout_timeouts.clone()),
        ]
    }

    /// The counts now.
    pub(super) fn stats(&self) -> PoolStats {
        let count = |g: &IntGauge| usize::try_from(g.get()).unwrap_or(0);
        PoolStats {
            idle: count(&self.idle),
            in_use: count(&self.in_use),
            created: self.created.get(),
            reused: self.reused.get(),
            replaced: self.replaced.get(),
            checkout_timeouts: self.checkout_timeouts.get(),
        }
    }
}
