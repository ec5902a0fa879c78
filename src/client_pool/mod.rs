//! `ClientPool`: reusable connections to other servers, lent per address
//! (the guide and an example are on [`ClientPool`]).
//!
//! Files: `options.rs` (settings, defaults, [`ClientPoolBuilder`]),
//! `shared.rs` (the lists per address, checkout and check-in), `lease.rs`
//! ([`Lease`]), `call.rs` ([`ClientPool::call`], retries), `metrics.rs`
//! ([`PoolStats`] and the Prometheus metrics).

mod call;
mod lease;
mod metrics;
mod options;
mod shared;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

pub use call::Call;
pub use lease::Lease;
pub use metrics::PoolStats;
pub use options::ClientPoolBuilder;

use crate::Error;
use metrics::PoolMetrics;
use options::Options;
use shared::Shared;

/// Connections to other servers, kept open per address and lent out.
///
/// A handler that calls another service (a cache, a database, the next
/// hop) should not connect for every request: a `ClientPool` keeps
/// connections open per address and lends them out. Addresses are strings
/// as [`Client::connect`](crate::Client::connect) takes them
/// (`127.0.0.1:4000`, `cache.internal:6379`); each distinct string has
/// connections and limits of its own.
///
/// - [`get`](ClientPool::get) lends a [`Lease`] (a [`Client`](crate::Client) that goes back to
///   the pool when dropped, unless it broke) for your own reads and writes;
/// - [`call`](ClientPool::call) does one request/reply exchange with a
///   [`Codec`](crate::frame::Codec), retrying [`Call::Idempotent`] requests
///   on a new connection when the old one failed, and bounding every wait
///   by the deadline of the request being answered (inside a
///   [`FramedService`](crate::service::FramedService)).
///
/// ```
/// use std::time::Duration;
/// use syncnet::frame::{self, LengthPrefixed};
/// use syncnet::{Call, ClientPool, Conn, Server};
///
/// // An upstream that echoes each length-prefixed frame.
/// let server = Server::builder().listen("127.0.0.1:0").admin(None).build()?;
/// let upstream = server.spawn(|conn: &mut Conn| -> std::io::Result<()> {
///     let (mut requests, mut replies) = frame::split(conn, LengthPrefixed::new(1024));
///     while let Some(request) = requests.read_frame()? {
///         replies.write_frame(request)?;
///         replies.flush()?;
///     }
///     Ok(())
/// })?;
/// let addr = upstream.local_addr().to_string();
///
/// let pool = ClientPool::builder()
///     .max_total_per_addr(4)
///     .read_timeout(Duration::from_secs(2))
///     .build()?;
/// let codec = LengthPrefixed::new(1024);
/// let mut reply = Vec::new();
/// for _ in 0..3 {
///     pool.call(&addr, &codec, b"ping", Call::Idempotent, &mut reply)?;
///     assert_eq!(reply, b"ping");
/// }
/// // One connection served the three calls, and waits for the next.
/// let stats = pool.stats();
/// assert_eq!((stats.created, stats.reused, stats.idle), (1, 2, 1));
///
/// drop(pool); // closes the idle connection
/// upstream.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # What the pool does with connections
///
/// - **Limits** per address: at most `max_total_per_addr` connections
///   (idle and lent out); a checkout beyond that waits on a condition
///   variable, up to the checkout timeout, then fails with
///   [`Error::PoolExhausted`]. At most `max_idle_per_addr` stay open
///   between uses; one more that comes back is closed.
/// - **Stale connections**: the server may close an idle connection (its
///   idle timeout, a restart). Each checkout of an idle connection first
///   peeks at it without blocking; one that is closed, reset or holds
///   unexpected bytes is replaced by a new connection, and the caller sees
///   no error (counted as `replaced`). No thread watches idle connections:
///   they are checked when used.
/// - **Broken leases** (an I/O error or end of input seen through the
///   lease, or [`Lease::discard`]) are closed, never lent again.
///
/// # Threads and cloning
///
/// A `ClientPool` is an `Arc` inside: clone it into every handler that
/// needs it; clones share the connections, limits and counts. One mutex
/// guards the lists, held only to move a connection in or out, never
/// during I/O. A [`Lease`] is `Send` and may be dropped on any thread.
#[derive(Clone)]
pub struct ClientPool {
    shared: Arc<Shared>,
}

/// A pool is shared by handler threads; a lease can move between threads.
const _: () = {
    const fn must_be_send_sync<T: Send + Sync>() {}
    const fn must_be_send<T: Send>() {}
    must_be_send_sync::<ClientPool>();
    must_be_send::<Lease>();
};

impl ClientPool {
    /// A builder with every setting at its default.
    pub fn builder() -> ClientPoolBuilder {
        ClientPoolBuilder::default()
    }

    /// The pool `options` describe, its metrics in `registry` when given.
    fn new(options: Options, registry: Option<&prometheus::Registry>) -> Result<ClientPool, Error> {
        let tls = match &options.tls {
            Some(tls) => Some(crate::tls::client_config(tls).map_err(|e| Error::Tls {
                setting: e.flag(),
                message: e.to_string(),
            })?),
            None => None,
        };
        let metrics = PoolMetrics::new();
        if let Some(registry) = registry {
            metrics.register(registry)?;
        }
        Ok(ClientPool {
            shared: Arc::new(Shared::new(options, tls, metrics)),
        })
    }

    /// Lends a connection to `addr`: an idle one (checked first: one the
    /// server closed is replaced by a new one), or a new one when fewer than
    /// `max_total_per_addr` are open, or the first to come back within the
    /// checkout timeout. It has the pool's read and write timeouts.
    ///
    /// ```no_run
    /// use std::io::{Read, Write};
    /// let pool = syncnet::ClientPool::builder().build()?;
    /// let mut lease = pool.get("127.0.0.1:6379")?;
    /// lease.write_all(b"PING\r\n")?;
    /// let mut reply = [0u8; 7];
    /// lease.read_exact(&mut reply)?;
    /// drop(lease); // back to the pool
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::PoolExhausted`] after waiting the checkout timeout;
    /// [`Error::Address`] when `addr` does not resolve; [`Error::Io`]
    /// naming the address when connecting fails or times out (or the TLS
    /// handshake, with [`tls`](ClientPoolBuilder::tls)).
    pub fn get(&self, addr: &str) -> Result<Lease, Error> {
        self.checkout(addr, None)
    }

    /// [`get`](ClientPool::get), waiting and connecting no later than
    /// `deadline`.
    fn checkout(&self, addr: &str, deadline: Option<Instant>) -> Result<Lease, Error> {
        let (key, client) = self.shared.checkout(addr, deadline)?;
        Ok(Lease::new(Arc::clone(&self.shared), key, client))
    }

    /// The pool's connections and counts now, totals across addresses.
    pub fn stats(&self) -> PoolStats {
        self.shared.metrics.stats()
    }
}

impl std::fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPool")
            .field("options", &self.shared.options)
            .field("stats", &self.stats())
            .finish()
    }
}
