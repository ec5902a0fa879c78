//! The echo client of the article syncnet grew from, generalised: sends
//! `--messages` messages of `--size` bytes to an echo server over
//! `--connections` pooled connections (one thread each), checks every
//! echoed byte, and prints a summary.
//!
//! ```sh
//! cargo run --release                                   # syncnet serve: echo on 127.0.0.1:3000
//! cargo run --release --example echo_client             # 1000 messages of 64 B over 4 connections
//! cargo run --release --example echo_client -- --connect 127.0.0.1:3000 --messages 100000 --connections 16 --size 512
//! ```
//!
//! Each thread takes the next message number, borrows a connection from a
//! [`ClientPool`] (`max_total_per_addr` = `--connections`, so a thread never
//! waits for one), writes the message, reads as many bytes back, compares
//! them and gives the connection back. No message is like the one before
//! (its number, then a pattern shifted by it), so a stale or reordered echo
//! is caught. The first error (a connection that fails, an echo that
//! differs) stops every thread: the summary says how far it got, and the
//! exit code is 1. Bad usage exits with 2.

use std::io::{self, Read, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;
use syncnet::{ClientPool, Lease};

/// Sends messages to an echo server over pooled connections and checks
/// every echoed byte.
#[derive(Debug, Parser)]
#[command(name = "echo_client")]
struct Args {
    /// The echo server
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    connect: String,
    /// How many messages to send, in all
    #[arg(long, value_name = "N", default_value_t = 1000)]
    messages: u64,
    /// Connections (and threads) to send them over
    #[arg(long, value_name = "M", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    /// Bytes per message
    #[arg(long, value_name = "BYTES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=16 * 1024 * 1024))]
    size: u32,
}

/// How long connecting, and each read or write, may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// What the threads share.
struct Run {
    pool: ClientPool,
    addr: String,
    messages: u64,
    size: usize,
    /// The next message number to send.
    next: AtomicU64,
    /// Messages echoed intact.
    ok: AtomicU64,
    /// Messages that failed (the first, and any in flight on other threads).
    errors: AtomicU64,
    /// Set by the first failure: no thread takes another message.
    failed: AtomicBool,
    /// The first failure, for stderr.
    first_error: Mutex<Option<String>>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let connections = usize::from(args.connections);
    let pool = match ClientPool::builder()
        .max_total_per_addr(connections)
        .max_idle_per_addr(connections)
        .connect_timeout(TIMEOUT)
        .read_timeout(TIMEOUT)
        .write_timeout(TIMEOUT)
        .build()
    {
        Ok(pool) => pool,
        Err(e) => {
            eprintln!("echo_client: {e}");
            return ExitCode::from(2);
        }
    };
    let run = Run {
        pool,
        addr: args.connect,
        messages: args.messages,
        size: args.size as usize,
        next: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        first_error: Mutex::new(None),
    };

    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..connections {
            scope.spawn(|| send_messages(&run));
        }
    });
    let elapsed = started.elapsed();

    let ok = run.ok.load(Ordering::Relaxed);
    let first_error = run
        .first_error
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let errors = run.errors.load(Ordering::Relaxed);
    let created = run.pool.stats().created;
    println!("messages: {ok} of {} echoed intact", run.messages);
    println!("errors: {errors}");
    println!("elapsed: {:.3} s", elapsed.as_secs_f64());
    println!("messages/s: {:.0}", ok as f64 / elapsed.as_secs_f64());
    println!("connections created: {created}");
    match first_error {
        Some(error) => {
            eprintln!("echo_client: {error}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

/// One thread: takes message numbers until all are sent or one failed.
fn send_messages(run: &Run) {
    let mut message = vec![0u8; run.size];
    let mut echo = vec![0u8; run.size];
    while !run.failed.load(Ordering::Relaxed) {
        let n = run.next.fetch_add(1, Ordering::Relaxed);
        if n >= run.messages {
            return;
        }
        fill(&mut message, n);
        match echo_once(run, &message, &mut echo) {
            Ok(()) => {
                run.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                run.errors.fetch_add(1, Ordering::Relaxed);
                // Only the first failure is told: later ones are mostly
                // its echo (every thread sees the server go away).
                if !run.failed.swap(true, Ordering::Relaxed) {
                    let mut first = run
                        .first_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    *first = Some(format!("message {n}: {e}"));
                }
                return;
            }
        }
    }
}

/// Sends `message` on a pooled connection and checks its echo.
fn echo_once(run: &Run, message: &[u8], echo: &mut [u8]) -> io::Result<()> {
    let mut lease: Lease = run.pool.get(&run.addr).map_err(io::Error::other)?;
    // The lease's own reads and writes: one that fails marks it broken, and
    // it is closed instead of going back to the pool.
    lease
        .write_all(message)
        .map_err(|e| with_context("sending", e))?;
    lease
        .read_exact(echo)
        .map_err(|e| with_context("reading the echo", e))?;
    if let Some(at) = message.iter().zip(echo.iter()).position(|(a, b)| a != b) {
        lease.discard(); // out of step with the server: never reuse it
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the echo differs from byte {at} on: sent {:?}, got {:?}",
                char::from(message[at]),
                char::from(echo[at])
            ),
        ));
    }
    Ok(())
}

/// `doing: e`, keeping the error's kind.
fn with_context(doing: &str, e: io::Error) -> io::Error {
    let what = match e.kind() {
        io::ErrorKind::UnexpectedEof => "the server closed the connection".to_string(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("no answer within {} s", TIMEOUT.as_secs())
        }
        _ => e.to_string(),
    };
    io::Error::new(e.kind(), format!("{doing}: {what}"))
}

/// Message `n`: its number, a space, then printable bytes shifted by `n`,
/// cut to the buffer's length.
fn fill(message: &mut [u8], n: u64) {
    let mut head = [0u8; 21];
    let mut cursor = io::Cursor::new(&mut head[..]);
    // 20 digits and a space fit in 21 bytes: the write cannot fail.
    let _ = write!(cursor, "{n} ");
    let len = usize::try_from(cursor.position()).unwrap_or(0);
    for (i, byte) in message.iter_mut().enumerate() {
        *byte = match head[..len].get(i) {
            Some(&digit) => digit,
            None => b'!' + ((n as usize + i) % 94) as u8,
        };
    }
}
