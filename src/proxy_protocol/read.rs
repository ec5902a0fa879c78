//! Reading a PROXY header off a connection, consuming exactly its bytes:
//! [`read_header_tcp`] for the server (a [`TcpStream`] under a deadline,
//! using `peek`), and `read_header` (tests only) for any [`Read`].

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Instant;

#[cfg(test)]
use super::v1::V1_MAX_LEN;
use super::v1::V1_MIN_LEN;
use super::{Parsed, ProxyError, ProxyHeader, parse};

/// How much `read_header_tcp` peeks at once: a v1 header or a v2 header
/// with the usual TLVs fits.
const PEEK_LEN: usize = 256;

/// The error for a connection that ended before its header did.
fn eof() -> ProxyError {
    ProxyError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed before the end of the PROXY protocol header",
    ))
}

/// Reads one PROXY header from `r`, reading exactly its bytes and nothing
/// after it. Works on any reader, and is correct however the reader splits
/// its data; a v1 line is read one byte at a time past its first 15 (or 22
/// or 32) bytes, so on a socket prefer [`read_header_tcp`].
#[cfg(test)] // only the tests need it
pub(super) fn read_header<R: Read + ?Sized>(r: &mut R) -> Result<ProxyHeader, ProxyError> {
    let mut buf = Vec::with_capacity(V1_MAX_LEN);
    loop {
        let need = match parse(&buf)? {
            Parsed::Complete { header, consumed } => {
                debug_assert_eq!(consumed, buf.len(), "read past the header");
                return Ok(header);
            }
            Parsed::Incomplete { need } => need,
        };
        let start = buf.len();
        buf.resize(start + need, 0);
        let n = loop {
            match r.read(&mut buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ProxyError::Io(e)),
            }
        };
        if n == 0 {
            return Err(eof());
        }
        buf.truncate(start + n);
    }
}

/// Reads one PROXY header from a socket, consuming exactly its bytes, and
/// fails with an `Io` error of kind `TimedOut` (or the socket's
/// `WouldBlock`) once `deadline` has passed.
///
/// It peeks at what has arrived, takes the part that belongs to the header,
/// and peeks again only if the header is not complete yet: a header that
/// arrived in one segment costs one `peek` and one `read`. Every round
/// consumes at least one byte, so a peer that trickles its header cannot
/// make it spin, and the deadline bounds the total time.
///
/// The socket's read timeout is changed while waiting and restored before
/// returning (whatever the outcome).
pub(crate) fn read_header_tcp(
    stream: &TcpStream,
    deadline: Instant,
) -> Result<ProxyHeader, ProxyError> {
    let saved = stream.read_timeout()?;
    let result = read_with_peek(&mut TcpPeek { stream, deadline });
    let restored = stream.set_read_timeout(saved);
    let header = result?;
    restored?;
    Ok(header)
}

/// A source that can show bytes without consuming them.
pub(super) trait PeekRead {
    /// Like `TcpStream::peek`: blocks until at least one byte is there, 0 at
    /// end of input.
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Consumes bytes that `peek` has shown.
    fn consume_exact(&mut self, buf: &mut [u8]) -> io::Result<()>;
}

/// A socket seen through [`PeekRead`], each peek bounded by what is left
/// of the deadline.
struct TcpPeek<'a> {
    /// The connection the header is read from.
    stream: &'a TcpStream,
    /// When to give up waiting for the rest of the header.
    deadline: Instant,
}

impl PeekRead for TcpPeek<'_> {
    /// Sets the socket's read timeout to what is left of the deadline (an
    /// error of kind `TimedOut` if nothing is), then peeks.
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out waiting for the PROXY protocol header",
            ));
        }
        self.stream.set_read_timeout(Some(remaining))?;
        self.stream.peek(buf)
    }

    /// Reads the bytes a peek has shown, which are already there.
    fn consume_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut stream = self.stream;
        stream.read_exact(buf)
    }
}

/// Reads one PROXY header from `src`, consuming exactly its bytes: peeks at
/// what has arrived, consumes all of it while the header is incomplete, and
/// only the header's part of it once it is complete. Every round consumes
/// at least one byte, so it never spins.
pub(super) fn read_with_peek<P: PeekRead>(src: &mut P) -> Result<ProxyHeader, ProxyError> {
    let mut seen: Vec<u8> = Vec::with_capacity(PEEK_LEN);
    let mut peeked = vec![0u8; PEEK_LEN];
    let mut need = V1_MIN_LEN;
    loop {
        let want = need.max(PEEK_LEN);
        if peeked.len() < want {
            peeked.resize(want, 0);
        }
        let n = loop {
            match src.peek(&mut peeked[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ProxyError::Io(e)),
            }
        };
        if n == 0 {
            return Err(eof());
        }
        let before = seen.len();
        seen.extend_from_slice(&peeked[..n]);
        match parse(&seen)? {
            Parsed::Complete { header, consumed } => {
                // `seen[..before]` was incomplete, so the header ends in the
                // bytes just peeked.
                let take = consumed.saturating_sub(before);
                src.consume_exact(&mut peeked[..take])?;
                return Ok(header);
            }
            Parsed::Incomplete { need: more } => {
                // All the peeked bytes belong to the header: take them, so the
                // next peek waits for new ones.
                src.consume_exact(&mut peeked[..n])?;
                need = more;
            }
        }
    }
}
