//! A layer-4 TCP proxy: [`Proxy`], a [`Handler`](crate::Handler) that joins
//! each client connection to a connection to one upstream and copies bytes
//! both ways (`syncnet proxy` on the command line).
//!
//! Each accepted connection is joined to a connection to one upstream, bytes
//! are copied both ways, and half-closes are passed on: when one side shuts
//! down its writing, the other side's writing is shut down, and the opposite
//! direction goes on.
//!
//! For each client connection the proxy:
//! 1. orders the upstreams by [`Balance`] (least active connections, or
//!    round robin), leaving out those marked down (unless all are);
//! 2. connects to them in that order, each at most once and each under the
//!    connect timeout; one that fails is marked down for the
//!    `upstream_down` time and counted, and the next is tried. When none
//!    connects, the client is closed (close reason `error`);
//! 3. with [`ProxyBuilder::send_proxy_protocol`], writes a PROXY header to
//!    the upstream: source the client ([`Conn::peer`]), destination the
//!    address the client connected to ([`Conn::local_addr`]);
//! 4. splits the connection ([`Conn::split`]): the worker copies client →
//!    upstream, one scoped thread copies upstream → client.
//!
//! **Threads**: a proxied connection holds its worker and one more thread,
//! so a server with `workers` N runs at most N proxied connections at once
//! and at most 2 × N threads for them (the extra thread has a 256 KiB stack
//! and a 16 KiB heap buffer; the worker's 16 KiB buffer is reused from
//! connection to connection).
//!
//! **Timeouts**: the server's idle timeout counts from the last byte in
//! either direction; its write timeout applies to both sockets. A failure or
//! a timeout on either side closes both.
//!
//! **Drain**: the server shuts the clients' reads down, so the upstream gets
//! end of input; replies on their way still reach the client, then both
//! close (an upstream that stays silent for 500 ms after that is taken as
//! done).
//!
//! **Logs and metrics**: the close line carries `upstream` (the address as
//! given; absent when none could be reached), `bytes_in` (client →
//! upstream) and `bytes_out` (upstream → client). With
//! [`ProxyBuilder::metrics`] the proxy registers, labelled `upstream`:
//! `syncnet_upstream_connections_active`,
//! `syncnet_upstream_connect_failures_total` and `syncnet_upstream_up`.
//!
//! ```no_run
//! use std::time::Duration;
//! use syncnet::Server;
//! use syncnet::proxy::{Balance, Proxy, Version};
//!
//! let server = Server::builder().listen("0.0.0.0:6380").build()?;
//! let proxy = Proxy::builder()
//!     .upstream("10.0.0.5:6379")
//!     .upstream("10.0.0.6:6379")
//!     .balance(Balance::LeastConn)
//!     .connect_timeout(Duration::from_secs(3))
//!     .upstream_down(Duration::from_secs(10))
//!     .send_proxy_protocol(Some(Version::V2))
//!     .metrics(&server.metrics_registry())
//!     .build()?;
//! server.run(proxy)?;
//! # Ok::<(), syncnet::Error>(())
//! ```

mod relay;
mod upstream;

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::conn::Conn;
use crate::{Error, proxy_protocol};
use upstream::{Upstream, UpstreamMetrics};

/// How the proxy picks an upstream for a new client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// The upstream with the fewest active proxied connections (ties in
    /// turn). The default.
    #[default]
    LeastConn,
    /// Each upstream in turn.
    RoundRobin,
}

impl FromStr for Balance {
    type Err = String;
    /// `least-conn` or `round-robin`.
    fn from_str(s: &str) -> Result<Balance, String> {
        match s {
            "least-conn" => Ok(Balance::LeastConn),
            "round-robin" => Ok(Balance::RoundRobin),
            other => Err(format!(
                "'{other}' is not a balance (expected least-conn or round-robin)"
            )),
        }
    }
}

/// The PROXY protocol version the proxy sends to its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The text form: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary form.
    V2,
}

/// A layer-4 TCP proxy; see the [module documentation](self). Built with
/// [`Proxy::builder`]; run it with [`Server::run`](crate::Server::run) or
/// [`Server::spawn`](crate::Server::spawn), or call
/// [`Proxy::proxy`] from a handler of your own (admission, logging).
pub struct Proxy {
    upstreams: Vec<Upstream>,
    balance: Balance,
    connect_timeout: Duration,
    upstream_down: Duration,
    send_proxy_protocol: Option<Version>,
    /// The next turn: round robin's pointer, least-conn's tie-breaker.
    turn: AtomicUsize,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field(
                "upstreams",
                &self.upstreams.iter().map(|u| &u.addr).collect::<Vec<_>>(),
            )
            .field("balance", &self.balance)
            .field("connect_timeout", &self.connect_timeout)
            .field("upstream_down", &self.upstream_down)
            .field("send_proxy_protocol", &self.send_proxy_protocol)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`Proxy`]; see [`Proxy::builder`].
#[derive(Debug, Clone)]
pub struct ProxyBuilder {
    upstreams: Vec<String>,
    balance: Balance,
    connect_timeout: Duration,
    upstream_down: Duration,
    send_proxy_protocol: Option<Version>,
    registry: Option<prometheus::Registry>,
}

