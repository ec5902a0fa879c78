//! Copying bytes both ways between a client [`Conn`] and its upstream
//! socket, with half-closes passed on.
//!
//! The worker copies client → upstream; one scoped thread copies upstream →
//! client. Each direction ends at end of input by shutting down the other
//! side's writing (a half-close), and the opposite direction goes on. A
//! failure or a timeout in either direction shuts both sockets down, so the
//! other thread's blocking call returns at once.
//!
//! The idle timeout counts from the last byte in either direction: both
//! directions stamp one shared "last activity" instant, and a read timeout
//! on one side ends the connection only when the other side has been idle
//! too.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::conn::{Conn, ConnReader, ConnShared, ConnWriter, is_timeout};
use crate::lifecycle::Lifecycle;

/// The copy buffer of each direction.
const BUFFER: usize = 16 * 1024;
/// The stack of the upstream → client thread: the copy loop and a TLS
/// write; its buffer is on the heap.
const THREAD_STACK: usize = 256 * 1024;
/// How often the upstream → client thread wakes up on a silent upstream to
/// look at the idle time and the drain.
const POLL: Duration = Duration::from_secs(1);
/// The same, once the client's input ended during the drain.
const DRAIN_POLL: Duration = Duration::from_millis(100);
/// During the drain, after the client's end of input: how long the upstream
/// may stay silent before its reply is taken as complete.
const DRAIN_QUIET: Duration = Duration::from_millis(500);

thread_local! {
    /// The worker's copy buffer, reused by every connection it proxies.
    static WORKER_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What the two directions share.
struct Shared<'a> {
    client: &'a ConnShared,
    upstream: &'a TcpStream,
    started: Instant,
    /// Milliseconds from `started` to the last byte, either direction.
    last_activity: AtomicU64,
    /// `--idle-timeout` (the client socket's read timeout); `None`: off.
    idle: Option<Duration>,
    /// The client's input ended (half-close, or the drain).
    client_eof: AtomicBool,
    /// A direction ended the connection because both were idle for the
    /// idle timeout: its close reason is `idle_timeout`.
    idle_expired: AtomicBool,
    /// The server's phase, for the drain.
    lifecycle: &'a Lifecycle,
}

impl Shared<'_> {
    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_activity.store(ms, Ordering::Relaxed);
    }

    /// How long since the last byte in either direction.
    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    /// What is left of the idle timeout; `None` once it has passed.
    fn idle_left(&self) -> Option<Duration> {
        match self.idle {
            None => Some(POLL),
            Some(idle) => idle.checked_sub(self.quiet_for()).filter(|d| !d.is_zero()),
        }
    }

    /// Ends both directions for the idle timeout.
    fn expire(&self, e: io::Error) -> io::Error {
        self.idle_expired.store(true, Ordering::SeqCst);
        self.fail(e)
    }

    /// Ends both directions: both sockets shut down, `e` returned.
    fn fail(&self, e: io::Error) -> io::Error {
        let _ = self.upstream.shutdown(Shutdown::Both);
        let _ = self.client.stream.shutdown(Shutdown::Both);
        e
    }
}

/// Proxies `conn` to `upstream` until both directions ended. `Ok` when both
/// ended at end of input; the first error otherwise.
pub(super) fn relay(conn: &mut Conn, upstream: &TcpStream) -> io::Result<()> {
    let client = std::sync::Arc::clone(conn.shared());
    let idle = client.stream.read_timeout()?;
    upstream.set_write_timeout(client.stream.write_timeout()?)?;
    upstream.set_read_timeout(Some(idle.map_or(POLL, |d| d.min(POLL))))?;
    let lifecycle = conn.lifecycle_handle();
    let shared = Shared {
        client: &client,
        upstream,
        started: Instant::now(),
        last_activity: AtomicU64::new(0),
        idle,
        client_eof: AtomicBool::new(false),
        idle_expired: AtomicBool::new(false),
        lifecycle: &lifecycle,
    };
    let (reader, writer) = conn.split();
    let result = std::thread::scope(|scope| {
        let back = std::thread::Builder::new()
            .name("syncnet-proxy".into())
            .stack_size(THREAD_STACK)
            .spawn_scoped(scope, || upstream_to_client(&shared, writer))?;
        let forth = WORKER_BUFFER.with(|buffer| {
            let mut buffer = buffer.borrow_mut();
            if buffer.len() < BUFFER {
                buffer.resize(BUFFER, 0);
            }
            client_to_upstream(&shared, reader, &mut buffer)
        });
        let back = match back.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        forth.and(back)
    });
    if shared.idle_expired.load(Ordering::SeqCst) {
        conn.note_idle_timeout();
    }
    result
}

/// The worker's direction: client → upstream; at the client's end of input,
/// the upstream's writing is shut down.
fn client_to_upstream(
    shared: &Shared<'_>,
    mut reader: ConnReader<'_>,
    buf: &mut [u8],
) -> io::Result<()> {
    let mut upstream = shared.upstream;
    loop {
        match reader.read(buf) {
            Ok(0) => {
                shared.client_eof.store(true, Ordering::SeqCst);
                if shared.lifecycle.is_draining() {
                    let _ = upstream.set_read_timeout(Some(DRAIN_POLL));
                }
                // An upstream already gone is not an error of this direction:
                // the other one reports it.
                let _ = upstream.shutdown(Shutdown::Write);
                return Ok(());
            }
            Ok(n) => {
                shared.touch();
                upstream.write_all(&buf[..n]).map_err(|e| shared.fail(e))?;
                shared.touch();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => match shared.idle_left() {
                // The other direction was busy: wait for what is left, and
                // the connection has not timed out (yet).
                Some(left) => {
                    reader.forget_timeout();
                    let _ = shared.client.stream.set_read_timeout(Some(left));
                }
                None => return Err(shared.expire(e)),
            },
            Err(e) => return Err(shared.fail(e)),
        }
    }
}

/// The scoped thread's direction: upstream → client; at the upstream's end
/// of input, the client's writing is shut down.
fn upstream_to_client(shared: &Shared<'_>, mut writer: ConnWriter<'_>) -> io::Result<()> {
    let mut buf = vec![0u8; BUFFER];
    let mut upstream = shared.upstream;
    loop {
        match upstream.read(&mut buf) {
            Ok(0) => return writer.shutdown_write().map_err(|e| shared.fail(e)),
            Ok(n) => {
                shared.touch();
                writer
                    .write_all(&buf[..n])
                    .and_then(|()| writer.flush())
                    .map_err(|e| shared.fail(e))?;
                shared.touch();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                if shared.idle_left().is_none() {
                    return Err(shared.expire(e));
                }
                // The drain ended the client's input and the upstream has
                // been silent since: its reply is complete.
                if shared.client_eof.load(Ordering::SeqCst)
                    && shared.lifecycle.is_draining()
                    && shared.quiet_for() >= DRAIN_QUIET
                {
                    let _ = writer.shutdown_write();
                    let _ = upstream.shutdown(Shutdown::Both);
                    return Ok(());
                }
            }
            Err(e) => return Err(shared.fail(e)),
        }
    }
}
