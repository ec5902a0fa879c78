//! One connection, on a worker thread: [`ConnService::serve`] registers it
//! for the drain, runs the prelude (PROXY header, TLS handshake), calls the
//! handler under `catch_unwind`, and logs one close line.
//!
//! # Stack frames
//! Every held connection keeps its worker's stack pages, so `serve`'s frame
//! is kept small: the prelude, the PROXY header read, the TLS handshake and
//! the close log line are `#[inline(never)]` functions, and so are the
//! drain's cold paths in `Conn`. A change that inlines a big frame into
//! `serve` shows up as about +4 KiB per held connection. Re-measure with
//! `bench/compare.sh` (RSS per held connection, fresh workers) and
//! `bench/hold-warm.sh` (after a first hold warmed the workers); the
//! figures to compare with are in `BENCHMARKS.md`.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use socket2::SockRef;

use super::Handler;
use super::admission::{Admission, canonical_peer};
use super::options::{OPTIONS_INHERITED, set_connection_options};
use super::registry::Registry;
use crate::config::ServerConfig;
use crate::conn::{Conn, ConnShared, LogFields, Throttle, Transport};
use crate::lifecycle::Lifecycle;
use crate::limits::{IpTicket, ReadThrottle};
use crate::logging::{ConnFields, LogEvery, conn_event};
use crate::metrics::{CloseReason, Metrics, RejectReason};
use crate::panics;
use crate::pool::{Service, Waiting};
use crate::proxy_protocol::{self, ProxyHeader};
use crate::timer::FifoTimer;
use crate::tls::LiveConfig;
use crate::trace::{ConnSummary, Tracer, record_connection};

/// What every worker of one server shares to serve a connection.
pub(crate) struct ConnService {
    pub(super) config: ServerConfig,
    pub(super) handler: Box<dyn Handler>,
    pub(super) metrics: Arc<Metrics>,
    /// The server's phase: readiness, the drain.
    pub(super) lifecycle: Arc<Lifecycle>,
    /// The connections being served, for the drain and the byte counts.
    pub(super) registry: Registry,
    /// Allow/deny, trusted proxies, per-IP limits.
    pub(super) admission: Admission,
    /// `--tls-cert` and friends, reloaded when the files change: `None`
    /// for plain TCP.
    pub(super) tls: Option<Arc<LiveConfig>>,
    /// `--max-lifetime`: shuts each connection down when its time is up.
    pub(super) lifetime_timer: Option<FifoTimer<Weak<ConnShared>>>,
    /// One gate per reject reason: at most one log line a second each.
    pub(super) reject_logs: [LogEvery; RejectReason::ALL.len()],
    /// `Builder::reject_reply`, for plain TCP only.
    pub(super) reject_reply: Option<Arc<[u8]>>,
    /// `Builder::tracing`: installed on the worker for each connection.
    pub(super) tracer: Option<Tracer>,
}

/// How a handler ended: returned (with its result) or panicked.
type Outcome = Result<io::Result<()>, panics::CaughtPanic>;

/// What the prelude learned about a connection before its handler runs.
struct Opened {
    /// The client: the socket peer, or the address a PROXY header named.
    peer: SocketAddr,
    /// The balancer, when a PROXY header named another client.
    proxy_peer: Option<SocketAddr>,
    /// Plain, or the TLS session the handshake established.
    transport: Transport,
}

/// Why the prelude refused a connection, the detail for its log line, and
/// the client a PROXY header named, if one was read before the refusal (the
/// log line then shows that client as `peer` and the balancer as
/// `proxy_peer`, like every other event of the connection).
struct Refused {
    reason: RejectReason,
    detail: Option<String>,
    client: Option<SocketAddr>,
}

impl Refused {
    fn new(reason: RejectReason, detail: Option<String>) -> Refused {
        Refused {
            reason,
            detail,
            client: None,
        }
    }
}

