//! `Server`: the builder, the accept loop, and serving one connection.
//!
//! Read this file top to bottom to follow a connection: [`Builder::build`]
//! binds the listener; [`accept_loop`] accepts and hands each connection to
//! the [pool](crate::pool); a worker runs [`Inner::serve`], which sets the
//! socket options, registers the connection for drain, calls the handler
//! under `catch_unwind`, and logs one close line.

use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};

use crate::config::ServerConfig;
use crate::conn::{Conn, ConnShared, Throttle, Transport};
use crate::limits::{AccessList, IpTicket, PerIpTable, ReadThrottle, Refusal};
use crate::logging::LogEvery;
use crate::logging::{ConnFields, conn_event};
use crate::metrics::{AcceptErrorKind, CloseReason, Metrics, RejectReason};
use crate::pool::{Pool, PoolConfig, PoolShared, Service, Waiting};
use crate::proxy_protocol::{self, ProxyHeader};
use crate::shutdown::{self, Active, Latch};
use crate::timer::FifoTimer;
use crate::{Cidr, Error, TlsSettings, admin, panics};

/// A connection handler: called once per connection, on a worker thread.
///
/// Any `Fn(&mut Conn) -> io::Result<()>` that is `Send + Sync + 'static` is a
/// handler. Returning `Ok(())` closes the connection with reason `eof`;
/// an error closes it with reason `error` (or `idle_timeout` /
/// `write_timeout` when a read or write timed out).
pub trait Handler: Send + Sync + 'static {
    /// Serves one connection until it should close.
    ///
    /// # Errors
    /// Any I/O error ends the connection; the server logs and counts it.
    fn handle(&self, conn: &mut Conn) -> io::Result<()>;
}

impl<F> Handler for F
where
    F: Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static,
{
    fn handle(&self, conn: &mut Conn) -> io::Result<()> {
        self(conn)
    }
}

/// Process-wide connection ids: unique across every server in the process.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

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
}

impl Builder {
    /// Address to accept on, e.g. `127.0.0.1:3000` or `[::1]:0`. Defaults to `127.0.0.1:3000`.
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.config.listen = addr.into();
        self
    }
    // The plain setters (`workers`, `idle_timeout`, ...): one per row of the
    // settings table marked `builder generated` (src/config/table.rs).
    crate::settings_table!(crate::config::builder_setters);
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
        let listener = bind(&config.listen, "--listen", config.backlog)?;
        Server::from_listener(listener, config)
    }
}

fn local_addr_of(listener: &TcpListener) -> Result<SocketAddr, Error> {
    listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))
}

/// Resolves `text` and binds a listening socket with `SO_REUSEADDR` and `backlog`.
fn bind(text: &str, setting: &str, backlog: u32) -> Result<TcpListener, Error> {
    let bad_address = || Error::Address {
        setting: setting.to_string(),
        value: text.to_string(),
    };
    let addr = text
        .to_socket_addrs()
        .map_err(|_| bad_address())?
        .next()
        .ok_or_else(bad_address)?;
    let bind_error = |source| Error::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(bind_error)?;
    socket.set_reuse_address(true).map_err(bind_error)?;
    socket.bind(&addr.into()).map_err(bind_error)?;
    let backlog = i32::try_from(backlog).unwrap_or(i32::MAX);
    socket.listen(backlog).map_err(bind_error)?;
    Ok(socket.into())
}

/// A bound server, ready to [`run`](Server::run) or [`spawn`](Server::spawn).
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// The TLS configuration built from `config.tls`, checked at build time.
    tls: Option<Arc<rustls::ServerConfig>>,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
}

/// Servers are moved into threads and shared by handles.
const _: () = {
    const fn must_be_send_sync<T: Send + Sync>() {}
    must_be_send_sync::<Server>();
    must_be_send_sync::<ServerHandle>();
};

