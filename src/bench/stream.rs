//! Per-connection I/O shared by the modes: a bounded exact read, and
//! [`Failure`], which counts one error per connection.

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::stats::Stats;

/// Marks one connection failed, so that its writer and reader threads count
/// one error between them, not one each.
#[derive(Default)]
pub(crate) struct Failure(AtomicBool);

impl Failure {
    /// Counts the error unless this connection already failed; shuts the
    /// socket down so the other thread on it stops at once.
    pub(super) fn fail(&self, stats: &Stats, stream: &TcpStream) {
        if !self.0.swap(true, Ordering::Relaxed) {
            stats.error();
        }
        let _ = stream.shutdown(std::net::Shutdown::Both);
    }

    pub(super) fn failed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Reads exactly `buf.len()` bytes; end of input, an error or passing
/// `hard_end` is an error.
pub(super) fn read_exact_until(
    mut stream: impl Read,
    buf: &mut [u8],
    hard_end: Instant,
) -> io::Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        if got < buf.len() && Instant::now() > hard_end {
            return Err(io::ErrorKind::TimedOut.into());
        }
    }
    Ok(())
}