impl Default for ProxyBuilder {
    fn default() -> ProxyBuilder {
        ProxyBuilder {
            upstreams: Vec::new(),
            balance: Balance::LeastConn,
            connect_timeout: Duration::from_secs(3),
            upstream_down: Duration::from_secs(10),
            send_proxy_protocol: None,
            registry: None,
        }
    }
}

impl ProxyBuilder {
    /// Adds an upstream, `host:port` (repeatable; at least one). The
    /// address as given labels its metrics and log lines; a host name is
    /// resolved at each connect.
    pub fn upstream(mut self, addr: impl Into<String>) -> Self {
        self.upstreams.push(addr.into());
        self
    }

    /// How an upstream is picked for a new client (default least-conn).
    pub fn balance(mut self, balance: Balance) -> Self {
        self.balance = balance;
        self
    }

    /// How long a connect to one upstream may take (default 3 s); on
    /// failure the next upstream is tried.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an upstream that failed to connect is skipped (default 10 s).
    pub fn upstream_down(mut self, down: Duration) -> Self {
        self.upstream_down = down;
        self
    }

    /// Sends a PROXY header of this version to the upstream, naming the
    /// client (default `None`: no header).
    pub fn send_proxy_protocol(mut self, version: Option<Version>) -> Self {
        self.send_proxy_protocol = version;
        self
    }

    /// Registers the upstream metrics in `registry`, e.g.
    /// [`Server::metrics_registry`](crate::Server::metrics_registry), so
    /// that they show on the server's `/metrics`. Without it they are
    /// counted but registered nowhere.
    pub fn metrics(mut self, registry: &prometheus::Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// The proxy. Connects to nothing yet.
    ///
    /// # Errors
    /// [`Error::Config`] naming `upstream` (none, one twice, or not
    /// `host:port`), `connect_timeout` (zero), or the metric that could not
    /// be registered.
    pub fn build(self) -> Result<Proxy, Error> {
        if self.upstreams.is_empty() {
            return Err(Error::config(
                "upstream",
                "needs at least one ADDR (host:port)",
            ));
        }
        for (i, addr) in self.upstreams.iter().enumerate() {
            check_addr(addr)?;
            if self.upstreams[..i].contains(addr) {
                return Err(Error::config("upstream", format!("'{addr}' given twice")));
            }
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::config("connect_timeout", "must be above 0"));
        }
        let metrics = UpstreamMetrics::new();
        if let Some(registry) = &self.registry {
            metrics.register(registry)?;
        }
        Ok(Proxy {
            upstreams: self.upstreams.iter().map(|a| metrics.upstream(a)).collect(),
            balance: self.balance,
            connect_timeout: self.connect_timeout,
            upstream_down: self.upstream_down,
            send_proxy_protocol: self.send_proxy_protocol,
            turn: AtomicUsize::new(0),
        })
    }
}

/// `host:port` with a port number and a non-empty host.
fn check_addr(addr: &str) -> Result<(), Error> {
    let bad = || Error::config("upstream", format!("'{addr}' is not host:port"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

impl Proxy {
    /// A builder with every setting at its default and no upstream.
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }

    /// Proxies one client connection until both directions ended (what
    /// [`Handler::handle`](crate::Handler::handle) does). Sets the close
    /// line's `upstream` field.
    ///
    /// # Errors
    /// When no upstream could be reached, or either side failed or timed out.
    pub fn proxy(&self, conn: &mut Conn) -> io::Result<()> {
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let order = upstream::order(&self.upstreams, self.balance, turn);
        let lease = upstream::connect(
            &self.upstreams,
            &order,
            self.connect_timeout,
            self.upstream_down,
        )?;
        conn.set_log_field("upstream", lease.upstream.addr.clone());
        let _ = lease.stream.set_nodelay(true);
        if let Some(version) = self.send_proxy_protocol {
            let source = conn.peer();
            let destination = conn.local_addr()?;
            let header = match version {
                Version::V1 => proxy_protocol::write_v1(source, destination),
                Version::V2 => proxy_protocol::write_v2(source, destination),
            };
            (&lease.stream).write_all(&header)?;
        }
        relay::relay(conn, &lease.stream)
    }
}

impl crate::Handler for Proxy {
    fn handle(&self, conn: &mut Conn) -> io::Result<()> {
        self.proxy(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_the_setting() {
        let error = Proxy::builder().build().unwrap_err();
        assert!(error.to_string().contains("`upstream`"), "{error}");
        for addr in ["nohost", ":80", "host:port", "host:70000"] {
            let error = Proxy::builder().upstream(addr).build().unwrap_err();
            assert!(error.to_string().contains("not host:port"), "{error}");
        }
        let error = Proxy::builder()
            .upstream("a:1")
            .upstream("a:1")
            .build()
            .unwrap_err();
        assert!(error.to_string().contains("twice"), "{error}");
        assert!("fastest".parse::<Balance>().is_err());
        assert_eq!("round-robin".parse(), Ok(Balance::RoundRobin));
    }
}