impl Server {
    /// A builder with every setting at its default.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A server that accepts on a listener bound elsewhere (e.g. handed over
    /// by systemd socket activation). `config.listen` is ignored;
    /// `config.admin` is bound here.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn from_listener(listener: TcpListener, config: ServerConfig) -> Result<Server, Error> {
        config.validate()?;
        if OPTIONS_INHERITED {
            let local = local_addr_of(&listener)?;
            set_connection_options(SockRef::from(&listener), &config)
                .map_err(|e| Error::io(format!("setting socket options on {local}"), e))?;
        }
        let tls = match &config.tls {
            Some(settings) => {
                Some(crate::tls::server_config(settings).map_err(|e| Error::Tls {
                    setting: e.flag(),
                    message: e.to_string(),
                })?)
            }
            None => None,
        };
        let admin_listener = match &config.admin {
            Some(addr) => Some(bind(addr, "--admin", 128)?),
            None => None,
        };
        let local_addr = local_addr_of(&listener)?;
        let admin_addr = admin_listener.as_ref().map(local_addr_of).transpose()?;
        Ok(Server {
            config,
            tls,
            listener,
            admin_listener,
            local_addr,
            admin_addr,
        })
    }

    /// The address the listener is bound to (with the real port when port 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin endpoint's bound address, if it has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Runs the server until SIGINT/SIGTERM/SIGHUP, then shuts down gracefully.
    ///
    /// Installs the signal handler (once per process). Returns `Ok(())` when
    /// the drain completed.
    ///
    /// # Errors
    /// [`Error::Interrupted`] when a second signal arrives during the drain
    /// (the caller should exit at once, with code 130); [`Error::Signal`] or
    /// [`Error::Thread`] when the server cannot start.
    pub fn run(self, handler: impl Handler) -> Result<(), Error> {
        let signals = shutdown::signals()?;
        raise_fd_limit(self.config.workers + self.config.queue + 64);
        let handle = Arc::new(self.spawn(handler)?);
        let _ = signals.recv();
        log::info!(target: "syncnet::shutdown", "signal received: shutting down (a second signal exits at once)");
        let (done_tx, done_rx) = crossbeam_channel::bounded(1);
        let draining = Arc::clone(&handle);
        thread::Builder::new()
            .name("syncnet-shutdown".into())
            .spawn(move || {
                draining.shutdown();
                let _ = done_tx.send(());
            })
            .map_err(|source| Error::Thread {
                what: "shutdown",
                source,
            })?;
        crossbeam_channel::select! {
            recv(done_rx) -> _ => Ok(()),
            recv(signals) -> _ => {
                log::warn!(target: "syncnet::shutdown", "second signal: exiting without finishing the drain");
                Err(Error::Interrupted)
            }
        }
    }

    /// Starts the server on background threads and returns at once.
    ///
    /// Installs no signal handler: call [`ServerHandle::shutdown`] to stop.
    /// This is how tests and programs that embed syncnet use it.
    ///
    /// ```
    /// let server = syncnet::Server::builder().listen("127.0.0.1:0").admin(None).build()?;
    /// let handle = server.spawn(|conn: &mut syncnet::Conn| syncnet::echo(conn))?;
    /// let addr = handle.local_addr();
    /// # let _ = addr;
    /// handle.shutdown();
    /// # Ok::<(), syncnet::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Thread`] when a thread cannot be started.
    pub fn spawn(self, handler: impl Handler) -> Result<ServerHandle, Error> {
        panics::install_hook();
        let Server {
            config,
            tls,
            listener,
            admin_listener,
            local_addr,
            admin_addr,
        } = self;
        let metrics = Arc::new(Metrics::new(config.workers));
        let lifetime_timer = if config.max_lifetime.is_zero() {
            None
        } else {
            Some(FifoTimer::start(
                "syncnet-lifetime",
                config.max_lifetime,
                |conn: Weak<ConnShared>| {
                    if let Some(conn) = conn.upgrade() {
                        conn.expire_lifetime();
                    }
                },
            )?)
        };
        if config.proxy_protocol && config.trusted_proxies.is_empty() && config.log_connections {
            log::warn!(target: "syncnet::server", "--proxy-protocol without --trusted-proxy: any peer may claim any client address");
        }
        let inner = Arc::new(Inner {
            config: config.clone(),
            handler: Box::new(handler),
            metrics: Arc::clone(&metrics),
            active: Active::default(),
            ready: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            reject_logs: RejectReason::ALL.map(|_| LogEvery::new()),
            access: AccessList::new(config.allow.clone(), config.deny.clone()),
            per_ip: PerIpTable::new(config.max_conns_per_ip, config.conn_rate_per_ip),
            tls,
            lifetime_timer,
        });
        let pool = Pool::new(
            PoolConfig {
                workers: inner.config.workers,
                queue: inner.config.queue,
                queue_timeout: inner.config.queue_timeout,
                stack_size: inner.config.worker_stack_size,
            },
            Arc::clone(&inner) as Arc<dyn Service>,
            metrics,
        )?;
        let pool_shared = Arc::clone(pool.shared());

        let admin = match admin_listener {
            Some(listener) => Some(Box::new(admin::spawn(listener, Arc::clone(&inner))?)),
            None => None,
        };

        let listener = Arc::new(listener);
        let accept_thread = {
            let inner = Arc::clone(&inner);
            let listener = Arc::clone(&listener);
            thread::Builder::new()
                .name("syncnet-accept".into())
                .spawn(move || accept_loop(&listener, &inner, pool))
                .map_err(|source| Error::Thread {
                    what: "accept",
                    source,
                })?
        };

        if inner.config.log_connections {
            log::info!(
                target: "syncnet::server",
                listen:% = local_addr,
                admin = admin_addr.map_or_else(|| "off".to_string(), |a| a.to_string()),
                workers = inner.config.workers,
                version = env!("CARGO_PKG_VERSION");
                "syncnet listening on {local_addr}"
            );
        }

        Ok(ServerHandle {
            inner,
            local_addr,
            admin_addr,
            admin,
            running: Mutex::new(Some(Running {
                listener,
                accept_thread,
                pool: pool_shared,
            })),
            shutdown_started: AtomicBool::new(false),
            shutdown_done: Latch::default(),
        })
    }
}

