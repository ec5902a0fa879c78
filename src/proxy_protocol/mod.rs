//! PROXY protocol v1 and v2 (HAProxy's spec): parse a balancer's header, write one for an upstream.
//!
//! Three ways in, all of which stop exactly at the end of the header, so the
//! bytes after it (the client's data, or a TLS ClientHello) stay unread for
//! whoever comes next:
//!
//! - [`parse`]: a pure parser over the bytes seen so far. It answers
//!   [`Parsed::Incomplete`] with a lower bound on how many more bytes the
//!   header needs (never more than it really needs), or
//!   [`Parsed::Complete`] with the header and its length, or an error as
//!   soon as the bytes cannot be the start of a header.
//! - `read_header` (tests only): any [`Read`](std::io::Read); reads only as many bytes as `parse` says
//!   are still needed. For v1 that means reading up to the shortest possible
//!   line at once, then one byte at a time up to the CRLF (at most 107 bytes,
//!   once per connection); for v2 the 16-byte fixed part, then exactly the
//!   announced rest.
//! - [`read_header_tcp`]: a [`TcpStream`](std::net::TcpStream) under a deadline, using
//!   `peek` so that a header that arrived in one segment costs one `peek`
//!   and one `read` (recommended for the server).
//!
//! Choices where the spec leaves room:
//! - v2 `LOCAL` (whatever its address family) and v1 `UNKNOWN` give
//!   [`ProxyHeader::Local`]: use the socket's own peer address.
//! - v2 `PROXY` with a family this server cannot use (UNSPEC, UDP over
//!   IPv4/IPv6, UNIX stream/datagram) also gives [`ProxyHeader::Local`]:
//!   the spec lets a receiver fall back to UNSPEC mode, i.e. accept the
//!   connection with the real endpoints. Family/protocol bytes outside the
//!   spec's list are rejected.
//! - v2 TLVs after the addresses are skipped, unread by the caller.
//! - Addresses are returned as written: an IPv4-mapped IPv6 source
//!   (`::ffff:a.b.c.d` in a `TCP6` line) stays IPv6 here; the server folds
//!   it to IPv4 as it does for socket peers.
//!
//! One file per part:
//! - `mod.rs`: [`ProxyHeader`], [`Parsed`], [`ProxyError`] and [`parse`],
//!   which hands the bytes to the v1 or v2 parser by their first byte.
//! - `v1.rs`: the text form (`PROXY TCP4 ...\r\n`).
//! - `v2.rs`: the binary form (signature, fixed part, addresses, TLVs).
//! - `read.rs`: reading a header off a socket or reader ([`read_header_tcp`]).
//! - `write.rs`: writing v1 and v2 headers ([`write_v1`], [`write_v2`]), for
//!   `syncnet proxy --send-proxy-protocol` and the tests.
//! - `tests.rs`: unit and property tests of all of them.

use std::fmt;
use std::io;
use std::net::SocketAddr;

mod read;
mod v1;
mod v2;
mod write;

#[cfg(test)]
mod tests;

pub(crate) use read::read_header_tcp;
use v1::{V1_MAX_LEN, V1_MIN_LEN, parse_v1};
use v2::parse_v2;
pub(crate) use write::{write_v1, write_v2};

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyHeader {
    /// The connection was relayed for the client at `source`, which
    /// connected to `destination` (the balancer's front address).
    Proxied {
        /// The client's address and port, as the balancer saw them.
        source: SocketAddr,
        /// The address and port the client connected to on the balancer.
        destination: SocketAddr,
    },
    /// The balancer's own connection (v2 `LOCAL`, e.g. a health check; v1
    /// `UNKNOWN`; or a v2 family that carries no usable TCP address): use the
    /// socket's peer address.
    Local,
}

/// The verdict of [`parse`] on the bytes seen so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The bytes are the start of a header; at least `need` more bytes (≥ 1)
    /// are needed, and reading exactly `need` more never reads past the end
    /// of a valid header.
    Incomplete {
        /// How many more bytes to read, at least 1.
        need: usize,
    },
    /// A whole header: the first `consumed` bytes of the buffer.
    Complete {
        /// What the header says.
        header: ProxyHeader,
        /// The header's length in bytes: where the data after it starts.
        consumed: usize,
    },
}

/// Why no PROXY header could be read. Every case closes the connection
/// (reason `protocol`).
#[derive(Debug)]
pub(crate) enum ProxyError {
    /// The bytes are not a valid v1 or v2 header.
    Malformed(&'static str),
    /// 107 bytes of a v1 header without its CRLF.
    TooLong,
    /// Reading failed: end of input before the header ended
    /// (`UnexpectedEof`), a timeout (`WouldBlock`/`TimedOut`), a reset.
    Io(io::Error),
}

impl fmt::Display for ProxyError {
    /// `malformed PROXY protocol header: REASON`, or `reading the PROXY
    /// protocol header: IO ERROR`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Malformed(reason) => {
                write!(f, "malformed PROXY protocol header: {reason}")
            }
            ProxyError::TooLong => write!(
                f,
                "malformed PROXY protocol header: v1 line longer than {V1_MAX_LEN} bytes"
            ),
            // A socket timeout reads as "Resource temporarily unavailable"
            // (EAGAIN): say what it means.
            ProxyError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                write!(f, "timed out waiting for the PROXY protocol header")
            }
            ProxyError::Io(e) => write!(f, "reading the PROXY protocol header: {e}"),
        }
    }
}

/// No `source()`: the I/O error is part of the message already.
impl std::error::Error for ProxyError {}

impl From<io::Error> for ProxyError {
    /// Wraps a read error as [`ProxyError::Io`].
    fn from(e: io::Error) -> ProxyError {
        ProxyError::Io(e)
    }
}

/// Parses the start of `buf` as a PROXY v1 or v2 header. Pure: call it again
/// with more bytes after [`Parsed::Incomplete`]. Bytes after the header are
/// ignored (`consumed` says where it ends).
pub(crate) fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    match buf.first() {
        None => Ok(Parsed::Incomplete { need: V1_MIN_LEN }),
        Some(b'P') => parse_v1(buf),
        Some(b'\r') => parse_v2(buf),
        Some(_) => Err(ProxyError::Malformed("no PROXY protocol signature")),
    }
}