impl Service for ConnService {
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
        if !self.registry.insert(&shared) {
            // The drain began while this connection waited for a worker.
            self.metrics.rejected(RejectReason::Shutdown);
            self.log_reject(id, socket_peer, None, RejectReason::Shutdown, None);
            return Some(shared);
        }
        self.metrics.active.inc();
        self.metrics.workers_busy.inc();
        let opened = match self.prelude(&shared, socket_peer, &mut ticket) {
            Ok(opened) => opened,
            Err(refused) => {
                let reason = refused.reason;
                self.registry.remove(id);
                self.metrics.rejected(reason);
                self.metrics.active.dec();
                self.metrics.workers_busy.dec();
                let (peer, proxy_peer) = match refused.client {
                    Some(client) => (client, Some(socket_peer)),
                    None => (socket_peer, None),
                };
                self.log_reject(id, peer, proxy_peer, reason, refused.detail.as_deref());
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
        if self.config.log_connections {
            conn_event(
                log::Level::Debug,
                format_args!("connection opened"),
                fields,
                &[],
            );
        }

        let (outcome, reason, duration, extra) = self.run_handler(&shared, opened);
        self.registry.remove(id);
        shared.report_bytes(&self.metrics);
        drop(ticket);

        self.metrics.closed(reason);
        if reason == CloseReason::Panic {
            self.metrics.handler_panics.inc();
        }
        self.metrics.duration.observe(duration.as_secs_f64());
        self.metrics.active.dec();
        self.metrics.workers_busy.dec();

        if let Some(tracer) = &self.tracer {
            let summary = ConnSummary {
                conn_id: id,
                peer: fields.peer,
                duration,
                bytes_in: shared.bytes_in(),
                bytes_out: shared.bytes_out(),
                reason: reason.as_str(),
                failed: matches!(reason, CloseReason::Error | CloseReason::Panic),
            };
            record_connection(tracer, summary);
        }
        self.log_close(fields, &shared, duration, reason, outcome, extra);
        // The last reference: the pool drops it, closing the socket.
        Some(shared)
    }

    fn reject(&self, waiting: Waiting, reason: RejectReason) {
        self.metrics.rejected(reason);
        self.log_reject(waiting.conn.id, waiting.peer, None, reason, None);
        if let Some(reply) = &self.reject_reply
            && matches!(
                reason,
                RejectReason::Overload
                    | RejectReason::PerIpLimit
                    | RejectReason::RateLimit
                    | RejectReason::Shutdown
            )
        {
            send_refusal(&waiting.conn.stream, reply);
        }
        drop(waiting.conn);
    }
}

impl ConnService {
    /// Runs the handler on the connection the prelude opened, under
    /// `catch_unwind`, and ends a clean TLS session. Returns the outcome,
    /// the close reason, how long the connection was served and the fields
    /// the handler added to the close line.
    ///
    /// Never inlined: the `Conn` lives in this frame, not in `serve`'s, so
    /// the close path that follows (`log_close`, whose logging goes deep)
    /// starts from a shallower stack, and a warm worker keeps fewer pages.
    #[inline(never)]
    fn run_handler(
        &self,
        shared: &Arc<ConnShared>,
        opened: Opened,
    ) -> (Outcome, CloseReason, Duration, Option<Box<LogFields>>) {
        let throttle = (self.config.max_bytes_per_sec > 0).then(|| Throttle {
            bucket: ReadThrottle::new(self.config.max_bytes_per_sec, Instant::now()),
        });
        let mut conn = Conn::new(
            Arc::clone(shared),
            opened.transport,
            opened.peer,
            opened.proxy_peer,
            throttle,
            Arc::clone(&self.lifecycle),
            Arc::clone(&self.metrics),
        );
        let tracing = self.tracer.clone().map(crate::trace::install);
        let outcome = panics::catch(|| self.handler.handle(&mut conn));
        drop(tracing);
        if matches!(outcome, Ok(Ok(()))) {
            conn.finish();
            conn.discard_unread();
        }
        let reason = self.close_reason(&conn, &outcome);
        let extra = conn.take_log_fields();
        (outcome, reason, conn.started().elapsed(), extra)
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
    ) -> Result<Opened, Refused> {
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
        if let Some(live) = &self.tls {
            // The configuration in force now; a reload does not affect it.
            let config = live.current();
            let session = self.tls_handshake(shared, &config).map_err(|mut refused| {
                refused.client = opened.proxy_peer.map(|_| opened.peer);
                refused
            })?;
            opened.transport = Transport::Tls(session);
        }
        Ok(opened)
    }