/// What a running server holds until shutdown takes it apart.
struct Running {
    listener: Arc<TcpListener>,
    accept_thread: JoinHandle<()>,
    pool: Arc<PoolShared>,
}

/// A running server started with [`Server::spawn`].
///
/// Shareable between threads (`&ServerHandle` is enough to shut it down).
/// Dropping the handle without calling [`shutdown`](ServerHandle::shutdown)
/// stops the server at once: no shutdown delay, no drain.
pub struct ServerHandle {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    admin: Option<Box<ServerHandle>>,
    running: Mutex<Option<Running>>,
    /// False until the first call to `shutdown`.
    shutdown_started: AtomicBool,
    shutdown_done: Latch,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.local_addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address the server accepts on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin endpoint's address, or `None` when it is off.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Shuts the server down as SPEC §2 says, and returns when it is done:
    /// `/readyz` turns 503 at once; after the shutdown delay the listener
    /// closes; every open connection's reading side is shut down so its
    /// handler sees end of input; after the drain timeout the rest are closed
    /// by force. Returns at most about drain timeout + 2 s after the delay.
    ///
    /// Safe to call from several threads: later callers wait for the first.
    pub fn shutdown(&self) {
        let config = &self.inner.config;
        self.shutdown_with(config.shutdown_delay, config.drain_timeout);
    }

