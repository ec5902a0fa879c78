//! # syncnet: TCP servers with threads, not async
//!
//! syncnet is a production-grade TCP server toolkit with **no async
//! runtime**: a blocking [`std::net::TcpListener`], one worker thread per
//! connection from a **bounded pool**, plain blocking reads and writes, and
//! the hardening that services need (timeouts, overload handling, metrics,
//! structured logs, graceful drain).
//!
//! You write a handler as ordinary blocking code — read, handle, write, top to
//! bottom — and syncnet runs it for every connection:
//!
//! ```no_run
//! use std::process::ExitCode;
//! use syncnet::{Conn, LogFormat, Server};
//!
//! fn main() -> ExitCode {
//!     // Start-up, one line per connection, shutdown: text on a terminal, JSON otherwise.
//!     syncnet::init_logging(LogFormat::Auto);
//!     let served = Server::builder()
//!         .listen("127.0.0.1:3000")
//!         .workers(64)
//!         .build()
//!         .and_then(|server| {
//!             server.run(|conn: &mut Conn| -> std::io::Result<()> {
//!                 // plain blocking code: read, handle, write
//!                 syncnet::echo(conn)
//!             })
//!         });
//!     match served {
//!         Ok(()) => ExitCode::SUCCESS,
//!         Err(e) => {
//!             // Display, not Debug: "cannot listen on 127.0.0.1:3000: address already in use"
//!             eprintln!("error: {e}");
//!             ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
//!         }
//!     }
//! }
//! ```
//!
//! ## The path of one connection
//!
//! ```text
//!  accept ──▶ admission ──▶ queue ──▶ worker ──▶ prelude ──▶ handler ──▶ close
//! ```
//!
//! Each step is one file under `src/server/` (or `src/pool.rs`):
//!
//! 1. **accept** (`server/accept.rs`, `accept_loop`): one thread calls
//!    `accept()` and gives the connection a process-wide id. Errors are
//!    sorted: out of file descriptors or memory → count, warn at most once a
//!    second, back off briefly (never spin, never exit); an error that
//!    concerns one connection → skip it.
//! 2. **admission** (`server/admission.rs`): on the accept thread, the
//!    allow/deny lists, the trusted proxies and the per-IP count and rate
//!    decide; a refused connection is closed and counted (`denied`,
//!    `per_ip_limit`, `rate_limit`).
//! 3. **queue** (`pool.rs`, `Pool::dispatch`): when `workers + queue`
//!    connections are already in flight the new one is closed at once
//!    (`overload`); otherwise it goes into a bounded `crossbeam_channel`. A
//!    connection that waits longer than the queue timeout is closed
//!    (`overload`).
//! 4. **worker** (`pool.rs`): at most `workers` threads, started on demand.
//! 5. **serve** (`server/serve.rs`, `ConnService::serve`): registers the
//!    connection so the drain can reach it (`server/registry.rs`), runs the
//!    prelude (PROXY header, TLS handshake, client-certificate name check,
//!    under the handshake timeout), then calls your **handler** with a
//!    [`Conn`] (which is `Read + Write`) under `catch_unwind`: a panic closes
//!    that connection, never the worker.
//! 6. **close** (`server/serve.rs`): one log line with `conn_id`, `peer`,
//!    `bytes_in`, `bytes_out`, `duration_ms` and `reason`, and the metrics.
//!
//! **Shutdown** (`server/shutdown.rs`, [`ServerHandle::shutdown`], or a
//! signal under [`Server::run`], which `shutdown::signals` catches): the
//! server's one phase (`src/lifecycle.rs`: running → stopping → draining →
//! stopped) moves on: `/readyz` turns 503; after the shutdown delay the
//! accept thread is woken and exits (`server/listener.rs`,
//! `Acceptor::wake`), connections still queued are refused (`pool.rs`,
//! `PoolShared::reject_queued`), every open connection's read side is shut
//! down so its handler sees end of input and finishes
//! (`server/registry.rs`, `Registry::shut_reads`), and what is left after
//! the drain timeout is closed by force (`Registry::force_close`).
//! `docs/reference.md` is the reference for flags, metrics, logs, exit
//! codes and shutdown; `docs/architecture.md` maps every module.
//!
//! ## Embedding and testing
//!
//! [`Server::spawn`] starts the server on background threads and returns a
//! [`ServerHandle`]; bind port 0 and ask the handle for the address:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::Duration;
//! use syncnet::{Conn, Server};
//!
//! // A raw handler: answer every `read` with how many bytes it returned.
//! // (TCP carries bytes, not messages: for whole requests, see below.)
//! let server = Server::builder()
//!     .listen("127.0.0.1:0")
//!     .admin(None)
//!     .build()?;
//! let handle = server.spawn(|conn: &mut Conn| -> std::io::Result<()> {
//!     let mut buf = [0u8; 512];
//!     loop {
//!         let n = conn.read(&mut buf)?;
//!         if n == 0 {
//!             return Ok(());
//!         }
//!         writeln!(conn, "{n}")?;
//!     }
//! })?;
//!
//! let mut client = syncnet::Client::connect(handle.local_addr(), Duration::from_secs(5))?;
//! client.write_all(b"hello")?;
//! let mut reply = [0u8; 2];
//! client.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"5\n");
//! handle.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Your own protocol
//!
//! Read in this order: [`frame`] (how a byte stream is cut into requests:
//! [`Lines`](frame::Lines) for text commands, one per line,
//! [`LengthPrefixed`](frame::LengthPrefixed) for binary messages), then
//! [`service::Protocol`] (one request in, one reply out), then
//! [`service::FramedService`], which turns a `Protocol` into a [`Handler`]
//! and runs the loop for you: pipelining, the request metrics
//! (`syncnet_requests_total`, `syncnet_request_errors_total{kind}`,
//! `syncnet_request_duration_seconds`), a request-rate limit and
//! deadlines. A line protocol whose replies say `ERR ...` to bad requests
//! and whose over-long lines close the connection:
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::time::Duration;
//! use syncnet::frame::{FrameError, Lines};
//! use syncnet::service::{Answer, FramedService, Protocol, RequestContext};
//! use syncnet::{Client, RequestErrorKind, Server};
//!
//! /// `PING` → `PONG`; anything else → `ERR unknown command`.
//! struct Ping;
//!
//! impl Protocol for Ping {
//!     type Codec = Lines; // requests and replies are lines
//!     type Session = ();  // nothing remembered between requests
//!
//!     fn codec(&self) -> Lines {
//!         Lines::new(64) // a longer line is a frame error: bad_frame, then close
//!     }
//!
//!     fn answer(&self, _: &mut (), line: &[u8], _: &RequestContext, reply: &mut Vec<u8>) -> Answer {
//!         if line == b"PING" {
//!             reply.extend_from_slice(b"PONG");
//!             Answer::Reply
//!         } else {
//!             reply.extend_from_slice(b"ERR unknown command");
//!             Answer::Error(RequestErrorKind::Malformed) // sent, and counted
//!         }
//!     }
//!
//!     fn bad_frame(&self, _: &FrameError, reply: &mut Vec<u8>) {
//!         reply.extend_from_slice(b"ERR line too long");
//!     }
//! }
//!
//! let service = FramedService::new(Ping).request_timeout(Duration::from_secs(1));
//! let server = Server::builder().listen("127.0.0.1:0").admin(None).build()?;
//! let handle = server.spawn(service)?; // or `server.run(service)` in a `main`
//!
//! let mut client = Client::connect(handle.local_addr(), Duration::from_secs(5))?;
//! client.write_all(b"PING\nHELLO\n")?; // two requests in one write
//! let mut replies = BufReader::new(client);
//! let mut line = String::new();
//! replies.read_line(&mut line)?;
//! replies.read_line(&mut line)?;
//! assert_eq!(line, "PONG\nERR unknown command\n");
//! handle.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `examples/line_counter.rs` is this grown into a small service (shared
//! counters, `TIME`, deadlines, flags); `examples/rpc` is JSON-RPC over
//! length-prefixed frames. To write the loop yourself instead, see the
//! handler in [`frame`]'s example.
//!
//! ## Threads and sharing
//!
//! A handler must be `Send + Sync + 'static`: it is shared by every worker.
//! Put shared state in an `Arc` (with a `Mutex` or atomics inside) captured
//! by the closure — or, for a [`service::Protocol`], in the protocol's own
//! fields: the one [`service::FramedService`] serves every connection. A
//! [`ServerHandle`] is `Send + Sync`; `&ServerHandle` is
//! enough to shut the server down from another thread.
//!
//! ## Tracing
//!
//! [`Builder::tracing`] turns on OpenTelemetry spans exported over OTLP/HTTP
//! by a thread of their own (off by default; no async runtime). A
//! [`Protocol`](service::Protocol) hands each request's method and W3C
//! `traceparent`/`tracestate` to the layer with
//! [`RequestContext::trace`](service::RequestContext::trace) from inside
//! `answer`; calls a handler makes open a [`trace::ClientSpan`] and send its
//! `traceparent` on. See [`trace`] and `docs/reference.md`, "Tracing".
//!
//! ## Log levels
//!
//! `info`: start-up, one line per closed connection, shutdown steps.
//! `warn`: rejected connections and accept errors (at most one line per
//! second per reason). `error`: handler panics, TLS files that changed but
//! do not load. `debug`: connection opened.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::all)]