    /// Reads the PROXY header and admits the client it names; `None` for a
    /// `LOCAL`/`UNKNOWN` header (a balancer's health check, served as the
    /// socket peer). Never inlined, like [`ConnService::tls_handshake`]:
    /// plain connections never pay for their stack frames.
    #[inline(never)]
    fn read_proxy_header(
        &self,
        shared: &ConnShared,
        ticket: &mut Option<IpTicket>,
    ) -> Result<Option<SocketAddr>, Refused> {
        let deadline = Instant::now() + self.config.handshake_timeout;
        match proxy_protocol::read_header_tcp(&shared.stream, deadline) {
            Ok(ProxyHeader::Proxied { source, .. }) => {
                let client = canonical_peer(source);
                *ticket = self
                    .admission
                    .client(client.ip(), Instant::now())
                    .map_err(|reason| Refused {
                        reason,
                        detail: None,
                        client: Some(client),
                    })?;
                Ok(Some(client))
            }
            Ok(ProxyHeader::Local) => Ok(None),
            Err(e) => Err(Refused::new(RejectReason::Protocol, Some(e.to_string()))),
        }
    }

    /// The TLS handshake under the handshake timeout, then the
    /// `--tls-allow-name` check on the client certificate.
    #[inline(never)]
    fn tls_handshake(
        &self,
        shared: &ConnShared,
        config: &Arc<rustls::ServerConfig>,
    ) -> Result<Box<std::sync::Mutex<rustls::ServerConnection>>, Refused> {
        let timeout = self.config.handshake_timeout;
        let session = match crate::tls::accept(&shared.stream, Arc::clone(config), timeout) {
            Ok(session) => session,
            Err(e) => {
                self.metrics.tls_handshake_failures.inc();
                return Err(Refused::new(RejectReason::Tls, Some(e.to_string())));
            }
        };
        let allow = self
            .config
            .tls
            .as_ref()
            .map_or(&[][..], |t| &t.allow_names[..]);
        if !crate::tls::name_allowed(&session, allow) {
            return Err(Refused::new(
                RejectReason::Denied,
                Some("client certificate name not allowed".to_string()),
            ));
        }
        Ok(Box::new(std::sync::Mutex::new(session)))
    }

    fn close_reason(
        &self,
        conn: &Conn,
        outcome: &Result<io::Result<()>, panics::CaughtPanic>,
    ) -> CloseReason {
        match outcome {
            Err(_) => CloseReason::Panic,
            Ok(_) if conn.shared().lifetime_expired() => CloseReason::Lifetime,
            Ok(_) if self.lifecycle.is_draining() => CloseReason::Drain,
            Ok(Ok(())) => CloseReason::Eof,
            Ok(Err(_)) => conn.timed_out().unwrap_or(CloseReason::Error),
        }
    }

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
        extra: Option<Box<LogFields>>,
    ) {
        let log_connections = self.config.log_connections;
        if !log_connections && outcome.is_ok() {
            return; // nothing to log (a panic is logged whatever the setting)
        }
        let mut summary: Vec<(&str, log::kv::Value<'_>)> = vec![
            ("bytes_in", shared.bytes_in().into()),
            ("bytes_out", shared.bytes_out().into()),
            ("duration_ms", (duration.as_millis() as u64).into()),
            ("reason", reason.as_str().into()),
        ];
        // The handler's own fields (`Conn::set_log_field`), after the server's.
        let extra = extra.as_deref().map_or(&[][..], |fields| &fields[..]);
        summary.extend(
            extra
                .iter()
                .map(|(key, value)| (*key, value.as_str().into())),
        );
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
    pub(super) fn log_reject(
        &self,
        id: u64,
        peer: SocketAddr,
        proxy_peer: Option<SocketAddr>,
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
                proxy_peer,
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
}

/// Writes `reply` to a connection about to be refused: one non-blocking
/// write (a refusal never waits for a slow peer), then end of output, then
/// whatever the client already sent is read and dropped, so the close sends
/// FIN rather than a reset that could destroy the reply in flight. Never
/// inlined: the accept thread's and the workers' hot paths do not pay for it.
#[inline(never)]
fn send_refusal(stream: &std::net::TcpStream, reply: &[u8]) {
    use std::io::{Read, Write};
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut sock = stream;
    if sock.write(reply).is_ok() {
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut scratch = [0u8; 512];
        for _ in 0..16 {
            match sock.read(&mut scratch) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
    }
}

/// The admin endpoint's narrow view of this server: readiness and metrics.
impl crate::admin::Status for ConnService {
    fn is_ready(&self) -> bool {
        self.lifecycle.phase().is_ready()
    }

    /// The metrics in text format, with live byte counts brought up to date.
    fn metrics_text(&self) -> Vec<u8> {
        self.registry
            .for_each(|conn| conn.report_bytes(&self.metrics));
        self.metrics.encode()
    }
}