    fn shutdown_with(&self, delay: Duration, drain: Duration) {
        if self.shutdown_started.swap(true, Ordering::SeqCst) {
            self.shutdown_done.wait();
            return;
        }
        let inner = &self.inner;
        inner.ready.store(false, Ordering::SeqCst);
        if inner.config.log_connections {
            log::info!(target: "syncnet::shutdown", delay = crate::config::format_duration(delay), drain_timeout = crate::config::format_duration(drain); "shutdown started");
        }
        shutdown::wait_delay(delay);

        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(running) = running {
            // Stop accepting; the accept thread drops its end of the queue.
            inner.stopping.store(true, Ordering::SeqCst);
            wake_acceptor(&running.listener);
            let _ = running.accept_thread.join();
            drop(running.listener);

            running.pool.reject_queued();
            inner.active.begin_drain();
            let drained = !drain.is_zero() && inner.active.wait_empty(Instant::now() + drain);
            if !drained {
                let forced = inner.active.force_close();
                if forced > 0 && inner.config.log_connections {
                    log::warn!(target: "syncnet::shutdown", connections = forced; "drain deadline reached: closing the remaining connections");
                }
                inner
                    .active
                    .wait_empty(Instant::now() + Duration::from_secs(1));
            }
            // Handlers stuck outside socket calls are left behind after this.
            running
                .pool
                .wait_workers(Instant::now() + Duration::from_secs(1));
        }
        if let Some(admin) = &self.admin {
            admin.shutdown_with(Duration::ZERO, Duration::ZERO);
        }
        if inner.config.log_connections {
            log::info!(target: "syncnet::shutdown", "shutdown complete");
        }
        self.shutdown_done.set();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown_with(Duration::ZERO, Duration::ZERO);
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and warns when it is
/// still below `wanted` (every connection, queued or served, holds a
/// descriptor; accept fails with EMFILE beyond that).
fn raise_fd_limit(wanted: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted as u64 => log::warn!(
            target: "syncnet::server",
            fd_limit = limit, wanted;
            "the open-file limit is below workers + queue + 64: connections beyond it fail with EMFILE (raise LimitNOFILE / ulimit -n)"
        ),
        Ok(_) => {}
        Err(e) => {
            log::warn!(target: "syncnet::server", error:% = e; "cannot raise the open-file limit")
        }
    }
}

/// Makes a blocked `accept()` return: on Linux, shutting down a listening
/// socket wakes it at once with an error. Elsewhere, a connection to
/// ourselves does the same (it is then closed as `shutdown`).
fn wake_acceptor(listener: &TcpListener) {
    let woke = SockRef::from(listener).shutdown(Shutdown::Both).is_ok();
    if (!woke || !cfg!(target_os = "linux"))
        && let Ok(addr) = listener.local_addr()
    {
        let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
    }
}

/// How long the accept loop pauses after an error that would repeat at
/// once (out of file descriptors or memory), so it never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// The accept loop: runs on its own thread until shutdown.
fn accept_loop(listener: &TcpListener, inner: &Arc<Inner>, pool: Pool) {
    let warn_gate = LogEvery::new();
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                inner.metrics.accepted.inc();
                let now = Instant::now();
                let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
                let mut waiting = Waiting {
                    conn: Arc::new(ConnShared::new(id, stream)),
                    peer: canonical_peer(peer),
                    since: now,
                    ticket: None,
                };
                if inner.stopping.load(Ordering::SeqCst) {
                    inner.reject(waiting, RejectReason::Shutdown);
                    break;
                }
                match inner.admit_on_accept(waiting.peer.ip(), now) {
                    Ok(ticket) => {
                        waiting.ticket = ticket;
                        pool.dispatch(waiting);
                    }
                    Err(reason) => inner.reject(waiting, reason),
                }
            }
            Err(_) if inner.stopping.load(Ordering::SeqCst) => break,
            // EINTR, or the idle timeout the listener carries for its
            // connections (SO_RCVTIMEO also bounds accept): nothing to do.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                let kind = classify_accept_error(&e);
                inner.metrics.accept_error(kind);
                if let Some(suppressed) = warn_gate.allow() {
                    log::warn!(target: "syncnet::server", kind = kind.as_str(), error:% = e, suppressed; "accept failed");
                }
                if kind != AcceptErrorKind::Other || !is_per_connection(&e) {
                    thread::sleep(ACCEPT_BACKOFF);
                }
            }
        }
    }
}

