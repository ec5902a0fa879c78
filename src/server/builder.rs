//! [`Builder`]: the settings of a server, then binding its sockets.
//!
//! Every setter maps to one field of [`ServerConfig`]; [`Builder::build`]
//! validates the whole and binds the listener (and the admin endpoint's), so
//! a bad address or a port in use is reported before anything runs. A
//! listener bound elsewhere can be handed over instead
//! ([`Builder::listener`]).

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;

use socket2::{Domain, Socket, Type};

use super::Server;
use super::listener::Origin;
use crate::config::ServerConfig;
use crate::trace::TraceOptions;
use crate::{Cidr, Error, TlsSettings};

/// Builds a [`Server`]. Every setter documents its default; see
/// [`ServerConfig`] for the whole table.
///
/// ```
/// use std::time::Duration;
/// let server = syncnet::Server::builder()
///     .listen("127.0.0.1:0")
///     .workers(8)
///     .idle_timeout(Duration::from_secs(30))
///     .admin(None)
///     .build()?;
/// assert_ne!(server.local_addr().port(), 0);
/// # Ok::<(), syncnet::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builder {
    config: ServerConfig,
    /// Written to plain-TCP connections the server turns away.
    reject_reply: Option<Arc<[u8]>>,
    /// [`Builder::listener`]: accept on this instead of binding `listen`.
    /// In an `Arc` so that the builder stays `Clone`.
    listener: Option<Arc<TcpListener>>,
    /// [`Builder::admin_listener`]: the admin endpoint's, likewise.
    admin_listener: Option<Arc<TcpListener>>,
    /// Where spans go; `None`: tracing off.
    tracing: Option<TraceOptions>,
}

impl Builder {
    // The plain setters (`workers`, `queue`, `idle_timeout`, ...), one per
    // row of the settings table (src/config/table.rs).
    crate::settings_table!(crate::config::builder_setters);

