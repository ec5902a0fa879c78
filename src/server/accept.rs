//! The accept loop: one thread calls `accept()` until shutdown, gives each
//! connection an id, asks [admission](super::admission) and hands it to the
//! [pool](crate::pool).
//!
//! Accept errors are sorted: out of file descriptors or memory → counted,
//! warned about at most once a second, and followed by a short pause (never
//! a spin, never an exit); an error that concerns one connection → skip it.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::admission::canonical_peer;
use super::listener::Acceptor;
use super::serve::ConnService;
use crate::conn::ConnShared;
use crate::logging::LogEvery;
use crate::metrics::{AcceptErrorKind, RejectReason};
use crate::pool::{Pool, Service, Waiting};

/// Process-wide connection ids: unique across every server in the process.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// How long the accept loop pauses after an error that would repeat at
/// once (out of file descriptors or memory), so it never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Runs on its own thread until the drain begins; dropping `pool` on the
/// way out closes the queue, so the workers exit once they are done.
pub(super) fn accept_loop(listener: &Acceptor, service: &Arc<ConnService>, pool: Pool) {
    let warn_gate = LogEvery::new();
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                service.metrics.accepted.inc();
                let now = Instant::now();
                let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
                let mut waiting = Waiting {
                    conn: Arc::new(ConnShared::new(id, stream)),
                    peer: canonical_peer(peer),
                    since: now,
                    ticket: None,
                };
                if service.lifecycle.is_draining() {
                    service.reject(waiting, RejectReason::Shutdown);
                    break;
                }
                match service.admission.on_accept(waiting.peer.ip(), now) {
                    Ok(ticket) => {
                        waiting.ticket = ticket;
                        pool.dispatch(waiting);
                    }
                    Err(reason) => service.reject(waiting, reason),
                }
            }
            Err(_) if service.lifecycle.is_draining() => break,
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
                service.metrics.accept_error(kind);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
