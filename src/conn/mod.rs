//! `Conn`: one accepted connection as a handler sees it.
//!
//! The socket lives in a [`ConnShared`] behind an `Arc`, shared with the
//! server's registry of active connections (so shutdown can wake a blocked
//! read) without `try_clone()`: one connection costs one file descriptor.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::lifecycle::Lifecycle;

mod split;

use crate::limits::ReadThrottle;
use crate::metrics::{CloseReason, Metrics};
pub use split::{ConnReader, ConnWriter};

/// The part of a connection that other threads may touch: the socket (to shut
/// it down on drain, lifetime or deadline) and the byte counters (read at
/// scrape time). Only the worker serving the connection writes the counters.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub id: u64,
    pub stream: TcpStream,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// How much of `bytes_in`/`bytes_out` the metrics totals already hold.
    reported_in: AtomicU64,
    reported_out: AtomicU64,
    /// Set by the lifetime timer before it shuts the socket down.
    lifetime_expired: AtomicBool,
}

impl ConnShared {
    pub(crate) fn new(id: u64, stream: TcpStream) -> ConnShared {
        ConnShared {
            id,
            stream,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            reported_in: AtomicU64::new(0),
            reported_out: AtomicU64::new(0),
            lifetime_expired: AtomicBool::new(false),
        }
    }

    /// Adds `n` to a counter only this connection's worker writes: a plain
    /// load and store, no locked instruction on the per-read path.
    #[inline]
    fn add(counter: &AtomicU64, n: usize) {
        counter.store(
            counter.load(Ordering::Relaxed) + n as u64,
            Ordering::Relaxed,
        );
    }

    /// Moves the bytes counted since the last report into the server totals.
    /// Safe to call from the scrape thread and the worker at once: `fetch_max`
    /// makes sure every byte is reported exactly once.
    pub(crate) fn report_bytes(&self, metrics: &Metrics) {
        let now_in = self.bytes_in.load(Ordering::Relaxed);
        let before_in = self.reported_in.fetch_max(now_in, Ordering::Relaxed);
        metrics
            .bytes_received
            .inc_by(now_in.saturating_sub(before_in));
        let now_out = self.bytes_out.load(Ordering::Relaxed);
        let before_out = self.reported_out.fetch_max(now_out, Ordering::Relaxed);
        metrics
            .bytes_sent
            .inc_by(now_out.saturating_sub(before_out));
    }

    pub(crate) fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    pub(crate) fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }

    /// Ends the connection because it reached `--max-lifetime`.
    pub(crate) fn expire_lifetime(&self) {
        self.lifetime_expired.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    pub(crate) fn lifetime_expired(&self) -> bool {
        self.lifetime_expired.load(Ordering::SeqCst)
    }
}

/// One client connection, handed to the handler as `&mut Conn`.
///
/// `Conn` implements [`Read`] and [`Write`]: a handler reads and writes it
/// like a `TcpStream`, with blocking calls. The server has already applied
/// the idle and write timeouts, so a silent or stuck peer turns into an error
/// from `read` or `write`, never into a wedged worker.
///
/// ```no_run
/// use std::io::{Read, Write};
/// fn shout(conn: &mut syncnet::Conn) -> std::io::Result<()> {
///     let mut buf = [0u8; 1024];
///     loop {
///         let n = conn.read(&mut buf)?;
///         if n == 0 {
///             return Ok(()); // the peer closed its side
///         }
///         buf[..n].make_ascii_uppercase();
///         conn.write_all(&buf[..n])?;
///     }
/// }
/// ```
#[derive(Debug)]
pub struct Conn {
    shared: Arc<ConnShared>,
    transport: Transport,
    peer: SocketAddr,
    proxy_peer: Option<SocketAddr>,
    started: Instant,
    /// The reading side's state: throttle, drain, read timeout.
    reading: ReadState,
    /// Set when a write timed out, so the close can say so.
    write_timed_out: bool,
    /// The server's phase: reads behave differently once it drains.
    lifecycle: Arc<Lifecycle>,
    /// The server's metrics, for the layers above a connection (framed
    /// services count their requests there).
    metrics: Arc<Metrics>,
    /// Fields the handler added to the close log line
    /// ([`Conn::set_log_field`]); boxed so that a connection without any
    /// costs one pointer.
    log_fields: Option<Box<LogFields>>,
}

