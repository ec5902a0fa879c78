//! What every clone of a pool shares: the connections per address, the
//! checkout (wait, reuse, replace, connect) and the check-in.

use std::collections::HashMap;
use std::io;
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::metrics::PoolMetrics;
use super::options::Options;
use crate::{Client, Error};

/// The state behind a `ClientPool`'s `Arc`.
pub(super) struct Shared {
    pub options: Options,
    /// The TLS config built once from `options.tls`.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// One entry per address ever asked for. Held only to move connections
    /// in and out of the lists and to count, never across I/O.
    addrs: Mutex<HashMap<Arc<str>, PerAddr>>,
    pub metrics: PoolMetrics,
}

/// The connections to one address.
struct PerAddr {
    /// The address, shared with the map's key and the leases.
    key: Arc<str>,
    /// Open connections waiting for a checkout; the last one in is lent first.
    idle: Vec<Client>,
    /// Idle + lent out + being opened: never above `max_total_per_addr`.
    total: usize,
    /// Signalled when a connection comes back or a slot frees up. Used
    /// with `Shared::addrs` only.
    freed: Arc<Condvar>,
}

impl Shared {
    pub(super) fn new(
        options: Options,
        tls: Option<Arc<rustls::ClientConfig>>,
        metrics: PoolMetrics,
    ) -> Shared {
        Shared {
            options,
            tls,
            addrs: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// The address map. A panic never happens while it is held, but a
    /// poisoned lock is taken over anyway: the counts stay consistent.
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, PerAddr>> {
        self.addrs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection to `addr` and the pool's key for it: an idle one that
    /// is still open, a new one in place of an idle one the server closed,
    /// or a new one while fewer than `max_total_per_addr` exist. Otherwise
    /// waits (on a condition variable, no polling) until the checkout
    /// timeout or `deadline`, whichever comes first. Connecting is bounded
    /// by `deadline` too.
    pub(super) fn checkout(
        &self,
        addr: &str,
        deadline: Option<Instant>,
    ) -> Result<(Arc<str>, Client), Error> {
        let started = Instant::now();
        let give_up = earliest(started + self.options.checkout_timeout, deadline);
        let mut addrs = self.lock();
        loop {
            let entry = per_addr(&mut addrs, addr);
            let key = Arc::clone(&entry.key);
            if let Some(client) = entry.idle.pop() {
                self.metrics.idle.dec();
                self.metrics.in_use.inc();
                drop(addrs);
                if peer_still_open(client.stream()) {
                    self.metrics.reused.inc();
                    return Ok((key, client));
                }
                drop(client);
                self.metrics.replaced.inc();
                return self.connect_in_slot(key, deadline);
            }
            if entry.total < self.options.max_total_per_addr {
                entry.total += 1;
                self.metrics.in_use.inc();
                drop(addrs);
                return self.connect_in_slot(key, deadline);
            }
            let now = Instant::now();
            if now >= give_up {
                self.metrics.checkout_timeouts.inc();
                return Err(Error::PoolExhausted {
                    addr: addr.to_string(),
                    limit: self.options.max_total_per_addr,
                    waited: now - started,
                });
            }
            let freed = Arc::clone(&entry.freed);
            addrs = freed
                .wait_timeout(addrs, give_up - now)
                .map_or_else(|p| p.into_inner().0, |(guard, _)| guard);
        }
    }

    /// Opens a connection in a slot already counted in `total` and
    /// `in_use`; gives the slot back when that fails.
    fn connect_in_slot(
        &self,
        key: Arc<str>,
        deadline: Option<Instant>,
    ) -> Result<(Arc<str>, Client), Error> {
        match self.connect(&key, deadline) {
            Ok(client) => {
                self.metrics.created.inc();
                Ok((key, client))
            }
            Err(e) => {
                self.check_in(&key, None);
                Err(e)
            }
        }
    }

    /// A new connection to `addr`, with the pool's read and write timeouts.
    fn connect(&self, addr: &str, deadline: Option<Instant>) -> Result<Client, Error> {
        let timeout = bounded(self.options.connect_timeout, deadline).unwrap_or(Duration::ZERO);
        let client = match (&self.tls, &self.options.tls) {
            (Some(config), Some(tls)) => {
                Client::connect_tls_with(addr, timeout, Arc::clone(config), tls)
            }
            _ => Client::connect(addr, timeout),
        }
        .map_err(|e| match e {
            Error::Address { value, .. } => Error::Address {
                setting: "ClientPool address".into(),
                value,
            },
            other => other,
        })?;
        let options = &self.options;
        client
            .set_read_timeout(limit(options.read_timeout))
            .and_then(|()| client.set_write_timeout(limit(options.write_timeout)))
            .map_err(|e| {
                Error::io(
                    format!("setting the timeouts of the connection to {addr}"),
                    e,
                )
            })?;
        Ok(client)
    }

    /// Takes back a lent connection: into the idle list when `client` is
    /// given and the list has room, otherwise closes it and frees its slot.
    /// Wakes one caller waiting for `key`.
    pub(super) fn check_in(&self, key: &str, client: Option<Client>) {
        let mut addrs = self.lock();
        let Some(entry) = addrs.get_mut(key) else {
            return; // entries are never removed: not reached
        };
        self.metrics.in_use.dec();
        let closing = match client {
            Some(client) if entry.idle.len() < self.options.idle_limit() => {
                entry.idle.push(client);
                self.metrics.idle.inc();
                None
            }
            other => {
                entry.total -= 1;
                other
            }
        };
        entry.freed.notify_one();
        drop(addrs);
        drop(closing); // closes the socket outside the lock
    }
}

/// The entry of `addr`, created on first use.
fn per_addr<'a>(addrs: &'a mut HashMap<Arc<str>, PerAddr>, addr: &str) -> &'a mut PerAddr {
    if !addrs.contains_key(addr) {
        let key: Arc<str> = Arc::from(addr);
        let entry = PerAddr {
            key: Arc::clone(&key),
            idle: Vec::new(),
            total: 0,
            freed: Arc::new(Condvar::new()),
        };
        addrs.insert(key, entry);
    }
    addrs
        .get_mut(addr)
        .expect("the entry exists: inserted above")
}

/// A pool timeout (zero = none) as a socket timeout.
pub(super) fn limit(timeout: Duration) -> Option<Duration> {
    (!timeout.is_zero()).then_some(timeout)
}

/// `timeout` (zero = none) lowered to the time left before `deadline`, as a
/// socket timeout: never zero (a socket refuses that), 1 ms at least, so
/// that an operation past the deadline fails at once.
pub(super) fn bounded(timeout: Duration, deadline: Option<Instant>) -> Option<Duration> {
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let lowest = match (limit(timeout), left) {
        (Some(t), Some(left)) => Some(t.min(left)),
        (t, left) => t.or(left),
    };
    lowest.map(|t| t.max(Duration::from_millis(1)))
}

/// The earlier of `at` and `deadline`.
fn earliest(at: Instant, deadline: Option<Instant>) -> Instant {
    deadline.map_or(at, |d| d.min(at))
}

/// False when the server has closed (or reset) an idle connection, or sent
/// bytes nobody asked for: a non-blocking peek finds end of input, an
/// error, or data, where an open, quiet connection would block.
///
/// Over TLS the peek sees records, not plaintext: a close_notify counts as
/// data, so a closed TLS connection is caught too; so would be a TLS 1.3
/// session ticket still unread on a connection lent and given back
/// without a read (it is then replaced, which costs a handshake, not an
/// error).
pub(super) fn peer_still_open(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let quiet = matches!(stream.peek(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).is_ok() && quiet
}