fn classify_accept_error(e: &io::Error) -> AcceptErrorKind {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    match e.raw_os_error() {
        Some(EMFILE | ENFILE) => AcceptErrorKind::FdLimit,
        Some(ENOBUFS | ENOMEM) => AcceptErrorKind::NoMemory,
        _ => AcceptErrorKind::Other,
    }
}

/// Errors that concern only the connection being accepted: skip it and go on.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::PermissionDenied
    )
}

/// IPv4 clients of a dual-stack listener (`::ffff:a.b.c.d`) become plain IPv4.
fn canonical_peer(peer: SocketAddr) -> SocketAddr {
    match peer.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), peer.port()),
            None => peer,
        },
        IpAddr::V4(_) => peer,
    }
}

/// The server state every thread shares.
pub(crate) struct Inner {
    pub(crate) config: ServerConfig,
    handler: Box<dyn Handler>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) active: Active,
    /// True until shutdown begins (`/readyz`).
    pub(crate) ready: AtomicBool,
    /// True once the accept loop must stop.
    stopping: AtomicBool,
    /// One gate per reject reason: at most one log line a second each.
    reject_logs: [LogEvery; RejectReason::ALL.len()],
    /// `--allow` / `--deny`.
    access: AccessList,
    /// `--max-conns-per-ip` / `--conn-rate-per-ip`.
    per_ip: Arc<PerIpTable>,
    /// `--tls-cert` and friends: `None` for plain TCP.
    tls: Option<Arc<rustls::ServerConfig>>,
    lifetime_timer: Option<FifoTimer<Weak<ConnShared>>>,
}

/// Sets the per-connection socket options: `TCP_NODELAY`, the idle and write
/// timeouts (`SO_RCVTIMEO`/`SO_SNDTIMEO`) and TCP keepalive.
///
/// On Linux an accepted socket inherits all of these from its listener, so
/// they are set once on the listener ([`Server::from_listener`]) and cost no
/// system call per connection; elsewhere the worker sets them on each
/// accepted socket. A failure on an accepted socket means the peer is already
/// gone; its first read or write reports it.
fn set_connection_options(socket: SockRef<'_>, config: &ServerConfig) -> io::Result<()> {
    let timeout = |d: Duration| (!d.is_zero()).then_some(d);
    socket.set_tcp_nodelay(config.nodelay)?;
    socket.set_read_timeout(timeout(config.idle_timeout))?;
    socket.set_write_timeout(timeout(config.write_timeout))?;
    if config.keepalive.is_zero() {
        socket.set_keepalive(false)
    } else {
        socket.set_tcp_keepalive(&TcpKeepalive::new().with_time(config.keepalive))
    }
}

/// True where accepted sockets inherit [`set_connection_options`] from the listener.
const OPTIONS_INHERITED: bool = cfg!(target_os = "linux");

impl Inner {
    fn close_reason(
        &self,
        conn: &Conn,
        outcome: &Result<io::Result<()>, panics::CaughtPanic>,
    ) -> CloseReason {
        match outcome {
            Err(_) => CloseReason::Panic,
            Ok(_) if conn.shared().lifetime_expired() => CloseReason::Lifetime,
            Ok(_) if self.active.is_draining() => CloseReason::Drain,
            Ok(Ok(())) => CloseReason::Eof,
            Ok(Err(_)) => conn.timed_out().unwrap_or(CloseReason::Error),
        }
    }
}

/// What the prelude learned about a connection before its handler runs.
struct Opened {
    /// The client: the socket peer, or the address a PROXY header named.
    peer: SocketAddr,
    /// The balancer, when a PROXY header named another client.
    proxy_peer: Option<SocketAddr>,
    /// Plain, or the TLS session the handshake established.
    transport: Transport,
}

