//! The pool's settings, their one table of defaults, and
//! [`ClientPoolBuilder`].

use std::time::Duration;

use super::ClientPool;
use crate::{ClientTls, Error};

/// What a pool is built with. [`Default`] is the table of defaults the
/// builder's setters document.
#[derive(Debug, Clone)]
pub(super) struct Options {
    /// Idle connections kept per address (never more than `max_total_per_addr`).
    pub max_idle_per_addr: usize,
    /// Connections per address, idle and lent out together; at least 1.
    pub max_total_per_addr: usize,
    /// How long a checkout waits for a connection; zero = not at all.
    pub checkout_timeout: Duration,
    /// Connect (and TLS handshake) timeout; zero = none.
    pub connect_timeout: Duration,
    /// Read timeout of each connection; zero = none.
    pub read_timeout: Duration,
    /// Write timeout of each connection; zero = none.
    pub write_timeout: Duration,
    /// TLS towards every address, when set.
    pub tls: Option<ClientTls>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_idle_per_addr: 8,
            max_total_per_addr: 64,
            checkout_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            tls: None,
        }
    }
}

impl Options {
    /// Checks the settings that cannot work.
    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.max_total_per_addr == 0 {
            return Err(Error::config(
                "ClientPoolBuilder::max_total_per_addr",
                "must be at least 1 (0 would lend no connection at all)",
            ));
        }
        Ok(())
    }

    /// The idle connections actually kept per address.
    pub(super) fn idle_limit(&self) -> usize {
        self.max_idle_per_addr.min(self.max_total_per_addr)
    }
}

/// Builds a [`ClientPool`]: `ClientPool::builder()`, setters, then
/// [`build`](ClientPoolBuilder::build). Every setter says its default.
///
/// ```
/// use std::time::Duration;
/// let pool = syncnet::ClientPool::builder()
///     .max_total_per_addr(16)
///     .read_timeout(Duration::from_millis(500))
///     .build()?;
/// assert_eq!(pool.stats().in_use, 0);
/// # Ok::<(), syncnet::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClientPoolBuilder {
    options: Options,
    registry: Option<prometheus::Registry>,
}

impl ClientPoolBuilder {
    /// Idle connections kept per address for later calls; one returned
    /// beyond that is closed. `0` keeps none (each connection serves one
    /// lease). Never more than [`max_total_per_addr`](Self::max_total_per_addr).
    /// Defaults to 8.
    pub fn max_idle_per_addr(mut self, n: usize) -> Self {
        self.options.max_idle_per_addr = n;
        self
    }

    /// Connections per address, idle and lent out together: a checkout
    /// beyond it waits for one to come back. At least 1. Defaults to 64.
    pub fn max_total_per_addr(mut self, n: usize) -> Self {
        self.options.max_total_per_addr = n;
        self
    }

    /// How long [`ClientPool::get`] (and a call) waits for a connection
    /// when `max_total_per_addr` are in use, before
    /// [`Error::PoolExhausted`]. Zero: fail at once. Defaults to 1 s.
    pub fn checkout_timeout(mut self, timeout: Duration) -> Self {
        self.options.checkout_timeout = timeout;
        self
    }

    /// How long connecting (and the TLS handshake) may take. Zero: no
    /// limit. Defaults to 1 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// How long each read may wait for the server. Zero: no limit.
    /// Defaults to 5 s.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.options.read_timeout = timeout;
        self
    }

    /// How long each write may wait for the server to take in data. Zero:
    /// no limit. Defaults to 5 s.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.options.write_timeout = timeout;
        self
    }

    /// Speak TLS to every address (see [`Client::connect_tls`](crate::Client::connect_tls)
    /// for the settings). The files are read once, by
    /// [`build`](Self::build). Defaults to plain TCP.
    pub fn tls(mut self, tls: ClientTls) -> Self {
        self.options.tls = Some(tls);
        self
    }

    /// Registers the pool's metrics in `registry` (e.g.
    /// [`Server::metrics_registry`](crate::Server::metrics_registry), to
    /// have them on that server's `/metrics`), totals across addresses:
    ///
    /// - `syncnet_client_pool_connections{state="idle"|"in_use"}` (gauge);
    /// - `syncnet_client_pool_created_total`,
    ///   `syncnet_client_pool_reused_total`,
    ///   `syncnet_client_pool_replaced_total`,
    ///   `syncnet_client_pool_checkout_timeouts_total` (counters).
    ///
    /// The names are fixed: one pool per registry. Defaults to none (the
    /// counts are still in [`ClientPool::stats`]).
    pub fn metrics(mut self, registry: &prometheus::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The pool. Opens no connection yet.
    ///
    /// # Errors
    /// [`Error::Config`] for `max_total_per_addr(0)`, or when the metrics
    /// cannot be registered (the names are already in the registry: another
    /// pool's); [`Error::Tls`] naming the setting for unusable TLS files.
    pub fn build(self) -> Result<ClientPool, Error> {
        self.options.validate()?;
        ClientPool::new(self.options, self.registry.as_ref())
    }
}
