//! Bulk mode: stream chunks one way, check the echoed stream the other way.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Instant;

use super::options::BenchOptions;
use super::stats::Stats;
use super::stream::Failure;
use super::threads::THREAD_STACK;
use super::window::Window;

/// Byte `i` of the stream is `i % 251`: a prime, so chunk and read
/// boundaries never line up with the pattern and a lost, repeated or
/// reordered piece shows.
const PERIOD: usize = 251;

/// How much one read takes at most.
const READ_BUF: usize = 64 * 1024;

/// The stream pattern, long enough to slice any chunk or read from any offset.
fn pattern(chunk: usize) -> Vec<u8> {
    (0..chunk.max(READ_BUF) + PERIOD)
        .map(|i| (i % PERIOD) as u8)
        .collect()
}

/// The expected bytes at stream offset `offset`, `len` long.
fn expected(pattern: &[u8], offset: u64, len: usize) -> &[u8] {
    let start = (offset % PERIOD as u64) as usize;
    &pattern[start..start + len]
}

/// Drives one connection: a writer thread streams chunks until the window
/// ends and then half-closes; this thread checks every echoed byte and
/// drains to end of input. Bytes read back inside the window count.
pub(super) fn connection(stream: TcpStream, window: Window, opts: &BenchOptions, stats: &Stats) {
    let chunk = opts.effective_size();
    let pattern = pattern(chunk);
    let failure = Failure::default();
    let stream = &stream;
    thread::scope(|scope| {
        let (pattern, failure) = (&pattern, &failure);
        let writer = move || -> u64 {
            let mut written = 0u64;
            while Instant::now() < window.end && !failure.failed() {
                if (&*stream)
                    .write_all(expected(pattern, written, chunk))
                    .is_err()
                {
                    failure.fail(stats, stream);
                    break;
                }
                written += chunk as u64;
            }
            // End of input: the server echoes what is left and closes.
            let _ = stream.shutdown(Shutdown::Write);
            written
        };
        let spawned = thread::Builder::new()
            .name("bench-writer".into())
            .stack_size(THREAD_STACK)
            .spawn_scoped(scope, writer);
        let Ok(writer) = spawned else {
            failure.fail(stats, stream);
            return;
        };
        let read = read_back(stream, window, pattern, failure, stats);
        let written = writer.join().unwrap_or(0);
        if read != written {
            // Fewer bytes back than sent (or more): the echo lost or added some.
            failure.fail(stats, stream);
        }
    });
}

/// Reads and checks the echoed stream to end of input; returns the bytes read.
fn read_back(
    stream: &TcpStream,
    window: Window,
    pattern: &[u8],
    failure: &Failure,
    stats: &Stats,
) -> u64 {
    let mut buf = vec![0u8; READ_BUF];
    let mut read = 0u64;
    loop {
        match (&*stream).read(&mut buf) {
            Ok(0) => return read,
            Ok(n) => {
                let now = Instant::now();
                if buf[..n] != *expected(pattern, read, n) || now > window.hard_end {
                    failure.fail(stats, stream);
                    return read;
                }
                read += n as u64;
                stats.bytes_total.fetch_add(n as u64, Ordering::Relaxed);
                if now >= window.warm_end && now <= window.end {
                    stats.bytes_measured.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                failure.fail(stats, stream);
                return read;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_position_dependent() {
        let pattern = pattern(100);
        assert_eq!(expected(&pattern, 0, 3), &[0, 1, 2]);
        assert_eq!(expected(&pattern, 250, 3), &[250, 0, 1]);
        assert_eq!(expected(&pattern, 251 * 7 + 5, 1), &[5]);
        assert_eq!(expected(&pattern, 1000, READ_BUF).len(), READ_BUF);
    }
}