impl Inner {
    /// Admission on the accept thread, before the queue: allow/deny and the
    /// per-IP limits. With `--proxy-protocol` the socket peer is a balancer:
    /// only the trusted-proxy list applies here, the rest once the header
    /// named the client (in [`Inner::prelude`]).
    fn admit_on_accept(&self, ip: IpAddr, now: Instant) -> Result<Option<IpTicket>, RejectReason> {
        if self.config.proxy_protocol {
            let trusted = self.config.trusted_proxies.is_empty()
                || self
                    .config
                    .trusted_proxies
                    .iter()
                    .any(|net| net.contains(ip));
            return if trusted {
                Ok(None)
            } else {
                Err(RejectReason::Denied)
            };
        }
        self.admit_client(ip, now)
    }

    /// Allow/deny, then the per-IP count and rate, for the client `ip`.
    fn admit_client(&self, ip: IpAddr, now: Instant) -> Result<Option<IpTicket>, RejectReason> {
        if !self.access.permits(ip) {
            return Err(RejectReason::Denied);
        }
        if self.per_ip.is_off() {
            return Ok(None);
        }
        match self.per_ip.admit(ip, now) {
            Ok(ticket) => Ok(Some(ticket)),
            Err(Refusal::PerIpLimit) => Err(RejectReason::PerIpLimit),
            Err(Refusal::RateLimit) => Err(RejectReason::RateLimit),
        }
    }

    /// Everything between pick-up and the handler that may refuse the
    /// connection: the PROXY header and the admission of the client it
    /// names, then the TLS handshake and the client-certificate name check,
    /// each under the handshake timeout.
    ///
    /// Never inlined: its locals (a TLS handshake's) would otherwise widen
    /// `serve`'s stack frame, which every held connection's thread keeps.
    #[inline(never)]
    fn prelude(
        &self,
        shared: &ConnShared,
        socket_peer: SocketAddr,
        ticket: &mut Option<IpTicket>,
    ) -> Result<Opened, (RejectReason, Option<String>)> {
        let mut opened = Opened {
            peer: socket_peer,
            proxy_peer: None,
            transport: Transport::Plain,
        };
        if self.config.proxy_protocol
            && let Some(client) = self.read_proxy_header(shared, ticket)?
        {
            opened.peer = client;
            opened.proxy_peer = Some(socket_peer);
        }
        if let Some(config) = &self.tls {
            opened.transport = Transport::Tls(self.tls_handshake(shared, config)?);
        }
        Ok(opened)
    }

    /// Reads the PROXY header and admits the client it names; `None` for a
    /// `LOCAL`/`UNKNOWN` header (a balancer's health check, served as the
    /// socket peer). Never inlined, like [`Inner::tls_handshake`]: plain
    /// connections never pay for their stack frames.
    #[inline(never)]
    fn read_proxy_header(
        &self,
        shared: &ConnShared,
        ticket: &mut Option<IpTicket>,
    ) -> Result<Option<SocketAddr>, (RejectReason, Option<String>)> {
        let deadline = Instant::now() + self.config.handshake_timeout;
        match proxy_protocol::read_header_tcp(&shared.stream, deadline) {
            Ok(ProxyHeader::Proxied { source, .. }) => {
                let client = canonical_peer(source);
                *ticket = self
                    .admit_client(client.ip(), Instant::now())
                    .map_err(|reason| (reason, None))?;
                Ok(Some(client))
            }
            Ok(ProxyHeader::Local) => Ok(None),
            Err(e) => Err((RejectReason::Protocol, Some(e.to_string()))),
        }
    }

    /// The TLS handshake under the handshake timeout, then the
    /// `--tls-allow-name` check on the client certificate.
    #[inline(never)]
    fn tls_handshake(
        &self,
        shared: &ConnShared,
        config: &Arc<rustls::ServerConfig>,
    ) -> Result<Box<rustls::ServerConnection>, (RejectReason, Option<String>)> {
        let timeout = self.config.handshake_timeout;
        let session = match crate::tls::accept(&shared.stream, Arc::clone(config), timeout) {
            Ok(session) => session,
            Err(e) => {
                self.metrics.tls_handshake_failures.inc();
                return Err((RejectReason::Tls, Some(e.to_string())));
            }
        };
        let allow = self
            .config
            .tls
            .as_ref()
            .map_or(&[][..], |t| &t.allow_names[..]);
        if !crate::tls::name_allowed(&session, allow) {
            return Err((
                RejectReason::Denied,
                Some("client certificate name not allowed".to_string()),
            ));
        }
        Ok(Box::new(session))
    }
}

