//! TLS (rustls, ring provider): configs from PEM files, mTLS name checks, a deadline-bounded handshake and read/write helpers.
//!
//! Server side (the `--tls-*` flags of `syncnet serve`, under Flags in
//! `docs/reference.md`): [`LiveConfig`] turns `--tls-cert`, `--tls-key`,
//! `--tls-client-ca` and `--tls-allow-name` into a
//! [`ServerConfig`](rustls::ServerConfig) for TLS 1.2 and 1.3, and a
//! [`Watcher`] rebuilds it when those files change on disk (certificate
//! rotation); the worker takes the one in force, calls [`accept`] on each
//! connection, then [`name_allowed`] when an allow
//! list is set, then moves bytes with [`tls_read`] and [`tls_write`]. Client
//! side (`syncnet client --tls` and its flags): [`client_config`] and
//! [`connect`].
//!
//! Everything is blocking I/O on a `&TcpStream`, so the socket's read and
//! write timeouts (and a `shutdown()` from another thread) work on a TLS
//! connection exactly as on a plain one: a timeout surfaces as the same
//! `WouldBlock`/`TimedOut` error `TcpStream` gives.
//!
//! Every error of [`TlsConfigError`](settings::TlsConfigError) names the flag
//! and the file at fault, so the binary can report it as a configuration error
//! (exit code 2).
//!
//! The files: `settings` (the flags, their errors, loading PEM files),
//! `server` and `client` (each side's config and handshake), `reload` (the
//! configuration in force and the thread that reloads it), `handshake` (the
//! deadline-bounded loop both sides run), `io` (reading and writing on an
//! established connection) and `names` (`--tls-allow-name`). This file holds
//! what both sides share (the protocol versions and the crypto provider) and
//! re-exports what the rest of the crate uses.

mod client;
mod handshake;
mod io;
mod names;
mod reload;
mod server;
mod settings;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;

pub(crate) use client::{client_config, connect};
pub(crate) use io::{tls_flush, tls_read, tls_write};
pub(crate) use names::{name_allowed, peer_names};
pub(crate) use reload::{LiveConfig, TlsMetrics, Watcher};
pub(crate) use server::accept;
pub use settings::{ClientTls, TlsSettings};

/// The protocol versions syncnet speaks, newest first.
const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one crypto provider syncnet uses: *ring* (no OpenSSL, no aws-lc).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
