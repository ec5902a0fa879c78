//! The server's one shutdown state: a phase that only moves forward, and one
//! deadline-aware wait that every thread uses.
//!
//! ```text
//!  Running ──shutdown()──▶ Stopping ──after the delay──▶ Draining ──▶ Stopped
//!  ready, accepting        /readyz 503, still accepting   listener closed,   all done
//!                                                          reads shut down
//! ```
//!
//! Who reads it: `/readyz` ([`Phase::is_ready`]), the accept loop and the
//! drain registry ([`Lifecycle::is_draining`]), a throttled read that sleeps
//! ([`Lifecycle::wait_for`] with the drain as condition), the shutdown
//! sequence (waiting for the registry to empty and the workers to exit) and
//! a second caller of `ServerHandle::shutdown` (waiting for `Stopped`).
//!
//! Every wait is the same primitive: a condition checked under one mutex,
//! re-checked whenever something that may change it calls
//! [`Lifecycle::notify`], until it holds or the deadline passes. Reading the
//! phase is one atomic load, so the read path pays nothing for it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Instant;

/// Where a server is in its life. Ordered: a later phase is greater.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Accepting and serving; `/readyz` answers 200.
    Running = 0,
    /// Shutdown began: `/readyz` answers 503, the listener still accepts
    /// during the shutdown delay.
    Stopping = 1,
    /// The listener is closed, connections still queued are refused and
    /// every served connection's reading side is shut down.
    Draining = 2,
    /// Every connection is closed and the workers have exited.
    Stopped = 3,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Running,
            1 => Phase::Stopping,
            2 => Phase::Draining,
            _ => Phase::Stopped,
        }
    }

    /// True while `/readyz` should answer 200.
    pub(crate) fn is_ready(self) -> bool {
        self == Phase::Running
    }
}

/// A server's phase, and the one place threads wait for a change.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    phase: AtomicU8,
    /// When the phase reached `Draining`.
    drain_started: OnceLock<Instant>,
    /// Held while a waiter checks its condition, and by [`Lifecycle::notify`],
    /// so a change made before `notify` is never missed.
    lock: Mutex<()>,
    changed: Condvar,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            phase: AtomicU8::new(Phase::Running as u8),
            drain_started: OnceLock::new(),
            lock: Mutex::new(()),
            changed: Condvar::new(),
        }
    }
}

impl Lifecycle {
    /// The current phase (one atomic load).
    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::SeqCst))
    }

    /// True once the drain began (or the server stopped): the read path's
    /// check, one atomic load.
    #[inline]
    pub(crate) fn is_draining(&self) -> bool {
        self.phase.load(Ordering::SeqCst) >= Phase::Draining as u8
    }

    /// When the drain began; `None` before it.
    pub(crate) fn drain_started(&self) -> Option<Instant> {
        self.drain_started.get().copied()
    }

    /// Moves to `to` if that is forward, and wakes every waiter. Returns
    /// `true` when this call moved the phase, so exactly one of several
    /// concurrent callers wins.
    pub(crate) fn advance(&self, to: Phase) -> bool {
        if to >= Phase::Draining {
            // Before the phase moves, so whoever sees `Draining` finds it set.
            let _ = self.drain_started.set(Instant::now());
        }
        let before = self.phase.fetch_max(to as u8, Ordering::SeqCst);
        let moved = before < to as u8;
        if moved {
            self.notify();
        }
        moved
    }

    /// Wakes every waiter so it re-checks its condition. Call it after
    /// changing anything a waiter may be waiting for.
    pub(crate) fn notify(&self) {
        drop(self.lock.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.notify_all();
    }

    /// Waits until `condition` holds or `deadline` passes (`None`: no
    /// deadline). Returns whether the condition holds. The condition is
    /// re-checked on every [`Lifecycle::notify`], so whatever it reads must be
    /// followed by a `notify` when it changes.
    pub(crate) fn wait_for(&self, deadline: Option<Instant>, condition: impl Fn() -> bool) -> bool {
        let mut guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if condition() {
                return true;
            }
            guard = match deadline {
                None => self.changed.wait(guard).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    self.changed
                        .wait_timeout(guard, deadline - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    #[test]
    fn the_phase_only_moves_forward_and_one_caller_wins() {
        let life = Lifecycle::default();
        assert_eq!(life.phase(), Phase::Running);
        assert!(life.phase().is_ready());
        assert!(life.advance(Phase::Stopping));
        assert!(
            !life.advance(Phase::Stopping),
            "a second caller does not win"
        );
        assert!(!life.is_draining());
        assert!(life.advance(Phase::Draining));
        assert!(!life.advance(Phase::Stopping), "never backwards");
        assert_eq!(life.phase(), Phase::Draining);
        assert!(life.is_draining());
        assert!(!life.phase().is_ready());
    }

    #[test]
    fn a_wait_ends_on_notify_or_at_the_deadline() {
        let life = Arc::new(Lifecycle::default());
        let flag = Arc::new(AtomicBool::new(false));
        let soon = Some(Instant::now() + Duration::from_millis(30));
        assert!(!life.wait_for(soon, || flag.load(Ordering::SeqCst)));

        let (l, f) = (Arc::clone(&life), Arc::clone(&flag));
        let setter = std::thread::spawn(move || {
            f.store(true, Ordering::SeqCst);
            l.notify();
        });
        let later = Some(Instant::now() + Duration::from_secs(10));
        assert!(life.wait_for(later, || flag.load(Ordering::SeqCst)));
        setter.join().unwrap();

        let l = Arc::clone(&life);
        let stopper = std::thread::spawn(move || l.advance(Phase::Stopped));
        assert!(life.wait_for(None, || life.phase() == Phase::Stopped));
        assert!(stopper.join().unwrap());
    }
}