/// Fields a handler adds to its connection's close log line, in order.
pub(crate) type LogFields = Vec<(&'static str, String)>;

/// What the reading side of a connection keeps between reads; shared by a
/// whole [`Conn`] and its [`ConnReader`] half.
#[derive(Debug)]
struct ReadState {
    /// `--max-bytes-per-sec`: paces reads; `None` when off.
    throttle: Option<Throttle>,
    /// True once a read during the drain declared end of input.
    drain_eof: bool,
    /// Set when a read timed out, so the close can say so.
    timed_out: bool,
}

/// During the drain, how long the receive queue must stay empty before a
/// read reports end of input (see [`Conn::read_during_drain`]).
const DRAIN_QUIET: Duration = Duration::from_millis(300);
/// During the drain, the latest a read may still return data: after this
/// long from the start of the drain, reads report end of input even when
/// the peer never pauses (see [`ReadState::read_during_drain`]).
pub(crate) const DRAIN_CUTOFF: Duration = Duration::from_millis(400);
/// How often the queue is looked at during that quiet period.
const DRAIN_POLL: Duration = Duration::from_millis(5);

/// How bytes travel: straight on the socket, or through a TLS session.
/// Handlers never see the difference.
#[derive(Debug)]
pub(crate) enum Transport {
    Plain,
    /// The session sits behind a mutex only for [`Conn::split`]'s two
    /// halves; a whole `Conn` reaches it with `get_mut`, without locking.
    Tls(Box<Mutex<rustls::ServerConnection>>),
}

/// The read throttle of one connection (`max_bytes_per_sec`). Its waits are
/// cut short when the server starts draining (see `Conn::throttled_len`).
#[derive(Debug)]
pub(crate) struct Throttle {
    pub bucket: ReadThrottle,
}

impl Conn {
    pub(crate) fn new(
        shared: Arc<ConnShared>,
        transport: Transport,
        peer: SocketAddr,
        proxy_peer: Option<SocketAddr>,
        throttle: Option<Throttle>,
        lifecycle: Arc<Lifecycle>,
        metrics: Arc<Metrics>,
    ) -> Conn {
        Conn {
            shared,
            transport,
            peer,
            proxy_peer,
            started: Instant::now(),
            reading: ReadState {
                throttle,
                drain_eof: false,
                timed_out: false,
            },
            write_timed_out: false,
            lifecycle,
            metrics,
            log_fields: None,
        }
    }

    /// The connection's id: unique within the process, the `conn_id` of its log lines.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The client's address (`peer` in logs): with `--proxy-protocol`, the
    /// one the PROXY header names. IPv4 clients of an IPv6 listener appear
    /// as plain IPv4 addresses.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// With `--proxy-protocol`, the balancer's address (the socket peer);
    /// `None` otherwise.
    pub fn proxy_peer(&self) -> Option<SocketAddr> {
        self.proxy_peer
    }

    /// The local address the client connected to (the listener's address,
    /// with the real port).
    ///
    /// # Errors
    /// The operating system's error, e.g. when the socket is already closed.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared.stream.local_addr()
    }

    /// Adds `key = value` to this connection's close log line (`connection
    /// closed`, or `handler panicked`), after the server's own fields
    /// (`conn_id`, `peer`, `bytes_in`, `bytes_out`, `duration_ms`,
    /// `reason`); use a key that is not one of those. Setting a key again
    /// replaces its value. The proxy ([`crate::proxy::Proxy`]) adds
    /// `upstream` this way.
    pub fn set_log_field(&mut self, key: &'static str, value: String) {
        let fields = self.log_fields.get_or_insert_with(Box::default);
        match fields.iter_mut().find(|(k, _)| *k == key) {
            Some(field) => field.1 = value,
            None => fields.push((key, value)),
        }
    }

    /// The fields [`Conn::set_log_field`] added, taken for the close line.
    pub(crate) fn take_log_fields(&mut self) -> Option<Box<LogFields>> {
        self.log_fields.take()
    }

    /// Bytes the handler has read so far.
    pub fn bytes_read(&self) -> u64 {
        self.shared.bytes_in()
    }

    /// Bytes the handler has written so far.
    pub fn bytes_written(&self) -> u64 {
        self.shared.bytes_out()
    }

    /// When the worker picked the connection up.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The names the client's certificate is known by, with mTLS
    /// (`--tls-client-ca`): its DNS subject alternative names, or, only when
    /// it has none, its subject common name. Empty for plain TCP, and for
    /// TLS without a client certificate. Useful to route or authorise by the
    /// client's identity.
    pub fn peer_names(&self) -> Vec<String> {
        match &self.transport {
            Transport::Plain => Vec::new(),
            Transport::Tls(tls) => crate::tls::peer_names(&lock(tls)),
        }
    }

    /// True once the server started draining: the handler should finish
    /// what it is doing and return (its reads will soon report end of
    /// input). A long-running handler that does not read can poll this.
    pub fn is_draining(&self) -> bool {
        self.lifecycle.is_draining()
    }

    /// Shuts down the writing side: the peer reads end of input, and can
    /// still send to us.
    ///
    /// # Errors
    /// The operating system's error, e.g. when the peer is gone.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.shared.stream.shutdown(Shutdown::Write)
    }

    /// Ends a TLS session cleanly (close_notify) before the socket closes;
    /// nothing to do for plain TCP.
    pub(crate) fn finish(&mut self) {
        if let Transport::Tls(tls) = &mut self.transport {
            let tls = session(tls);
            tls.send_close_notify();
            let _ = crate::tls::tls_flush(tls, &self.shared.stream);
        }
    }

    /// The metrics of the server serving this connection, as a handle a
    /// layer above can keep while it borrows the connection.
    pub(crate) fn metrics_handle(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The server's phase, as a handle a layer above can keep while it
    /// borrows the connection (the proxy watches the drain with it).
    pub(crate) fn lifecycle_handle(&self) -> Arc<Lifecycle> {
        Arc::clone(&self.lifecycle)
    }

    pub(crate) fn shared(&self) -> &Arc<ConnShared> {
        &self.shared
    }

    /// Records that the idle timeout ended the connection, for a layer that
    /// measures idleness itself (the proxy counts both directions).
    pub(crate) fn note_idle_timeout(&mut self) {
        self.reading.timed_out = true;
    }

    /// The timeout that ended the connection, if one did.
    pub(crate) fn timed_out(&self) -> Option<CloseReason> {
        if self.reading.timed_out {
            Some(CloseReason::IdleTimeout)
        } else if self.write_timed_out {
            Some(CloseReason::WriteTimeout)
        } else {
            None
        }
    }

    /// Splits the connection into a read half and a write half that two
    /// threads can use at once (e.g. a proxy copying both ways), for plain
    /// and TLS connections alike. The halves keep the connection's
    /// behaviour: byte counts, timeouts, the read throttle and the drain's
    /// end of input. [`ConnWriter::shutdown_write`] passes a half-close on.
    ///
    /// ```no_run
    /// use std::io::{Read, Write};
    /// fn copy_both_ways(conn: &mut syncnet::Conn, upstream: std::net::TcpStream) -> std::io::Result<()> {
    ///     let (mut from_client, mut to_client) = conn.split();
    ///     std::thread::scope(|scope| {
    ///         let mut up_read = &upstream;
    ///         scope.spawn(move || {
    ///             std::io::copy(&mut up_read, &mut to_client)?;
    ///             to_client.shutdown_write()
    ///         });
    ///         let mut up_write = &upstream;
    ///         std::io::copy(&mut from_client, &mut up_write)?;
    ///         upstream.shutdown(std::net::Shutdown::Write)
    ///     })
    /// }
    /// ```
    pub fn split(&mut self) -> (ConnReader<'_>, ConnWriter<'_>) {
        let tls = match &self.transport {
            Transport::Plain => None,
            Transport::Tls(tls) => Some(&**tls),
        };
        let reader = ConnReader {
            state: &mut self.reading,
            shared: &self.shared,
            lifecycle: &self.lifecycle,
            tls: tls.map(split::TlsInbox::new),
        };
        let writer = ConnWriter {
            shared: &self.shared,
            tls,
            timed_out: &mut self.write_timed_out,
        };
        (reader, writer)
    }
}

