//! Hold mode: open many connections, keep them idle, check they still echo.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;
use super::connect::{OPENERS, Target, open_all};
use super::options::{BenchOptions, HOLD_ECHO_SIZE};
use super::progress::{PROGRESS_EVERY, Progress};
use super::stats::Stats;
use super::stream::read_exact_until;
use super::threads::THREAD_STACK;
use crate::Error;

/// What the connect phase achieved.
pub(super) struct Held {
    /// Connections open whose first echo came back intact.
    pub established: usize,
    /// How long opening all of them took.
    pub establish_secs: f64,
}

/// The 16-byte message of connection `index` in round `round`
/// (`hold0000000042-a`): each connection and round has its own.
fn message(index: usize, round: u8) -> [u8; HOLD_ECHO_SIZE] {
    let text = format!(
        "hold{:010}-{}",
        index % 10_000_000_000,
        char::from(b'a' + round)
    );
    let mut msg = [0u8; HOLD_ECHO_SIZE];
    msg.copy_from_slice(&text.as_bytes()[..HOLD_ECHO_SIZE]);
    msg
}

/// Sends this connection's message for `round` and checks the echo;
/// returns how long the round trip took.
fn echo(stream: &mut TcpStream, index: usize, round: u8) -> std::io::Result<Duration> {
    let msg = message(index, round);
    let mut back = [0u8; HOLD_ECHO_SIZE];
    let sent = Instant::now();
    stream.write_all(&msg)?;
    read_exact_until(&*stream, &mut back, sent + IO_TIMEOUT)?;
    if back != msg {
        return Err(std::io::Error::other("echo mismatch"));
    }
    Ok(sent.elapsed())
}

/// Opens every connection (one echo each), holds them for `duration`, then
/// echoes once more on each; the final echoes are the run's requests.
pub(super) fn run(
    opts: &BenchOptions,
    target: &Target,
    stats: &Stats,
    progress: &Progress,
) -> Result<Held, Error> {
    let begin = Instant::now();
    let first_echo = |index: usize, stream: &mut TcpStream| {
        let echoed = echo(stream, index, 0).is_ok();
        if !echoed {
            stats.error();
        }
        echoed
    };
    let (held, finished) = open_all(opts, target, stats, progress, first_echo)?;
    let established = held.len();
    let establish_secs = (finished - begin).as_secs_f64();
    hold_for(opts.duration, established, progress);
    // As many threads for the final echoes as opened the connections.
    final_echo(held, OPENERS.min(opts.connections), stats)?;
    Ok(Held {
        established,
        establish_secs,
    })
}

/// Waits `duration` with the connections idle, redrawing the progress line.
fn hold_for(duration: Duration, established: usize, progress: &Progress) {
    let end = Instant::now() + duration;
    loop {
        let now = Instant::now();
        if now >= end {
            return;
        }
        let left = (end - now).as_secs_f64();
        progress.show(format_args!(
            "hold: {established} connections, {left:.1}s left"
        ));
        thread::sleep(PROGRESS_EVERY.min(end - now));
    }
}

/// One more echo on every held connection, spread over `threads` threads;
/// each verified echo is a request. The connections close afterwards.
fn final_echo(held: Vec<(usize, TcpStream)>, threads: usize, stats: &Stats) -> Result<(), Error> {
    let per_thread = held.len().div_ceil(threads.max(1)).max(1);
    let mut batches = Vec::new();
    let mut rest = held;
    while !rest.is_empty() {
        let tail = rest.split_off(per_thread.min(rest.len()));
        batches.push(std::mem::replace(&mut rest, tail));
    }
    thread::scope(|scope| {
        for (i, batch) in batches.into_iter().enumerate() {
            let check = move || {
                let mut latencies = Vec::with_capacity(batch.len());
                for (index, mut stream) in batch {
                    match echo(&mut stream, index, 1) {
                        Ok(took) => latencies.push(took),
                        Err(_) => stats.error(),
                    }
                }
                stats.record_all(&latencies);
            };
            thread::Builder::new()
                .name(format!("bench-check-{i}"))
                .stack_size(THREAD_STACK)
                .spawn_scoped(scope, check)
                .map_err(|source| Error::Thread {
                    what: "bench check",
                    source,
                })?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_differ_by_connection_and_round() {
        assert_eq!(&message(42, 0), b"hold0000000042-a");
        assert_ne!(message(42, 0), message(42, 1));
        assert_ne!(message(42, 0), message(43, 0));
    }
}