impl Service for Inner {
    fn serve(&self, waiting: Waiting) -> Option<Arc<ConnShared>> {
        let Waiting {
            conn: shared,
            peer: socket_peer,
            mut ticket,
            ..
        } = waiting;
        let id = shared.id;
        if !OPTIONS_INHERITED {
            let _ = set_connection_options(SockRef::from(&shared.stream), &self.config);
        }
        if !self.active.insert(&shared) {
            // The drain began while this connection waited for a worker.
            self.metrics.rejected(RejectReason::Shutdown);
            self.log_reject(id, socket_peer, RejectReason::Shutdown, None);
            return Some(shared);
        }
        self.metrics.active.inc();
        self.metrics.workers_busy.inc();
        let opened = match self.prelude(&shared, socket_peer, &mut ticket) {
            Ok(opened) => opened,
            Err((reason, detail)) => {
                self.active.remove(id);
                self.metrics.rejected(reason);
                self.metrics.active.dec();
                self.metrics.workers_busy.dec();
                self.log_reject(id, socket_peer, reason, detail.as_deref());
                drop(ticket);
                return Some(shared);
            }
        };
        if let Some(timer) = &self.lifetime_timer {
            timer.schedule(Arc::downgrade(&shared));
        }
        let fields = ConnFields {
            conn_id: id,
            peer: opened.peer,
            proxy_peer: opened.proxy_peer,
        };
        let log_connections = self.config.log_connections;
        if log_connections {
            conn_event(
                log::Level::Debug,
                format_args!("connection opened"),
                fields,
                &[],
            );
        }

        let throttle = (self.config.max_bytes_per_sec > 0).then(|| Throttle {
            bucket: ReadThrottle::new(self.config.max_bytes_per_sec, Instant::now()),
        });
        let mut conn = Conn::new(
            Arc::clone(&shared),
            opened.transport,
            opened.peer,
            opened.proxy_peer,
            throttle,
            Arc::clone(&self.active.drain_signal),
        );
        let outcome = panics::catch(|| self.handler.handle(&mut conn));
        if matches!(outcome, Ok(Ok(()))) {
            conn.finish();
            conn.discard_unread();
        }
        let reason = self.close_reason(&conn, &outcome);
        let duration = conn.started().elapsed();
        drop(conn);
        self.active.remove(id);
        shared.report_bytes(&self.metrics);
        drop(ticket);

        self.metrics.closed(reason);
        if reason == CloseReason::Panic {
            self.metrics.handler_panics.inc();
        }
        self.metrics.duration.observe(duration.as_secs_f64());
        self.metrics.active.dec();
        self.metrics.workers_busy.dec();

        self.log_close(fields, &shared, duration, reason, outcome);
        // The last reference: the pool drops it, closing the socket.
        Some(shared)
    }

    fn reject(&self, waiting: Waiting, reason: RejectReason) {
        self.metrics.rejected(reason);
        self.log_reject(waiting.conn.id, waiting.peer, reason, None);
        drop(waiting.conn);
    }
}

