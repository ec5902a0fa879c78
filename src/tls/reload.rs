//! Certificates that rotate without a restart: the listener's TLS
//! configuration as a [`LiveConfig`] that each new handshake reads, and a
//! [`Watcher`] thread that rebuilds it when the files behind `--tls-cert`,
//! `--tls-key` or `--tls-client-ca` change on disk.
//!
//! The watcher polls: every [`POLL_INTERVAL`] it looks at each file's
//! metadata (device, inode, size, modification and change times), following
//! symlinks, so all three ways certificates get replaced count as a change:
//! written in place (cert-manager, certbot), renamed over, and the
//! Kubernetes secret volume's swap of its `..data` symlink to a new
//! directory. Only then are the files read and a new [`ServerConfig`]
//! built; it replaces the old one whole (the client-CA verifier included).
//! A handshake takes the configuration in force when it starts, so open
//! connections keep theirs. A file that fails to load (half written, a key
//! that does not match yet, garbage) is logged at `error` and changes
//! nothing: the previous configuration stays in force, and the files are
//! tried again when they next change. (Polling needs no dependency and no
//! inotify watch that a symlink swap would leave pointing at the old
//! directory; a second of delay is nothing for a certificate.)

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{RecvTimeoutError, Sender};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use rustls::ServerConfig;

use super::server::{Loaded, server_config};
use super::settings::{TlsConfigError, TlsSettings};

/// How often the watcher looks at the files: a change is in force for new
/// handshakes about this long after it is made.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// The metrics of a listener's TLS files (`docs/reference.md`, "Metrics"):
/// how their reloads went and when the certificate in force expires.
/// Registered only when the listener has TLS.
pub(crate) struct TlsMetrics {
    /// `syncnet_tls_reloads_total{result="ok"}`: the files changed and the
    /// new configuration is in force.
    reloads_ok: IntCounter,
    /// `syncnet_tls_reloads_total{result="error"}`: the files changed but
    /// did not load; the previous configuration stays in force.
    reloads_error: IntCounter,
    /// `syncnet_tls_cert_expiry_timestamp_seconds`: the serving
    /// certificate's notAfter, in Unix seconds (0 when it cannot be read).
    cert_expiry: IntGauge,
}

impl TlsMetrics {
    /// Registers the metrics in `registry` (a server's own, where these
    /// names are free) and hands them back.
    pub(crate) fn register(registry: &Registry) -> TlsMetrics {
        let opts = |name: &str, help: &str| Opts::new(name, help).namespace("syncnet");
        let reloads = IntCounterVec::new(
            opts(
                "tls_reloads_total",
                "Reloads of the TLS files after they changed on disk, by result (ok, error).",
            ),
            &["result"],
        )
        .expect("valid metric");
        let cert_expiry = IntGauge::with_opts(opts(
            "tls_cert_expiry_timestamp_seconds",
            "The serving TLS certificate's notAfter, in Unix seconds.",
        ))
        .expect("valid metric");
        for collector in [
            Box::new(reloads.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(cert_expiry.clone()),
        ] {
            registry
                .register(collector)
                .expect("the TLS metrics are registered once, in a server's own registry");
        }
        TlsMetrics {
            reloads_ok: reloads.with_label_values(&["ok"]),
            reloads_error: reloads.with_label_values(&["error"]),
            cert_expiry,
        }
    }
}

/// The listener's TLS configuration, replaced whole when its files change.
pub(crate) struct LiveConfig {
    /// The files (and `--tls-allow-name`, which is not reloaded).
    settings: TlsSettings,
    /// The configuration in force. A handshake holds the read lock only to
    /// clone the `Arc`.
    current: RwLock<Arc<ServerConfig>>,
    /// What each file looked like when it was last read.
    seen: Mutex<Vec<Option<Stamp>>>,
    metrics: TlsMetrics,
}

impl fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveConfig")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl LiveConfig {
    /// Reads the files of `settings` and builds the first configuration;
    /// sets the expiry gauge of `metrics`.
    ///
    /// # Errors
    /// The [`TlsConfigError`] of [`server_config`]: at start-up a bad file
    /// is a configuration error.
    pub(crate) fn load(
        settings: TlsSettings,
        metrics: TlsMetrics,
    ) -> Result<LiveConfig, TlsConfigError> {
        // Looked at before reading: a change made while the files are read
        // is seen by the next check.
        let seen = stamps(&settings);
        let Loaded { config, not_after } = server_config(&settings)?;
        metrics.cert_expiry.set(not_after.unwrap_or(0));
        Ok(LiveConfig {
            settings,
            current: RwLock::new(config),
            seen: Mutex::new(seen),
            metrics,
        })
    }

