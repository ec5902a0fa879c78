//! Opening the connections: [`Target`] makes each one, [`open_all`] opens
//! a run's worth from a few opener threads.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;
use super::options::BenchOptions;
use super::progress::Progress;
use super::stats::Stats;
use super::threads::THREAD_STACK;
use crate::Error;

/// Threads that open the connections: at most this many connects are in
/// flight at once.
pub(super) const OPENERS: usize = 64;

/// Where the plain-TCP connections go; [`Target::open`] is the one place
/// such a connection is made (TLS runs connect through
/// [`Client::connect_tls`](crate::Client::connect_tls) instead).
#[derive(Debug, Clone)]
pub struct Target {
    addr: SocketAddr,
}

impl Target {
    /// Resolves `connect` (the `--connect` value) to its first address.
    ///
    /// # Errors
    /// [`Error::Address`] when it does not resolve.
    pub fn resolve(connect: &str) -> Result<Target, Error> {
        let bad = || Error::Address {
            setting: "--connect".into(),
            value: connect.to_string(),
        };
        let addr = connect
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        Ok(Target { addr })
    }

    /// The address connections go to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens one connection ready for the benchmark: connected within 5 s,
    /// `TCP_NODELAY` on, reads and writes bounded by a 5 s timeout.
    ///
    /// # Errors
    /// The operating system's error (counted in `connect_errors`).
    pub fn open(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(stream)
    }
}

/// Each connection needs one descriptor: raise the soft limit when the
/// run would not fit under it (best effort; a failed connect is counted).
pub(super) fn raise_fd_limit(connections: usize) {
    let wanted = connections as u64 + 64;
    let current = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
    if current < wanted {
        let _ = rlimit::increase_nofile_limit(wanted);
    }
}

/// Opens `opts.connections` connections from a few opener threads (at most
/// 64 connects in flight); `check` may test each new one (hold mode's first
/// echo) and reject it. Returns the connections with their numbers, and
/// when the last opener finished.
pub(super) fn open_all(
    opts: &BenchOptions,
    target: &Target,
    stats: &Stats,
    progress: &Progress,
    check: impl Fn(usize, &mut TcpStream) -> bool + Sync,
) -> Result<(Vec<(usize, TcpStream)>, Instant), Error> {
    let n = opts.connections;
    let next = AtomicUsize::new(0);
    let tried = AtomicUsize::new(0);
    let mut opened = Vec::with_capacity(n);
    let mut finished = Instant::now();
    thread::scope(|scope| -> Result<(), Error> {
        let mut openers = Vec::new();
        for i in 0..n.min(OPENERS) {
            let (next, tried, check) = (&next, &tried, &check);
            let open_some = move || {
                let mut mine = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= n {
                        return (mine, Instant::now());
                    }
                    match target.open() {
                        Ok(mut stream) => {
                            if check(index, &mut stream) {
                                mine.push((index, stream));
                            }
                        }
                        Err(e) => stats.connect_error(&e),
                    }
                    tried.fetch_add(1, Ordering::Relaxed);
                }
            };
            let spawned = thread::Builder::new()
                .name(format!("bench-open-{i}"))
                .stack_size(THREAD_STACK)
                .spawn_scoped(scope, open_some);
            match spawned {
                Ok(handle) => openers.push(handle),
                Err(source) => {
                    // The others stop taking work.
                    next.store(n, Ordering::Relaxed);
                    return Err(Error::Thread {
                        what: "bench opener",
                        source,
                    });
                }
            }
        }
        while progress.enabled() && openers.iter().any(|h| !h.is_finished()) {
            progress.connecting(tried.load(Ordering::Relaxed), n);
            thread::sleep(Duration::from_millis(20));
        }
        for opener in openers {
            // An opener that panicked loses its connections: not established.
            if let Ok((mine, done)) = opener.join() {
                opened.extend(mine);
                finished = finished.max(done);
            }
        }
        Ok(())
    })?;
    opened.sort_unstable_by_key(|(index, _)| *index);
    Ok((opened, finished))
}