impl Inner {
    /// Logs the close line (or the panic line) of a connection. Never
    /// inlined, to keep `serve`'s stack frame small.
    #[inline(never)]
    fn log_close(
        &self,
        fields: ConnFields,
        shared: &ConnShared,
        duration: Duration,
        reason: CloseReason,
        outcome: Result<io::Result<()>, panics::CaughtPanic>,
    ) {
        let log_connections = self.config.log_connections;
        let summary = [
            ("bytes_in", shared.bytes_in().into()),
            ("bytes_out", shared.bytes_out().into()),
            ("duration_ms", (duration.as_millis() as u64).into()),
            ("reason", reason.as_str().into()),
        ];
        match outcome {
            Err(panic) => {
                let location = panic.location.unwrap_or_default();
                let details = [
                    ("panic", panic.message.as_str().into()),
                    ("location", location.as_str().into()),
                ];
                let fields_list: Vec<_> = summary.iter().chain(&details).cloned().collect();
                conn_event(
                    log::Level::Error,
                    format_args!("handler panicked: {}", panic.message),
                    fields,
                    &fields_list,
                );
            }
            Ok(Err(e)) if log_connections && reason == CloseReason::Error => {
                let error = e.to_string();
                let fields_list: Vec<_> = summary
                    .iter()
                    .cloned()
                    .chain([("error", error.as_str().into())])
                    .collect();
                conn_event(
                    log::Level::Info,
                    format_args!("connection closed"),
                    fields,
                    &fields_list,
                );
            }
            _ if log_connections => {
                conn_event(
                    log::Level::Info,
                    format_args!("connection closed"),
                    fields,
                    &summary,
                );
            }
            _ => {}
        }
    }

    /// Logs a rejection at `warn`, at most once a second per reason.
    pub(crate) fn log_reject(
        &self,
        id: u64,
        peer: SocketAddr,
        reason: RejectReason,
        detail: Option<&str>,
    ) {
        if !self.config.log_connections {
            return;
        }
        if let Some(suppressed) = self.reject_logs[reason as usize].allow() {
            let fields = ConnFields {
                conn_id: id,
                peer,
                proxy_peer: None,
            };
            let mut extra = vec![
                ("reason", reason.as_str().into()),
                ("suppressed", suppressed.into()),
            ];
            if let Some(detail) = detail {
                extra.push(("error", detail.into()));
            }
            conn_event(
                log::Level::Warn,
                format_args!("connection rejected"),
                fields,
                &extra,
            );
        }
    }

    /// The metrics in text format, with live byte counts brought up to date.
    pub(crate) fn render_metrics(&self) -> Vec<u8> {
        self.active
            .for_each(|conn| conn.report_bytes(&self.metrics));
        self.metrics.encode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_peers_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:4000".parse().unwrap();
        assert_eq!(canonical_peer(mapped), "10.1.2.3:4000".parse().unwrap());
        let v6: SocketAddr = "[::1]:4000".parse().unwrap();
        assert_eq!(canonical_peer(v6), v6);
    }

    #[test]
    fn accept_errors_are_sorted() {
        let emfile = io::Error::from_raw_os_error(24);
        assert_eq!(classify_accept_error(&emfile), AcceptErrorKind::FdLimit);
        let enobufs = io::Error::from_raw_os_error(105);
        assert_eq!(classify_accept_error(&enobufs), AcceptErrorKind::NoMemory);
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(classify_accept_error(&aborted), AcceptErrorKind::Other);
        assert!(is_per_connection(&aborted));
    }

    #[test]
    fn accepted_sockets_carry_the_connection_options() {
        let config = ServerConfig {
            idle_timeout: Duration::from_millis(1500),
            write_timeout: Duration::from_millis(2500),
            keepalive: Duration::from_secs(42),
            nodelay: true,
            ..ServerConfig::default()
        };
        let listener = bind("127.0.0.1:0", "--listen", 8).unwrap();
        set_connection_options(SockRef::from(&listener), &config).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        if !OPTIONS_INHERITED {
            set_connection_options(SockRef::from(&accepted), &config).unwrap();
        }
        assert!(accepted.nodelay().unwrap());
        assert_eq!(
            accepted.read_timeout().unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            accepted.write_timeout().unwrap(),
            Some(Duration::from_millis(2500))
        );
        let socket = SockRef::from(&accepted);
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(42)
        );
    }

    #[test]
    fn bind_names_a_bad_address() {
        let err = Server::builder()
            .listen("not-an-address")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }
}