/// True for the errors our socket timeouts (`SO_RCVTIMEO`, `SO_SNDTIMEO`)
/// produce: `WouldBlock` (EAGAIN) on Unix, `TimedOut` on Windows. On Unix
/// `TimedOut` (ETIMEDOUT) is TCP giving up on a peer that stopped answering
/// (keepalive probes or retransmissions unanswered): a vanished peer, closed
/// with reason `error`, not an idle or write timeout.
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    match e.kind() {
        io::ErrorKind::WouldBlock => true,
        io::ErrorKind::TimedOut => cfg!(windows),
        _ => false,
    }
}

impl ReadState {
    /// One read through `raw` (the socket or the TLS session), under the
    /// throttle, with the drain's end-of-input rule, counted in `shared`.
    #[inline]
    fn read(
        &mut self,
        shared: &ConnShared,
        lifecycle: &Lifecycle,
        buf: &mut [u8],
        mut raw: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let buf = match &mut self.throttle {
            None => buf,
            Some(throttle) => {
                let n = Self::throttled_len(throttle, lifecycle, buf.len());
                &mut buf[..n]
            }
        };
        let result = match raw(buf) {
            Ok(0) if lifecycle.is_draining() => self.read_during_drain(lifecycle, buf, &mut raw),
            Ok(n) if n > 0 && lifecycle.is_draining() && self.cut_off(lifecycle) => Ok(0),
            other => other,
        };
        match result {
            Ok(n) => {
                ConnShared::add(&shared.bytes_in, n);
                if let Some(throttle) = &mut self.throttle {
                    throttle.bucket.consume(n);
                }
                Ok(n)
            }
            Err(e) => {
                self.timed_out |= is_timeout(&e);
                Err(e)
            }
        }
    }

