//! The drain registry: the connections workers are serving now, so that
//! shutdown can reach them without polling.
//!
//! A worker registers its connection before the handler runs and removes it
//! after. The drain shuts down every registered connection's reading side
//! (its handler's next read returns end of input); the deadline shuts down
//! what is left both ways. Registration and the drain agree through the
//! [`Lifecycle`]: once the phase is `Draining` no connection may register.

use std::collections::HashMap;
use std::net::Shutdown;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::conn::ConnShared;
use crate::lifecycle::{Lifecycle, Phase};

/// The connections being served, keyed by connection id.
pub(super) struct Registry {
    lifecycle: Arc<Lifecycle>,
    conns: Mutex<HashMap<u64, Arc<ConnShared>>>,
}

impl Registry {
    /// An empty registry that follows `lifecycle`.
    pub(super) fn new(lifecycle: Arc<Lifecycle>) -> Registry {
        Registry {
            lifecycle,
            conns: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<ConnShared>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a connection about to be served. Returns `false` when the
    /// drain has begun: the caller must then reject the connection.
    pub(super) fn insert(&self, conn: &Arc<ConnShared>) -> bool {
        let mut conns = self.lock();
        // Checked under the lock: `shut_reads` takes the lock after the phase
        // moved, so a connection is either refused here or reached there.
        if self.lifecycle.is_draining() {
            return false;
        }
        conns.insert(conn.id, Arc::clone(conn));
        true
    }

    /// Removes a closed connection; the last one out wakes the shutdown.
    pub(super) fn remove(&self, id: u64) {
        let mut conns = self.lock();
        conns.remove(&id);
        let empty = conns.is_empty();
        drop(conns);
        if empty && self.lifecycle.phase() >= Phase::Draining {
            self.lifecycle.notify();
        }
    }

    /// Calls `f` on every active connection (used at scrape time).
    pub(super) fn for_each(&self, mut f: impl FnMut(&ConnShared)) {
        for conn in self.lock().values() {
            f(conn);
        }
    }

    /// Shuts down the reading side of every registered connection, so each
    /// handler's next read returns end of input after the bytes already
    /// received. The phase must already be `Draining`.
    pub(super) fn shut_reads(&self) {
        debug_assert!(self.lifecycle.is_draining());
        for conn in self.lock().values() {
            let _ = conn.stream.shutdown(Shutdown::Read);
        }
    }

    /// Shuts every remaining connection down both ways (the drain deadline).
    /// Returns how many there were.
    pub(super) fn force_close(&self) -> usize {
        let conns = self.lock();
        for conn in conns.values() {
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        conns.len()
    }

    /// Waits until no connection is registered or `deadline` passes.
    /// Returns `true` when the registry emptied.
    pub(super) fn wait_empty(&self, deadline: Instant) -> bool {
        self.lifecycle
            .wait_for(Some(deadline), || self.lock().is_empty())
    }
}
