//! The server: [`Server`] (bound, ready to run), [`ServerHandle`] (running)
//! and [`Handler`] (your code). One file per step of a connection's path:
//!
//! | file | what it owns |
//! |------|--------------|
//! | `builder.rs` | [`Builder`]: settings, validation, binding the listener |
//! | `accept.rs` | the accept loop, sorting accept errors |
//! | `listener.rs` | the listening socket, bound or inherited, and waking `accept()` at shutdown |
//! | `admission.rs` | allow/deny, trusted proxies, per-IP count and rate |
//! | `../pool.rs` | the bounded queue and the workers; refuses `overload` |
//! | `serve.rs` | one connection on a worker: prelude, handler under `catch_unwind`, close line |
//! | `registry.rs` | the connections being served, so the drain can reach them |
//! | `shutdown.rs` | [`ServerHandle::shutdown`]: readiness, delay, drain, deadline |
//! | `options.rs` | the socket options accepted connections carry |
//!
//! The server's phase (running, stopping, draining, stopped) is one
//! `Lifecycle` (`src/lifecycle.rs`) that all of them read.

mod accept;
mod admission;
mod builder;
mod listener;
mod options;
mod registry;
mod serve;
mod shutdown;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, Weak};
use std::thread::{self, JoinHandle};

use socket2::SockRef;

pub use builder::Builder;

use crate::config::ServerConfig;
use crate::conn::{Conn, ConnShared};
use crate::lifecycle::Lifecycle;
use crate::logging::LogEvery;
use crate::metrics::{Metrics, RejectReason};
use crate::pool::{Pool, PoolConfig, PoolShared};
use crate::timer::FifoTimer;
use crate::tls::{LiveConfig, TlsMetrics, Watcher};
use crate::trace::Tracer;
use crate::{Error, admin, panics};
use admission::Admission;
use builder::{bind, local_addr_of};
use listener::{Acceptor, Origin};
use options::{OPTIONS_INHERITED, set_connection_options};
use registry::Registry;
use serve::ConnService;

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