    /// How much of `want` bytes a read may take under the throttle, after
    /// waiting for tokens if there are none; no limit once shutdown started.
    fn throttled_len(throttle: &mut Throttle, lifecycle: &Lifecycle, want: usize) -> usize {
        loop {
            match throttle.bucket.allowance(want, Instant::now()) {
                Ok(n) => return n,
                Err(wait) => {
                    let until = Some(Instant::now() + wait);
                    if lifecycle.wait_for(until, || lifecycle.is_draining()) {
                        return want;
                    }
                }
            }
        }
    }

    /// True (and from then on end of input) once [`DRAIN_CUTOFF`] has
    /// passed since the drain began: bytes still arriving then are not
    /// served. Cold and never inlined: only reads during a drain get here.
    #[inline(never)]
    fn cut_off(&mut self, lifecycle: &Lifecycle) -> bool {
        if !self.drain_eof
            && lifecycle
                .drain_started()
                .is_some_and(|started| started.elapsed() >= DRAIN_CUTOFF)
        {
            self.drain_eof = true;
        }
        self.drain_eof
    }

    /// A read returned 0 during the drain. The drain shut the reading side
    /// down, and from then on a read returns 0 whenever the receive queue is
    /// momentarily empty — even while bytes the client sent before the
    /// shutdown are still on their way. So end of input is reported once the
    /// queue stayed empty for [`DRAIN_QUIET`]; bytes that arrive in that
    /// time are returned. A client that never pauses cannot keep the
    /// connection open that way: [`DRAIN_CUTOFF`] after the drain began,
    /// end of input is reported whatever still arrives (those bytes are
    /// discarded before the close). This costs nothing outside the drain.
    /// Never inlined: cold, and kept out of the read path's stack frame.
    #[inline(never)]
    fn read_during_drain(
        &mut self,
        lifecycle: &Lifecycle,
        buf: &mut [u8],
        raw: &mut impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.drain_eof || buf.is_empty() {
            return Ok(0);
        }
        let now = Instant::now();
        let cutoff = lifecycle.drain_started().unwrap_or(now) + DRAIN_CUTOFF;
        let quiet_until = (now + DRAIN_QUIET).min(cutoff);
        while Instant::now() < quiet_until {
            std::thread::sleep(DRAIN_POLL);
            let n = raw(buf)?;
            if n > 0 {
                return Ok(n);
            }
        }
        self.drain_eof = true;
        Ok(0)
    }
}