pub mod activation;
mod admin;
#[cfg(feature = "bench")]
pub mod bench;
mod client;
mod client_pool;
mod config;
mod conn;
mod error;
pub mod frame;
mod lifecycle;
mod limits;
mod logging;
mod metrics;
mod panics;
mod pool;
#[cfg(target_os = "linux")]
mod process;
pub mod proxy;
mod proxy_protocol;
mod server;
pub mod service;
mod timer;
mod tls;
pub mod trace;

pub use client::Client;
pub use client_pool::{Call, ClientPool, ClientPoolBuilder, Lease, PoolStats};
pub use config::{
    DEFAULT_WORKER_STACK_SIZE, MAX_WORKERS_OR_QUEUE, MIN_WORKER_STACK_SIZE, ServerConfig,
    format_duration, parse_duration,
};
pub use conn::{Conn, ConnReader, ConnWriter};
pub use error::Error;
pub use limits::{Cidr, ParseCidrError};
pub use logging::{LogFormat, init_logging};
pub use metrics::{CloseReason, RejectReason, RequestErrorKind};
/// The `prometheus` crate syncnet's metrics are built on, so that collectors
/// you register in [`Server::metrics_registry`] use the same version.
pub use prometheus;
pub use server::{Builder, Handler, Server, ServerHandle};
pub use service::echo::echo;
pub use tls::{ClientTls, TlsSettings};