    /// Address to accept on, e.g. `127.0.0.1:3000` or `[::1]:0`. Defaults to `127.0.0.1:3000`.
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.config.listen = addr.into();
        self
    }
    /// Admin endpoint address, or `None` for none. Defaults to `Some("127.0.0.1:9464")`.
    pub fn admin(mut self, addr: Option<&str>) -> Self {
        self.config.admin = addr.map(str::to_string);
        self
    }
    /// Adds a network to the allow list (when the list is not empty, only
    /// its networks may connect). Defaults to empty: all may.
    pub fn allow(mut self, net: Cidr) -> Self {
        self.config.allow.push(net);
        self
    }
    /// Adds a network to the deny list; deny wins over allow. Defaults to empty.
    pub fn deny(mut self, net: Cidr) -> Self {
        self.config.deny.push(net);
        self
    }
    /// Serve TLS with these files (mTLS when `client_ca` is set). Defaults to plain TCP.
    /// While the server runs, new handshakes use the files as they are on
    /// disk, checked every second (certificate rotation: `docs/reference.md`).
    pub fn tls(mut self, settings: TlsSettings) -> Self {
        self.config.tls = Some(settings);
        self
    }
    /// With `proxy_protocol`, accept connections only from this network
    /// (repeatable). Defaults to empty: from anyone.
    pub fn trusted_proxy(mut self, net: Cidr) -> Self {
        self.config.trusted_proxies.push(net);
        self
    }
    /// Accept on `listener`, a socket already bound and listening, instead
    /// of binding [`listen`](Builder::listen) (which is then ignored, as is
    /// `backlog`): e.g. one handed over by systemd socket activation
    /// ([`crate::activation::from_env`]), or one bound by the program.
    ///
    /// Such a listener is treated as inherited: at shutdown the server closes
    /// its own descriptor but never shuts the socket down, so it stays
    /// usable for whoever else holds it: systemd and the next process, or
    /// the program through a `try_clone`. On Linux it is switched to
    /// non-blocking mode and the accept thread waits in `poll()` on it
    /// (`docs/reference.md`, "systemd socket activation"). Defaults to
    /// none: bind `listen`.
    ///
    /// ```
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let kept = listener.try_clone()?;
    /// let server = syncnet::Server::builder().listener(listener).admin(None).build()?;
    /// let handle = server.spawn(|conn: &mut syncnet::Conn| syncnet::echo(conn))?;
    /// handle.shutdown();
    /// // still listening: a new connection waits in the backlog for `kept`
    /// let _client = std::net::TcpStream::connect(kept.local_addr()?)?;
    /// kept.set_nonblocking(false)?; // the server made the socket non-blocking
    /// let (_conn, _) = kept.accept()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(Arc::new(listener));
        self
    }
    /// The admin endpoint on `listener`, bound elsewhere, instead of binding
    /// [`admin`](Builder::admin) (ignored then, even when `None`); inherited
    /// as with [`Builder::listener`]. Defaults to none: bind `admin`.
    pub fn admin_listener(mut self, listener: std::net::TcpListener) -> Self {
        self.admin_listener = Some(Arc::new(listener));
        self
    }
    /// Replaces every setting at once.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Validates the settings and binds the listening sockets.
    ///
    /// Once this returns, connections to [`Server::local_addr`] queue in the
    /// backlog even before the server runs.
    ///
    /// # Errors
    /// [`Error::Config`] or [`Error::Address`] for bad settings;
    /// [`Error::Bind`] when an address cannot be bound (e.g. in use).
    pub fn build(self) -> Result<Server, Error> {
        let config = self.config;
        config.validate()?;
        let (listener, origin) = match self.listener {
            Some(handed) => (unshare(handed)?, Origin::Inherited),
            None => (
                bind(&config.listen, "listen", config.backlog)?,
                Origin::Bound,
            ),
        };
        let admin = self.admin_listener.map(unshare).transpose()?;
        let mut server = Server::new(listener, origin, admin, config)?;
        server.reject_reply = self.reject_reply;
        if let Some(options) = self.tracing {
            let tracer = options.start()?;
            tracer.register(&server.metrics_registry());
            server.tracer = Some(tracer);
        }
        Ok(server)
    }

    /// Turns tracing on: every request a
    /// [`FramedService`](crate::service::FramedService) answers gets a
    /// server span, every connection a `connection` span, and calls made
    /// inside handlers client spans ([`ClientSpan`](crate::trace::ClientSpan)),
    /// exported over OTLP/HTTP on a thread of their own; spans dropped
    /// because its queue was full are counted in
    /// `syncnet_trace_spans_dropped_total`; the shutdown exports what is
    /// queued within the drain timeout. Defaults to off (an incoming
    /// `traceparent` is still passed on). See [`crate::trace`].
    ///
    /// ```
    /// use syncnet::trace::TraceOptions;
    /// let server = syncnet::Server::builder()
    ///     .listen("127.0.0.1:0")
    ///     .admin(None)
    ///     .tracing(TraceOptions::new("http://127.0.0.1:4318").queue(1024))
    ///     .build()?;
    /// # drop(server);
    /// # Ok::<(), syncnet::Error>(())
    /// ```
    pub fn tracing(mut self, options: TraceOptions) -> Self {
        self.tracing = Some(options);
        self
    }

    /// The protocol's own refusal: when the server turns a plain-TCP
    /// connection away because it is full or shutting down (reasons
    /// `overload`, `per_ip_limit`, `rate_limit`, `shutdown`), it writes
    /// these bytes before closing, the way Redis answers
    /// `-ERR max number of clients reached`. Best effort: one non-blocking
    /// write, never delaying the accept loop; a refusal is counted and
    /// logged as without it. Not sent to TLS listeners' clients (there is no
    /// session yet), nor to `denied` or `protocol` refusals. Defaults to
    /// nothing (a plain close).
    ///
    /// ```
    /// let server = syncnet::Server::builder()
    ///     .listen("127.0.0.1:0")
    ///     .admin(None)
    ///     .reject_reply(b"-ERR max number of clients reached\r\n")
    ///     .build()?;
    /// # drop(server);
    /// # Ok::<(), syncnet::Error>(())
    /// ```
    pub fn reject_reply(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.reject_reply = Some(Arc::from(bytes.as_ref()));
        self
    }
}

/// The listener out of its `Arc`; a builder that was cloned shares it, and
/// then this server gets a descriptor of its own for the same socket.
fn unshare(listener: Arc<TcpListener>) -> Result<TcpListener, Error> {
    Arc::try_unwrap(listener).or_else(|shared| {
        shared
            .try_clone()
            .map_err(|e| Error::io("duplicating the handed-over listener", e))
    })
}

/// The address a listener is bound to.
pub(super) fn local_addr_of(listener: &TcpListener) -> Result<SocketAddr, Error> {
    listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))
}

/// Resolves `text` and binds a listening socket with `SO_REUSEADDR` and `backlog`.
pub(super) fn bind(text: &str, setting: &'static str, backlog: u32) -> Result<TcpListener, Error> {
    let bad_address = || Error::Address {
        setting: setting.to_string(),
        value: text.to_string(),
    };
    let addr = text
        .to_socket_addrs()
        .map_err(|_| bad_address())?
        .next()
        .ok_or_else(bad_address)?;
    let bind_error = |source| Error::Bind {
        setting,
        addr,
        source,
    };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(bind_error)?;
    socket.set_reuse_address(true).map_err(bind_error)?;
    socket.bind(&addr.into()).map_err(bind_error)?;
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    socket.listen(backlog).map_err(bind_error)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_names_a_bad_address() {
        let err = Server::builder()
            .listen("not-an-address")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
