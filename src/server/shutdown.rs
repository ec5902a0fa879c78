//! The shutdown: signals in, the drain of the active connections out.
//!
//! Order of events (`docs/reference.md`, "Shutdown"): `/readyz` turns 503
//! (phase `Stopping`) → after the shutdown delay the listener closes, the
//! connections still queued are refused, and every served connection's
//! reading side is shut down so its handler sees end of input (phase
//! `Draining`) → after the drain timeout the rest are shut down both ways →
//! the workers exit (phase `Stopped`). Each step waits on the server's
//! [`Lifecycle`](crate::lifecycle::Lifecycle), never by polling.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};

use super::ServerHandle;
use crate::Error;
use crate::config::format_duration;
use crate::lifecycle::Phase;

/// The least time the shutdown gives the export of queued spans.
const MIN_TRACE_FLUSH: Duration = Duration::from_millis(200);

/// After the drain deadline forced the rest closed, how long their handlers
/// get to notice, and then how long the workers get to exit.
const AFTER_DEADLINE: Duration = Duration::from_secs(1);

impl ServerHandle {
    /// Shuts the server down gracefully, and returns when it is done:
    /// `/readyz` turns 503 at once; after the shutdown delay the listener
    /// closes; every open connection's reading side is shut down so its
    /// handler sees end of input; after the drain timeout the rest are closed
    /// by force. Returns at most about drain timeout + 2 s after the delay.
    /// `docs/reference.md` ("Shutdown") has the details.
    ///
    /// Safe to call from several threads: later callers wait for the first.
    pub fn shutdown(&self) {
        let config = &self.service.config;
        self.shutdown_with(config.shutdown_delay, config.drain_timeout);
    }

    /// The shutdown with an explicit delay and drain timeout (both zero when
    /// the handle is dropped).
    pub(super) fn shutdown_with(&self, delay: Duration, drain: Duration) {
        let service = &self.service;
        let lifecycle = &service.lifecycle;
        if !lifecycle.advance(Phase::Stopping) {
            // Another caller runs the shutdown: wait for it to finish.
            lifecycle.wait_for(None, || lifecycle.phase() == Phase::Stopped);
            return;
        }
        let log = service.config.log_connections;
        if log {
            log::info!(target: "syncnet::shutdown", delay = format_duration(delay), drain_timeout = format_duration(drain); "shutdown started");
        }
        wait_delay(delay);

        let running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        lifecycle.advance(Phase::Draining);
        let drain_deadline = Instant::now() + drain;
        if let Some(running) = running {
            // Stop accepting; the accept thread drops its end of the queue.
            running.listener.wake();
            let _ = running.accept_thread.join();
            drop(running.listener);

            running.pool.reject_queued();
            service.registry.shut_reads();
            let drained = !drain.is_zero() && service.registry.wait_empty(Instant::now() + drain);
            if !drained {
                let forced = service.registry.force_close();
                if forced > 0 && log {
                    log::warn!(target: "syncnet::shutdown", connections = forced; "drain deadline reached: closing the remaining connections");
                }
                service.registry.wait_empty(Instant::now() + AFTER_DEADLINE);
            }
            // Handlers stuck outside socket calls are left behind after this.
            running.pool.wait_workers(Instant::now() + AFTER_DEADLINE);
            // No handshake is left to start: stop reloading the TLS files.
            drop(running.tls_watcher);
        }
        if let Some(tracer) = &service.tracer {
            // What is queued goes out within the drain timeout (at least a
            // moment, so that spans of a zero-drain stop are not all lost).
            let left = drain_deadline.saturating_duration_since(Instant::now());
            tracer.shutdown(left.max(MIN_TRACE_FLUSH));
        }
        if let Some(admin) = &self.admin {
            admin.shutdown_with(Duration::ZERO, Duration::ZERO);
        }
        if log {
            log::info!(target: "syncnet::shutdown", "shutdown complete");
        }
        lifecycle.advance(Phase::Stopped);
    }
}

impl Drop for ServerHandle {
    /// Stops the server at once (no delay, no drain) unless
    /// [`ServerHandle::shutdown`] already did.
    fn drop(&mut self) {
        self.shutdown_with(Duration::ZERO, Duration::ZERO);
    }
}

/// Receiver of SIGINT/SIGTERM/SIGHUP, one message per signal.
///
/// `ctrlc` allows one handler per process, so it is installed on first use
/// and shared by every later [`Server::run`](crate::Server::run).
pub(super) fn signals() -> Result<&'static Receiver<()>, Error> {
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
fn wait_delay(delay: Duration) {
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
}
