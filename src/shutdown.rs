//! The shutdown path: signals in, drain of the active connections out.
//!
//! Order of events (SPEC §2): `/readyz` turns 503 → after `--shutdown-delay`
//! the listener closes → every active connection's reading side is shut down,
//! so its handler sees end of input → after `--drain-timeout` the rest are
//! shut down both ways. [`Active`] is the registry that makes the last two
//! steps possible without polling.

use std::collections::HashMap;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};

use crate::Error;
use crate::conn::ConnShared;

/// Tells waiting threads that the drain began: a throttled read's sleep
/// ends early on it.
#[derive(Debug, Default)]
pub(crate) struct DrainSignal {
    started: Mutex<bool>,
    cond: Condvar,
    /// Mirrors `started` for a lock-free check on the read path.
    raised: AtomicBool,
}

impl DrainSignal {
    fn raise(&self) {
        self.raised.store(true, Ordering::SeqCst);
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_all();
    }

    /// True once the drain began.
    pub(crate) fn is_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst)
    }

    /// Sleeps up to `timeout`; returns `true` (at once) if the drain began.
    pub(crate) fn wait(&self, timeout: std::time::Duration) -> bool {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        let (started, _) = self
            .cond
            .wait_timeout_while(started, timeout, |started| !*started)
            .unwrap_or_else(|p| p.into_inner());
        *started
    }
}

/// The registry of connections a worker is serving, and the drain state.
#[derive(Default)]
pub(crate) struct Active {
    /// Raised with the drain, for threads that sleep outside socket calls.
    pub(crate) drain_signal: Arc<DrainSignal>,
    state: Mutex<ActiveState>,
    /// Signalled whenever a connection leaves the registry.
    emptied: Condvar,
}

#[derive(Default)]
struct ActiveState {
    conns: HashMap<u64, Arc<ConnShared>>,
    /// True once the drain began: no connection may register after that.
    draining: bool,
}

impl Active {
    fn lock(&self) -> MutexGuard<'_, ActiveState> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection about to be served. Returns `false` when the
    /// drain has begun: the caller must then reject the connection.
    pub(crate) fn insert(&self, conn: &Arc<ConnShared>) -> bool {
        let mut state = self.lock();
        if state.draining {
            return false;
        }
        state.conns.insert(conn.id, Arc::clone(conn));
        true
    }

    /// Removes a closed connection.
    pub(crate) fn remove(&self, id: u64) {
        let mut state = self.lock();
        state.conns.remove(&id);
        if state.conns.is_empty() {
            self.emptied.notify_all();
        }
    }

    /// True once the drain has begun.
    pub(crate) fn is_draining(&self) -> bool {
        self.drain_signal.is_raised()
    }

    /// Calls `f` on every active connection (used at scrape time).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&ConnShared)) {
        for conn in self.lock().conns.values() {
            f(conn);
        }
    }

    /// Starts the drain: shuts down the reading side of every active
    /// connection, so each handler's next read returns end of input after
    /// the bytes already received.
    pub(crate) fn begin_drain(&self) {
        let mut state = self.lock();
        state.draining = true;
        // Raised before the first shutdown, so a read that returns 0 because
        // of it always finds the flag set.
        self.drain_signal.raise();
        for conn in state.conns.values() {
            let _ = conn.stream.shutdown(Shutdown::Read);
        }
    }

    /// Shuts every remaining connection down both ways (the drain deadline).
    /// Returns how many there were.
    pub(crate) fn force_close(&self) -> usize {
        let state = self.lock();
        for conn in state.conns.values() {
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        state.conns.len()
    }

    /// Waits until no connection is active or `deadline` passes.
    /// Returns `true` when the registry emptied.
    pub(crate) fn wait_empty(&self, deadline: Instant) -> bool {
        let mut state = self.lock();
        while !state.conns.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .emptied
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// A one-shot "shutdown is done" latch that several threads can wait on.
#[derive(Default)]
pub(crate) struct Latch {
    done: Mutex<bool>,
    cond: Condvar,
}

impl Latch {
    pub(crate) fn set(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cond.notify_all();
    }

    pub(crate) fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = self.cond.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Receiver of SIGINT/SIGTERM/SIGHUP, one message per signal.
///
/// `ctrlc` allows one handler per process, so it is installed on first use
/// and shared by every later [`Server::run`](crate::Server::run).
pub(crate) fn signals() -> Result<&'static Receiver<()>, Error> {
    static SIGNALS: OnceLock<Result<Receiver<()>, String>> = OnceLock::new();
    let installed = SIGNALS.get_or_init(|| {
        let (tx, rx) = bounded(8);
        ctrlc::set_handler(move || {
            // Full means several signals are already pending: nothing to add.
            let _ = tx.try_send(());
        })
        .map(|()| rx)
        .map_err(|e| e.to_string())
    });
    installed.as_ref().map_err(|e| Error::Signal(e.clone()))
}

/// Sleeps for the shutdown delay; a zero delay returns at once.
pub(crate) fn wait_delay(delay: Duration) {
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
}