/// A bound server, ready to [`run`](Server::run) or [`spawn`](Server::spawn).
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    /// The TLS configuration built from `config.tls`, checked at build time
    /// and reloaded while running when its files change.
    tls: Option<Arc<LiveConfig>>,
    listener: TcpListener,
    /// Bound here, or handed over (then never shut down: `listener.rs`).
    origin: Origin,
    admin_listener: Option<(TcpListener, Origin)>,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    /// [`Builder::reject_reply`]: written to refused plain-TCP connections.
    reject_reply: Option<Arc<[u8]>>,
    /// [`Builder::tracing`]: records and exports spans.
    tracer: Option<Tracer>,
    /// This server's metrics, created with it so that other components
    /// (e.g. a `ClientPool`) can register theirs before it runs.
    metrics: Arc<Metrics>,
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
    /// by systemd socket activation, [`crate::activation`]). `config.listen`
    /// and `config.backlog` are ignored; `config.admin` is bound here.
    /// The same as [`Builder::listener`] followed by [`Builder::build`].
    ///
    /// The listener is left open and usable at shutdown: it is never shut
    /// down (`shutdown(2)`), only this server's descriptor is closed, so a
    /// clone of it (`try_clone`), or the same socket in another process,
    /// can go on accepting. On Linux it is switched to non-blocking mode and
    /// the accept thread waits in `poll()`.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn from_listener(listener: TcpListener, config: ServerConfig) -> Result<Server, Error> {
        Server::new(listener, Origin::Inherited, None, config)
    }

    /// A server on `listener`, with the admin endpoint on `admin` if given
    /// (else bound from `config.admin`).
    fn new(
        listener: TcpListener,
        origin: Origin,
        admin: Option<TcpListener>,
        config: ServerConfig,
    ) -> Result<Server, Error> {
        config.validate()?;
        if OPTIONS_INHERITED {
            let local = local_addr_of(&listener)?;
            set_connection_options(SockRef::from(&listener), &config)
                .map_err(|e| Error::io(format!("setting socket options on {local}"), e))?;
        }
        let metrics = Arc::new(Metrics::new(config.workers));
        let tls = match &config.tls {
            Some(settings) => Some(Arc::new(
                LiveConfig::load(settings.clone(), TlsMetrics::register(metrics.registry()))
                    .map_err(|e| Error::Tls {
                        setting: e.flag(),
                        message: e.to_string(),
                    })?,
            )),
            None => None,
        };
        let admin_listener = match (admin, &config.admin) {
            (Some(inherited), _) => Some((inherited, Origin::Inherited)),
            (None, Some(addr)) => Some((bind(addr, "admin", 128)?, Origin::Bound)),
            (None, None) => None,
        };
        let local_addr = local_addr_of(&listener)?;
        let admin_addr = admin_listener
            .as_ref()
            .map(|(l, _)| local_addr_of(l))
            .transpose()?;
        Ok(Server {
            tls,
            listener,
            origin,
            admin_listener,
            local_addr,
            admin_addr,
            reject_reply: None,
            tracer: None,
            metrics,
            config,
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

    /// The registry behind this server's `/metrics`. Register your own
    /// collectors in it (e.g. a `ClientPool`'s) to have
    /// them exposed next to the server's. A handle: clones share the registry.
    pub fn metrics_registry(&self) -> prometheus::Registry {
        self.metrics.registry().clone()
    }

    /// Runs the server until SIGINT/SIGTERM/SIGHUP, then shuts down gracefully.
    ///
    /// Returns `Ok(())` when the drain completed.
    ///
    /// # Side effects
    /// Besides those of [`Server::spawn`]: installs a process-wide handler
    /// for SIGINT, SIGTERM and SIGHUP (once per process, shared by every
    /// later `run`), and raises the process's soft `RLIMIT_NOFILE` to its
    /// hard limit, warning when that is still below `workers + queue + 64`.
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
    /// # Side effects
    /// Installs a process-wide panic hook (once; it chains to the hook that
    /// was there before) that keeps panics inside handlers out of stderr:
    /// the worker logs them as one `handler panicked` line instead. Panics
    /// elsewhere still reach the previous hook.
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
            origin,
            admin_listener,
            local_addr,
            admin_addr,
            reject_reply,
            tracer,
            metrics,
        } = self;
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
        // Certificate rotation: rebuilds the TLS configuration when its files change.
        let tls_watcher = tls
            .as_ref()
            .map(|live| Watcher::start(Arc::clone(live)))
            .transpose()
            .map_err(|source| Error::Thread {
                what: "TLS reload",
                source,
            })?;
        let lifecycle = Arc::new(Lifecycle::default());
        let service = Arc::new(ConnService {
            handler: Box::new(handler),
            metrics: Arc::clone(&metrics),
            lifecycle: Arc::clone(&lifecycle),
            registry: Registry::new(Arc::clone(&lifecycle)),
            admission: Admission::new(&config),
            tls,
            lifetime_timer,
            reject_logs: RejectReason::ALL.map(|_| LogEvery::new()),
            reject_reply: reject_reply.filter(|_| config.tls.is_none()),
            tracer,
            config,
        });
        let config = &service.config;
        let pool = Pool::new(
            PoolConfig {
                workers: config.workers,
                queue: config.queue,
                queue_timeout: config.queue_timeout,
                stack_size: config.worker_stack_size,
            },
            Arc::clone(&service) as Arc<dyn crate::pool::Service>,
            metrics,
            lifecycle,
        )?;
        let pool_shared = Arc::clone(pool.shared());

        // The admin endpoint is a small syncnet server of its own that sees
        // only this server's readiness and metrics.
        let admin = match admin_listener {
            Some((listener, origin)) => {
                let status = Arc::clone(&service) as Arc<dyn admin::Status>;
                let admin_server = Server::new(listener, origin, None, admin::settings())?;
                Some(Box::new(admin_server.spawn(admin::handler(status))?))
            }
            None => None,
        };

        let listener = Arc::new(
            Acceptor::new(listener, origin)
                .map_err(|e| Error::io(format!("preparing the listener on {local_addr}"), e))?,
        );
        let accept_thread = {
            let service = Arc::clone(&service);
            let listener = Arc::clone(&listener);
            thread::Builder::new()
                .name("syncnet-accept".into())
                .spawn(move || accept::accept_loop(&listener, &service, pool))
                .map_err(|source| Error::Thread {
                    what: "accept",
                    source,
                })?
        };

        if config.log_connections {
            log::info!(
                target: "syncnet::server",
                listen:% = local_addr,
                admin = admin_addr.map_or_else(|| "off".to_string(), |a| a.to_string()),
                workers = config.workers,
                version = env!("CARGO_PKG_VERSION");
                "syncnet listening on {local_addr}"
            );
        }

        Ok(ServerHandle {
            service,
            local_addr,
            admin_addr,
            admin,
            running: Mutex::new(Some(Running {
                listener,
                accept_thread,
                pool: pool_shared,
                tls_watcher,
            })),
        })
    }
}

/// What a running server holds until shutdown takes it apart.
struct Running {
    listener: Arc<Acceptor>,
    accept_thread: JoinHandle<()>,
    pool: Arc<PoolShared>,
    /// Reloads the TLS files; the shutdown stops it (and waits for it)
    /// after the drain.
    tls_watcher: Option<Watcher>,
}

/// A running server started with [`Server::spawn`].
///
/// Shareable between threads (`&ServerHandle` is enough to shut it down).
/// Dropping the handle without calling [`shutdown`](ServerHandle::shutdown)
/// stops the server at once: no shutdown delay, no drain.
pub struct ServerHandle {
    service: Arc<ConnService>,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    admin: Option<Box<ServerHandle>>,
    running: Mutex<Option<Running>>,
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