    /// The configuration in force, for one handshake.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Looks at the files once; when any changed since they were last read,
    /// reloads them: puts a new configuration in force, or logs why they do
    /// not load and keeps the one in force. Returns whether they changed.
    ///
    /// A load that fails while the files change under it (read half before
    /// and half after a replacement) is neither counted nor logged: the
    /// files are tried again at the next check.
    pub(crate) fn check(&self) -> bool {
        let before = stamps(&self.settings);
        if *self.seen.lock().unwrap_or_else(PoisonError::into_inner) == before {
            return false;
        }
        match server_config(&self.settings) {
            Ok(loaded) => self.put_in_force(loaded),
            Err(_) if stamps(&self.settings) != before => return true,
            Err(e) => self.report(&e),
        }
        // A change made while the files were read is seen by the next check.
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = before;
        true
    }

    /// Makes `loaded` the configuration of new handshakes; counts and logs it.
    fn put_in_force(&self, loaded: Loaded) {
        let Loaded { config, not_after } = loaded;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        let expiry = not_after.unwrap_or(0);
        self.metrics.cert_expiry.set(expiry);
        self.metrics.reloads_ok.inc();
        log::info!(
            target: "syncnet::tls",
            cert:% = self.settings.cert.display(),
            not_after = expiry;
            "TLS files reloaded: new handshakes use them"
        );
    }

    /// Counts and logs files that did not load.
    fn report(&self, error: &TlsConfigError) {
        self.metrics.reloads_error.inc();
        let path = error.path().unwrap_or(&self.settings.cert);
        log::error!(
            target: "syncnet::tls",
            path:% = path.display(),
            error:% = error;
            "TLS files not reloaded: the previous configuration stays in force"
        );
    }
}

/// What a file looked like: any change to it changes its stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// Device, inode and change time (Unix): a file renamed over, or a
    /// symlink now pointing at another file, is another inode.
    id: (u64, u64, i64, i64),
}

/// The stamps of the files of `settings`, in order: certificate, key,
/// client CA. `None` for a file that cannot be looked at (e.g. missing).
fn stamps(settings: &TlsSettings) -> Vec<Option<Stamp>> {
    [
        Some(&settings.cert),
        Some(&settings.key),
        settings.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| stamp(path))
    .collect()
}

/// The stamp of the file `path` names, following symlinks.
fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        id: file_id(&meta),
    })
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> (u64, u64, i64, i64) {
    (0, 0, 0, 0)
}

/// The thread that calls [`LiveConfig::check`] every [`POLL_INTERVAL`].
/// Dropping it stops the thread and waits for it (at most one reload).
pub(crate) struct Watcher {
    /// Never sent on: dropping it wakes the thread, which then returns.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching the files of `live`.
    ///
    /// # Errors
    /// The operating system's error when the thread cannot be started.
    pub(crate) fn start(live: Arc<LiveConfig>) -> std::io::Result<Watcher> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = thread::Builder::new()
            .name("syncnet-tls-reload".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(POLL_INTERVAL) {
                    live.check();
                }
            })?;
        Ok(Watcher {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