impl Conn {
    /// One read from the socket or the TLS session.
    #[inline]
    fn read_transport(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_transport(&mut self.transport, &self.shared.stream, buf)
    }

    /// Reads and drops what is still queued on a drained connection, so
    /// closing it sends FIN, not RST: a reset would make the client discard
    /// replies it has not read yet. Outside a drain it does nothing, and the
    /// check is inlined: the 4 KiB scratch buffer's frame (whose stack probe
    /// touches a page) is entered only while draining.
    #[inline]
    pub(crate) fn discard_unread(&mut self) {
        if self.lifecycle.is_draining() {
            self.discard_unread_now();
        }
    }

    /// [`Conn::discard_unread`]'s work. Never inlined: its scratch buffer
    /// must not widen the frame of the worker's serving path.
    #[inline(never)]
    fn discard_unread_now(&mut self) {
        let mut scratch = [0u8; 4096];
        for _ in 0..1024 {
            match self.read_transport(&mut scratch) {
                Ok(n) if n > 0 => {}
                _ => return,
            }
        }
    }
}

impl Read for Conn {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Conn {
            reading,
            transport,
            shared,
            lifecycle,
            ..
        } = self;
        reading.read(shared, lifecycle, buf, |buf| {
            read_transport(transport, &shared.stream, buf)
        })
    }
}

/// One read from the socket or the TLS session of a whole `Conn`.
#[inline]
fn read_transport(
    transport: &mut Transport,
    stream: &TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    match transport {
        Transport::Plain => (&*stream).read(buf),
        Transport::Tls(tls) => crate::tls::tls_read(session(tls), stream, buf),
    }
}

impl Write for Conn {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = match &mut self.transport {
            Transport::Plain => (&self.shared.stream).write(buf),
            Transport::Tls(tls) => crate::tls::tls_write(session(tls), &self.shared.stream, buf),
        };
        match result {
            Ok(n) => {
                ConnShared::add(&self.shared.bytes_out, n);
                Ok(n)
            }
            Err(e) => {
                self.write_timed_out |= is_timeout(&e);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.transport {
            Transport::Plain => Ok(()),
            Transport::Tls(tls) => crate::tls::tls_flush(session(tls), &self.shared.stream),
        }
    }
}

/// The TLS session of a whole `Conn`: exclusive access, no locking.
#[inline]
fn session(tls: &mut Mutex<rustls::ServerConnection>) -> &mut rustls::ServerConnection {
    tls.get_mut().unwrap_or_else(|p| p.into_inner())
}

/// The TLS session shared by the two halves of a split `Conn`. A panic in
/// one half cannot leave rustls' state half-updated in a way the other half
/// could trip over any worse than the error it then gets.
fn lock(tls: &Mutex<rustls::ServerConnection>) -> MutexGuard<'_, rustls::ServerConnection> {
    tls.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::is_timeout;
    use std::io::{Error, ErrorKind};

    #[test]
    fn only_the_sockets_own_timeouts_count_as_timeouts() {
        assert!(is_timeout(&Error::from(ErrorKind::WouldBlock)));
        // ETIMEDOUT: TCP gave up on a vanished peer (keepalive), an error.
        assert_eq!(is_timeout(&Error::from(ErrorKind::TimedOut)), cfg!(windows));
        assert!(!is_timeout(&Error::from(ErrorKind::ConnectionReset)));
    }
}
