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
//! - `read_header` (tests only): any [`Read`]; reads only as many bytes as `parse` says
//!   are still needed. For v1 that means reading up to the shortest possible
//!   line at once, then one byte at a time up to the CRLF (at most 107 bytes,
//!   once per connection); for v2 the 16-byte fixed part, then exactly the
//!   announced rest.
//! - [`read_header_tcp`]: a [`TcpStream`] under a deadline, using
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

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Instant;

/// The longest v1 header, CRLF included.
pub(crate) const V1_MAX_LEN: usize = 107;
/// The shortest v1 header: `PROXY UNKNOWN\r\n`.
const V1_MIN_LEN: usize = 15;
const V1_PREFIX: &[u8] = b"PROXY ";
/// The v2 signature: the first 12 bytes of every v2 header.
pub(crate) const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/protocol, 2-byte length.
const V2_FIXED_LEN: usize = 16;
/// How much `read_header_tcp` peeks at once: a v1 header or a v2 header
/// with the usual TLVs fits.
const PEEK_LEN: usize = 256;

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyHeader {
    /// The connection was relayed for the client at `source`, which
    /// connected to `destination` (the balancer's front address).
    Proxied {
        source: SocketAddr,
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
    Incomplete { need: usize },
    /// A whole header: the first `consumed` bytes of the buffer.
    Complete {
        header: ProxyHeader,
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Malformed(reason) => {
                write!(f, "malformed PROXY protocol header: {reason}")
            }
            ProxyError::TooLong => write!(
                f,
                "malformed PROXY protocol header: v1 line longer than {V1_MAX_LEN} bytes"
            ),
            ProxyError::Io(e) => write!(f, "reading the PROXY protocol header: {e}"),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProxyError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ProxyError {
    fn from(e: io::Error) -> ProxyError {
        ProxyError::Io(e)
    }
}

fn eof() -> ProxyError {
    ProxyError::Io(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed before the end of the PROXY protocol header",
    ))
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

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

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] != V1_PREFIX[..n] {
        return Err(ProxyError::Malformed("no PROXY protocol signature"));
    }
    let window = &buf[..buf.len().min(V1_MAX_LEN)];
    if let Some(pos) = window.iter().position(|&b| b == b'\r' || b == b'\n') {
        if window[pos] == b'\n' {
            return Err(ProxyError::Malformed("v1 line ends in LF without CR"));
        }
        if pos + 2 > V1_MAX_LEN {
            return Err(ProxyError::TooLong);
        }
        return match buf.get(pos + 1) {
            None => Ok(Parsed::Incomplete { need: 1 }),
            Some(b'\n') => Ok(Parsed::Complete {
                header: parse_v1_line(&buf[V1_PREFIX.len().min(pos)..pos])?,
                consumed: pos + 2,
            }),
            Some(_) => Err(ProxyError::Malformed("v1 line has a CR not followed by LF")),
        };
    }
    if buf.len() >= V1_MAX_LEN {
        return Err(ProxyError::TooLong);
    }
    // The shortest line that can still come: `PROXY UNKNOWN\r\n`, or with the
    // protocol known, `PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n` / `PROXY TCP6 :: :: 0 0\r\n`.
    let shortest = if buf.starts_with(b"PROXY TCP4 ") {
        32
    } else if buf.starts_with(b"PROXY TCP6 ") {
        22
    } else {
        V1_MIN_LEN
    };
    Ok(Parsed::Incomplete {
        need: shortest.saturating_sub(buf.len()).max(1),
    })
}

/// Parses what follows `PROXY ` on a v1 line (CRLF excluded).
fn parse_v1_line(rest: &[u8]) -> Result<ProxyHeader, ProxyError> {
    // "the receiver must ignore anything presented before the CRLF is found"
    if rest == b"UNKNOWN" || rest.starts_with(b"UNKNOWN ") {
        return Ok(ProxyHeader::Local);
    }
    let text = std::str::from_utf8(rest)
        .ok()
        .filter(|t| t.is_ascii())
        .ok_or(ProxyError::Malformed("v1 line is not ASCII"))?;
    if text.split(' ').any(str::is_empty) {
        return Err(ProxyError::Malformed(
            "v1 fields are not separated by single spaces",
        ));
    }
    let mut fields = text.split(' ');
    let v4 = match fields.next() {
        Some("TCP4") => true,
        Some("TCP6") => false,
        _ => {
            return Err(ProxyError::Malformed(
                "v1 protocol is not TCP4, TCP6 or UNKNOWN",
            ));
        }
    };
    let mut next = |what| fields.next().ok_or(ProxyError::Malformed(what));
    let source = next("v1 line has no source address")?;
    let destination = next("v1 line has no destination address")?;
    let source_port = next("v1 line has no source port")?;
    let destination_port = next("v1 line has no destination port")?;
    if fields.next().is_some() {
        return Err(ProxyError::Malformed("v1 line has extra fields"));
    }
    let ip = |s: &str, what| -> Result<IpAddr, ProxyError> {
        let parsed = if v4 {
            s.parse::<Ipv4Addr>().map(IpAddr::V4)
        } else {
            s.parse::<Ipv6Addr>().map(IpAddr::V6)
        };
        parsed.map_err(|_| ProxyError::Malformed(what))
    };
    let source_ip = ip(source, "v1 source address is not valid for its protocol")?;
    let destination_ip = ip(
        destination,
        "v1 destination address is not valid for its protocol",
    )?;
    let source_port =
        parse_port(source_port).ok_or(ProxyError::Malformed("v1 source port is not valid"))?;
    let destination_port = parse_port(destination_port)
        .ok_or(ProxyError::Malformed("v1 destination port is not valid"))?;
    Ok(ProxyHeader::Proxied {
        source: SocketAddr::new(source_ip, source_port),
        destination: SocketAddr::new(destination_ip, destination_port),
    })
}

/// A port in plain decimal: 0 to 65535, digits only, no leading zero.
fn parse_port(s: &str) -> Option<u16> {
    let digits_only = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

const FAMILY_UNSPEC: u8 = 0x00;
const TCP4: u8 = 0x11;
const UDP4: u8 = 0x12;
const TCP6: u8 = 0x21;
const UDP6: u8 = 0x22;
const UNIX_STREAM: u8 = 0x31;
const UNIX_DGRAM: u8 = 0x32;

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(ProxyError::Malformed("no PROXY protocol signature"));
    }
    if buf.len() < V2_FIXED_LEN {
        return Ok(Parsed::Incomplete {
            need: V2_FIXED_LEN - buf.len(),
        });
    }
    let version = buf[12] >> 4;
    let command = buf[12] & 0x0f;
    let family = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if version != 2 {
        return Err(ProxyError::Malformed("v2 version is not 2"));
    }
    let local = match command {
        0x0 => true,
        0x1 => false,
        _ => {
            return Err(ProxyError::Malformed(
                "v2 command is neither LOCAL nor PROXY",
            ));
        }
    };
    // LOCAL: "discard the protocol block including the family which is ignored".
    if !local {
        let address_len = match family {
            FAMILY_UNSPEC => 0,
            TCP4 | UDP4 => 12,
            TCP6 | UDP6 => 36,
            UNIX_STREAM | UNIX_DGRAM => 216,
            _ => {
                return Err(ProxyError::Malformed(
                    "v2 address family or transport protocol not in the spec",
                ));
            }
        };
        if len < address_len {
            return Err(ProxyError::Malformed(
                "v2 length too short for the address family",
            ));
        }
    }
    let total = V2_FIXED_LEN + len;
    if buf.len() < total {
        return Ok(Parsed::Incomplete {
            need: total - buf.len(),
        });
    }
    let body = &buf[V2_FIXED_LEN..total];
    let header = match family {
        _ if local => ProxyHeader::Local,
        TCP4 => {
            let ip = |at: usize| Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]);
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(IpAddr::V4(ip(0)), port(8)),
                destination: SocketAddr::new(IpAddr::V4(ip(4)), port(10)),
            }
        }
        TCP6 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                Ipv6Addr::from(octets)
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            ProxyHeader::Proxied {
                source: SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
                destination: SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
            }
        }
        // UNSPEC, UDP, UNIX: fall back to the real connection endpoints.
        _ => ProxyHeader::Local,
    };
    Ok(Parsed::Complete {
        header,
        consumed: total,
    })
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// Reads one PROXY header from `r`, reading exactly its bytes and nothing
/// after it. Works on any reader, and is correct however the reader splits
/// its data; a v1 line is read one byte at a time past its first 15 (or 22
/// or 32) bytes, so on a socket prefer [`read_header_tcp`].
#[cfg(test)] // only the tests need it
pub(crate) fn read_header<R: Read + ?Sized>(r: &mut R) -> Result<ProxyHeader, ProxyError> {
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
trait PeekRead {
    /// Like `TcpStream::peek`: blocks until at least one byte is there, 0 at
    /// end of input.
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Consumes bytes that `peek` has shown.
    fn consume_exact(&mut self, buf: &mut [u8]) -> io::Result<()>;
}

struct TcpPeek<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl PeekRead for TcpPeek<'_> {
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

    fn consume_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut stream = self.stream;
        stream.read_exact(buf)
    }
}

fn read_with_peek<P: PeekRead>(src: &mut P) -> Result<ProxyHeader, ProxyError> {
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

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// Puts both addresses in one family, as the header requires: IPv4-mapped
/// IPv6 addresses become IPv4; if one side is then IPv4 and the other IPv6,
/// the IPv4 one is written in its mapped IPv6 form.
#[cfg(test)] // only the tests need it
fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
    let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (s, d) = (canonical(source), canonical(destination));
    let as_v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if s.is_ipv4() == d.is_ipv4() {
        (s, d)
    } else {
        (as_v6(s), as_v6(d))
    }
}

/// A v1 header: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or `TCP6`).
/// Mixed families are written as `TCP6` with the IPv4 side mapped.
#[cfg(test)] // the tests build headers with it; `syncnet proxy --send-proxy-protocol` will too
pub(crate) fn write_v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (s, d) = same_family(source, destination);
    let protocol = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {protocol} {} {} {} {}\r\n",
        s.ip(),
        d.ip(),
        s.port(),
        d.port()
    )
    .into_bytes()
}

/// A v2 `PROXY` header for a TCP connection over IPv4 (28 bytes) or IPv6
/// (52 bytes), without TLVs. Mixed families are written as IPv6 with the
/// IPv4 side mapped.
#[cfg(test)] // the tests build headers with it; `syncnet proxy --send-proxy-protocol` will too
pub(crate) fn write_v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (s, d) = same_family(source, destination);
    let mut out = Vec::with_capacity(V2_FIXED_LEN + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21); // version 2, PROXY
    match (s.ip(), d.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            out.push(TCP4);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        (src, dst) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V6(v6) => v6,
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            };
            out.push(TCP6);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&v6(src).octets());
            out.extend_from_slice(&v6(dst).octets());
        }
    }
    out.extend_from_slice(&s.port().to_be_bytes());
    out.extend_from_slice(&d.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::{Cursor, Write};
    use std::net::{Shutdown, TcpListener};
    use std::time::Duration;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn proxied(source: &str, destination: &str) -> ProxyHeader {
        ProxyHeader::Proxied {
            source: sa(source),
            destination: sa(destination),
        }
    }

    /// Reads a header from `bytes` through `read_header`, and returns it with
    /// the bytes left unread.
    fn read_all(bytes: &[u8]) -> (Result<ProxyHeader, ProxyError>, Vec<u8>) {
        let mut cursor = Cursor::new(bytes.to_vec());
        let result = read_header(&mut cursor);
        let mut rest = Vec::new();
        cursor.read_to_end(&mut rest).unwrap();
        (result, rest)
    }

    fn malformed(bytes: &[u8]) -> &'static str {
        match parse(bytes) {
            Err(ProxyError::Malformed(reason)) => reason,
            other => panic!(
                "{:?}: expected Malformed, got {other:?}",
                String::from_utf8_lossy(bytes)
            ),
        }
    }

    /// A v2 header with the given command byte, family byte and body.
    fn v2(ver_cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(family);
        out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// A reader that hands out at most `sizes[i]` bytes on its i-th read.
    struct Chunked {
        data: Vec<u8>,
        pos: usize,
        sizes: Vec<usize>,
        reads: usize,
    }

    impl Read for Chunked {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.reads % self.sizes.len()].max(1);
            self.reads += 1;
            let n = size.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// A peekable source whose data "arrives" `sizes[i]` bytes per peek.
    struct Trickle {
        data: Vec<u8>,
        pos: usize,
        arrived: usize,
        sizes: Vec<usize>,
        peeks: usize,
    }

    impl PeekRead for Trickle {
        fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // A real peek blocks until something new is there: make sure the
            // reader never peeks twice at the same bytes without consuming.
            if self.arrived == self.pos {
                let size = self.sizes[self.peeks % self.sizes.len()].max(1);
                self.arrived = self.arrived.saturating_add(size).min(self.data.len());
            }
            self.peeks += 1;
            assert!(self.peeks < 10_000, "peek loop does not progress");
            let n = buf.len().min(self.arrived - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            Ok(n)
        }

        fn consume_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
            assert!(
                self.pos + buf.len() <= self.arrived,
                "consumed bytes never peeked"
            );
            buf.copy_from_slice(&self.data[self.pos..self.pos + buf.len()]);
            self.pos += buf.len();
            Ok(())
        }
    }

    // --- v1 ---

    #[test]
    fn v1_example_leaves_the_data_unread() {
        let (header, rest) = read_all(b"PROXY TCP4 10.9.8.7 10.0.0.1 5555 3000\r\nhello");
        assert_eq!(header.unwrap(), proxied("10.9.8.7:5555", "10.0.0.1:3000"));
        assert_eq!(rest, b"hello");
    }

    #[test]
    fn v1_parse_reports_the_header_length() {
        let line = b"PROXY TCP4 10.9.8.7 10.0.0.1 5555 3000\r\n";
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&bytes).unwrap(),
            Parsed::Complete {
                header: proxied("10.9.8.7:5555", "10.0.0.1:3000"),
                consumed: line.len()
            }
        );
    }

    #[test]
    fn v1_tcp6() {
        let (header, rest) = read_all(b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\nx");
        assert_eq!(header.unwrap(), proxied("[2001:db8::1]:65535", "[::1]:0"));
        assert_eq!(rest, b"x");
        // An IPv4-mapped source is returned as written.
        let (header, _) = read_all(b"PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n");
        assert_eq!(header.unwrap(), proxied("[::ffff:10.0.0.1]:1", "[::1]:2"));
    }

    #[test]
    fn v1_unknown_is_local() {
        for line in [
            &b"PROXY UNKNOWN\r\n"[..],
            b"PROXY UNKNOWN ffff::1 ffff::2 1234 5678\r\n",
            // Anything before the CRLF is ignored, even junk.
            b"PROXY UNKNOWN \xff\x00 junk  here\r\n",
        ] {
            let mut bytes = line.to_vec();
            bytes.extend_from_slice(b"data");
            let (header, rest) = read_all(&bytes);
            assert_eq!(header.unwrap(), ProxyHeader::Local);
            assert_eq!(rest, b"data");
        }
    }

    #[test]
    fn v1_longest_line_is_accepted_and_one_more_byte_is_too_long() {
        let longest = format!(
            "PROXY UNKNOWN {} {} 65535 65535\r\n",
            "ffff:".repeat(7) + "ffff",
            "ffff:".repeat(7) + "ffff"
        );
        assert_eq!(longest.len(), V1_MAX_LEN);
        assert_eq!(
            parse(longest.as_bytes()).unwrap(),
            Parsed::Complete {
                header: ProxyHeader::Local,
                consumed: V1_MAX_LEN
            }
        );
        let too_long = longest.replace("UNKNOWN ", "UNKNOWN  ");
        assert!(matches!(
            parse(too_long.as_bytes()),
            Err(ProxyError::TooLong)
        ));
    }

    #[test]
    fn v1_without_crlf_is_too_long_at_107_bytes() {
        let mut bytes = b"PROXY UNKNOWN ".to_vec();
        bytes.resize(V1_MAX_LEN - 1, b'a');
        assert_eq!(parse(&bytes).unwrap(), Parsed::Incomplete { need: 1 });
        bytes.push(b'a');
        assert!(matches!(parse(&bytes), Err(ProxyError::TooLong)));
        // CR as the 107th byte: its LF would be the 108th.
        bytes[V1_MAX_LEN - 1] = b'\r';
        assert!(matches!(parse(&bytes), Err(ProxyError::TooLong)));
        // Through a reader: stops after 107 bytes, not at end of input.
        let mut long = b"PROXY TCP4 ".to_vec();
        long.resize(1000, b'1');
        let (header, rest) = read_all(&long);
        assert!(matches!(header, Err(ProxyError::TooLong)));
        assert_eq!(rest.len(), 1000 - V1_MAX_LEN);
    }

    #[test]
    fn v1_malformed_lines() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"PROXY TCP4 10.0.0.256 10.0.0.1 1 2\r\n",
                "v1 source address is not valid for its protocol",
            ),
            (
                b"PROXY TCP4 10.0.0.1 10.0.0 1 2\r\n",
                "v1 destination address is not valid for its protocol",
            ),
            (
                b"PROXY TCP4 010.0.0.1 10.0.0.1 1 2\r\n",
                "v1 source address is not valid for its protocol",
            ),
            (
                b"PROXY TCP4 ::1 10.0.0.1 1 2\r\n",
                "v1 source address is not valid for its protocol",
            ),
            (
                b"PROXY TCP6 10.0.0.1 ::1 1 2\r\n",
                "v1 source address is not valid for its protocol",
            ),
            (
                b"PROXY TCP6 ::1 [::1] 1 2\r\n",
                "v1 destination address is not valid for its protocol",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 +80 2\r\n",
                "v1 source port is not valid",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n",
                "v1 source port is not valid",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n",
                "v1 source port is not valid",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n",
                "v1 destination port is not valid",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 99999\r\n",
                "v1 destination port is not valid",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 0x10\r\n",
                "v1 destination port is not valid",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 \r\n",
                "v1 fields are not separated by single spaces",
            ),
            (
                b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
                "v1 fields are not separated by single spaces",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n",
                "v1 fields are not separated by single spaces",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",
                "v1 line has extra fields",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
                "v1 line has no destination port",
            ),
            (
                b"PROXY TCP4 1.2.3.4\r\n",
                "v1 line has no destination address",
            ),
            (b"PROXY TCP4\r\n", "v1 line has no source address"),
            (
                b"PROXY TCP4\t1.2.3.4 1.2.3.4 1 2\r\n",
                "v1 protocol is not TCP4, TCP6 or UNKNOWN",
            ),
            (
                b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",
                "v1 protocol is not TCP4, TCP6 or UNKNOWN",
            ),
            (
                b"PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n",
                "v1 protocol is not TCP4, TCP6 or UNKNOWN",
            ),
            (
                b"PROXY UNKNOWNX\r\n",
                "v1 protocol is not TCP4, TCP6 or UNKNOWN",
            ),
            (
                b"PROXY \r\n",
                "v1 fields are not separated by single spaces",
            ),
            (
                b"PROXY TCP4 1.2.3.\xc4 1.2.3.4 1 2\r\n",
                "v1 line is not ASCII",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
                "v1 line ends in LF without CR",
            ),
            (
                b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX",
                "v1 line has a CR not followed by LF",
            ),
            (b"PROXY\r\n", "no PROXY protocol signature"),
            (
                b"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n",
                "no PROXY protocol signature",
            ),
            (b"PROXZ", "no PROXY protocol signature"),
            (b"GET / HTTP/1.1\r\n", "no PROXY protocol signature"),
            (b"\x16\x03\x01\x02\x00", "no PROXY protocol signature"),
        ];
        for (bytes, reason) in cases {
            assert_eq!(
                malformed(bytes),
                *reason,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn v1_truncated_is_an_eof_error() {
        for bytes in [
            &b""[..],
            b"PRO",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r",
        ] {
            let (result, rest) = read_all(bytes);
            match result {
                Err(ProxyError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
                other => panic!("{bytes:?}: {other:?}"),
            }
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn v1_need_never_overshoots_the_shortest_header() {
        assert_eq!(parse(b"").unwrap(), Parsed::Incomplete { need: 15 });
        assert_eq!(parse(b"P").unwrap(), Parsed::Incomplete { need: 14 });
        assert_eq!(
            parse(b"PROXY TCP4 ").unwrap(),
            Parsed::Incomplete { need: 21 }
        );
        assert_eq!(
            parse(b"PROXY TCP6 ").unwrap(),
            Parsed::Incomplete { need: 11 }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN").unwrap(),
            Parsed::Incomplete { need: 2 }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN x").unwrap(),
            Parsed::Incomplete { need: 1 }
        );
        // The shortest header of each kind, read with nothing after it.
        for line in [
            &b"PROXY UNKNOWN\r\n"[..],
            b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n",
            b"PROXY TCP6 :: :: 0 0\r\n",
        ] {
            let mut exact = Chunked {
                data: line.to_vec(),
                pos: 0,
                sizes: vec![usize::MAX],
                reads: 0,
            };
            read_header(&mut exact).unwrap();
            assert_eq!(exact.pos, line.len());
        }
    }

    // --- v2 ---

    #[test]
    fn v2_ipv4_round_trip() {
        let (s, d) = (sa("10.9.8.7:5555"), sa("10.0.0.1:3000"));
        let mut bytes = write_v2(s, d);
        assert_eq!(bytes.len(), 28);
        bytes.extend_from_slice(b"payload");
        let (header, rest) = read_all(&bytes);
        assert_eq!(
            header.unwrap(),
            ProxyHeader::Proxied {
                source: s,
                destination: d
            }
        );
        assert_eq!(rest, b"payload");
    }

    #[test]
    fn v2_ipv6_round_trip() {
        let (s, d) = (sa("[2001:db8::7]:65535"), sa("[::1]:1"));
        let mut bytes = write_v2(s, d);
        assert_eq!(bytes.len(), 52);
        bytes.extend_from_slice(b"\r\n\r\n");
        let (header, rest) = read_all(&bytes);
        assert_eq!(
            header.unwrap(),
            ProxyHeader::Proxied {
                source: s,
                destination: d
            }
        );
        assert_eq!(rest, b"\r\n\r\n");
    }

    #[test]
    fn v2_writer_bytes_are_as_the_spec_says() {
        let bytes = write_v2(sa("1.2.3.4:258"), sa("5.6.7.8:80"));
        let mut expected = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a".to_vec();
        expected.extend_from_slice(&[
            0x21, 0x11, 0x00, 0x0c, 1, 2, 3, 4, 5, 6, 7, 8, 0x01, 0x02, 0x00, 0x50,
        ]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn v2_local_ignores_family_and_skips_its_block() {
        for family in [0x00, 0x11, 0x21, 0xff] {
            let mut bytes = v2(0x20, family, &[7u8; 40]);
            bytes.extend_from_slice(b"data");
            let (header, rest) = read_all(&bytes);
            assert_eq!(header.unwrap(), ProxyHeader::Local, "family {family:#x}");
            assert_eq!(rest, b"data");
        }
        let (header, rest) = read_all(&v2(0x20, 0x00, &[]));
        assert_eq!(header.unwrap(), ProxyHeader::Local);
        assert!(rest.is_empty());
    }

    #[test]
    fn v2_families_without_tcp_addresses_fall_back_to_local() {
        for (family, len) in [
            (FAMILY_UNSPEC, 0),
            (UDP4, 12),
            (UDP6, 36),
            (UNIX_STREAM, 216),
            (UNIX_DGRAM, 216),
        ] {
            let mut bytes = v2(0x21, family, &vec![1u8; len + 3]);
            bytes.extend_from_slice(b"after");
            let (header, rest) = read_all(&bytes);
            assert_eq!(header.unwrap(), ProxyHeader::Local, "family {family:#x}");
            assert_eq!(rest, b"after");
        }
    }

    #[test]
    fn v2_tlvs_are_skipped() {
        let mut body = vec![192, 168, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x01, 0xbb];
        // PP2_TYPE_AUTHORITY "example.com", PP2_TYPE_NOOP
        body.extend_from_slice(&[0x02, 0x00, 0x0b]);
        body.extend_from_slice(b"example.com");
        body.extend_from_slice(&[0x04, 0x00, 0x02, 0, 0]);
        let mut bytes = v2(0x21, TCP4, &body);
        let header_len = bytes.len();
        bytes.extend_from_slice(b"rest");
        assert_eq!(
            parse(&bytes).unwrap(),
            Parsed::Complete {
                header: proxied("192.168.0.1:12345", "10.0.0.2:443"),
                consumed: header_len
            }
        );
        let (_, rest) = read_all(&bytes);
        assert_eq!(rest, b"rest");
    }

    #[test]
    fn v2_malformed_headers() {
        let addresses = [0u8; 12];
        let mut bad_signature = v2(0x21, TCP4, &addresses);
        bad_signature[5] = b'X';
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (bad_signature, "no PROXY protocol signature"),
            (b"\r\n\r\nX".to_vec(), "no PROXY protocol signature"),
            (b"\r\r".to_vec(), "no PROXY protocol signature"),
            (v2(0x11, TCP4, &addresses), "v2 version is not 2"),
            (v2(0x31, TCP4, &addresses), "v2 version is not 2"),
            (v2(0x01, TCP4, &addresses), "v2 version is not 2"),
            (
                v2(0x22, TCP4, &addresses),
                "v2 command is neither LOCAL nor PROXY",
            ),
            (
                v2(0x2f, TCP4, &addresses),
                "v2 command is neither LOCAL nor PROXY",
            ),
            (
                v2(0x21, 0x13, &addresses),
                "v2 address family or transport protocol not in the spec",
            ),
            (
                v2(0x21, 0x41, &addresses),
                "v2 address family or transport protocol not in the spec",
            ),
            (
                v2(0x21, 0x10, &addresses),
                "v2 address family or transport protocol not in the spec",
            ),
            (
                v2(0x21, 0x01, &addresses),
                "v2 address family or transport protocol not in the spec",
            ),
            (
                v2(0x21, TCP4, &addresses[..11]),
                "v2 length too short for the address family",
            ),
            (
                v2(0x21, TCP6, &addresses),
                "v2 length too short for the address family",
            ),
            (
                v2(0x21, UNIX_STREAM, &[0u8; 215]),
                "v2 length too short for the address family",
            ),
        ];
        for (bytes, reason) in cases {
            assert_eq!(malformed(&bytes), reason, "{bytes:?}");
        }
    }

    #[test]
    fn v2_malformed_fixed_part_fails_before_the_body_arrives() {
        // A huge announced length with a bad command is rejected at 16 bytes.
        let mut fixed = V2_SIGNATURE.to_vec();
        fixed.extend_from_slice(&[0x2f, 0x11, 0xff, 0xff]);
        assert_eq!(malformed(&fixed), "v2 command is neither LOCAL nor PROXY");
        // A good one asks for exactly the rest.
        fixed[12] = 0x21;
        assert_eq!(parse(&fixed).unwrap(), Parsed::Incomplete { need: 0xffff });
        assert_eq!(parse(&fixed[..5]).unwrap(), Parsed::Incomplete { need: 11 });
    }

    #[test]
    fn v2_truncated_is_an_eof_error() {
        let full = write_v2(sa("1.2.3.4:1"), sa("5.6.7.8:2"));
        for cut in [1, 12, 15, 16, 27] {
            let (result, rest) = read_all(&full[..cut]);
            match result {
                Err(ProxyError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
                other => panic!("cut at {cut}: {other:?}"),
            }
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn v2_large_tlv_block_reads_exactly() {
        let mut body = vec![1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2];
        body.resize(0xffff, 0xab);
        let mut bytes = v2(0x21, TCP4, &body);
        bytes.extend_from_slice(b"tail");
        let (header, rest) = read_all(&bytes);
        assert_eq!(header.unwrap(), proxied("1.2.3.4:1", "5.6.7.8:2"));
        assert_eq!(rest, b"tail");
    }

    // --- writers ---

    #[test]
    fn v1_writer_matches_the_spec_example() {
        assert_eq!(
            write_v1(sa("10.9.8.7:5555"), sa("10.0.0.1:3000")),
            b"PROXY TCP4 10.9.8.7 10.0.0.1 5555 3000\r\n"
        );
        assert_eq!(
            write_v1(sa("[2001:db8::1]:1"), sa("[::1]:2")),
            b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n"
        );
    }

    #[test]
    fn writers_put_mixed_families_in_one() {
        // A mapped client becomes IPv4.
        assert_eq!(
            write_v1(sa("[::ffff:10.0.0.1]:1"), sa("10.0.0.2:2")),
            b"PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n"
        );
        // IPv4 client, IPv6 destination: both IPv6.
        assert_eq!(
            write_v1(sa("10.0.0.1:1"), sa("[::1]:2")),
            b"PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n"
        );
        let (header, _) = read_all(&write_v2(sa("10.0.0.1:1"), sa("[::1]:2")));
        assert_eq!(header.unwrap(), proxied("[::ffff:10.0.0.1]:1", "[::1]:2"));
        let (header, _) = read_all(&write_v2(
            sa("[::ffff:10.0.0.1]:1"),
            sa("[::ffff:10.0.0.2]:2"),
        ));
        assert_eq!(header.unwrap(), proxied("10.0.0.1:1", "10.0.0.2:2"));
    }

    #[test]
    fn errors_display_what_went_wrong() {
        assert_eq!(
            ProxyError::Malformed("v2 version is not 2").to_string(),
            "malformed PROXY protocol header: v2 version is not 2"
        );
        assert_eq!(
            ProxyError::TooLong.to_string(),
            "malformed PROXY protocol header: v1 line longer than 107 bytes"
        );
        let (result, _) = read_all(b"PROXY ");
        assert_eq!(
            result.unwrap_err().to_string(),
            "reading the PROXY protocol header: connection closed before the end of the PROXY protocol header"
        );
    }

    // --- peek-based reading ---

    #[test]
    fn peek_reader_takes_a_whole_header_in_one_round() {
        let mut bytes = write_v2(sa("10.0.0.1:1"), sa("10.0.0.2:2"));
        bytes.extend_from_slice(b"after");
        let mut src = Trickle {
            data: bytes,
            pos: 0,
            arrived: 0,
            sizes: vec![usize::MAX],
            peeks: 0,
        };
        assert_eq!(
            read_with_peek(&mut src).unwrap(),
            proxied("10.0.0.1:1", "10.0.0.2:2")
        );
        assert_eq!(src.peeks, 1);
        assert_eq!(&src.data[src.pos..], b"after");
    }

    #[test]
    fn peek_reader_handles_a_trickle_and_errors() {
        let mut bytes = b"PROXY TCP4 10.9.8.7 10.0.0.1 5555 3000\r\n".to_vec();
        bytes.extend_from_slice(b"data");
        let mut src = Trickle {
            data: bytes,
            pos: 0,
            arrived: 0,
            sizes: vec![1],
            peeks: 0,
        };
        assert_eq!(
            read_with_peek(&mut src).unwrap(),
            proxied("10.9.8.7:5555", "10.0.0.1:3000")
        );
        assert_eq!(&src.data[src.pos..], b"data");

        let mut src = Trickle {
            data: b"PROXY TCP4 1.2".to_vec(),
            pos: 0,
            arrived: 0,
            sizes: vec![3],
            peeks: 0,
        };
        assert!(
            matches!(read_with_peek(&mut src), Err(ProxyError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof)
        );

        let mut src = Trickle {
            data: b"SSH-2.0-OpenSSH\r\n".to_vec(),
            pos: 0,
            arrived: 0,
            sizes: vec![100],
            peeks: 0,
        };
        assert!(matches!(
            read_with_peek(&mut src),
            Err(ProxyError::Malformed(_))
        ));
    }

    /// A connected pair of loopback sockets, both with timeouts.
    fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        for s in [&client, &server] {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        (client, server)
    }

    #[test]
    fn tcp_reader_leaves_the_data_in_the_socket() {
        let (mut client, mut server) = socket_pair();
        client
            .write_all(b"PROXY TCP4 10.9.8.7 10.0.0.1 5555 3000\r\nhello")
            .unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let header = read_header_tcp(&server, deadline).unwrap();
        assert_eq!(header, proxied("10.9.8.7:5555", "10.0.0.1:3000"));
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"hello");
        // The socket's own read timeout is back.
        assert_eq!(server.read_timeout().unwrap(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn tcp_reader_joins_a_header_sent_in_pieces() {
        let (mut client, mut server) = socket_pair();
        let mut bytes = write_v2(sa("[2001:db8::1]:4000"), sa("[2001:db8::2]:443"));
        bytes.extend_from_slice(b"tail");
        let writer = std::thread::spawn(move || {
            for piece in bytes.chunks(7) {
                client.write_all(piece).unwrap();
                client.flush().unwrap();
            }
            client.shutdown(Shutdown::Write).unwrap();
        });
        let header = read_header_tcp(&server, Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(header, proxied("[2001:db8::1]:4000", "[2001:db8::2]:443"));
        writer.join().unwrap();
        let mut rest = Vec::new();
        server.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"tail");
    }

    #[test]
    fn tcp_reader_gives_up_at_the_deadline() {
        let (mut client, server) = socket_pair();
        client.write_all(b"PROXY TCP4 10.9.8.7").unwrap();
        let started = Instant::now();
        let result = read_header_tcp(&server, started + Duration::from_millis(200));
        match result {
            Err(ProxyError::Io(e)) => assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ),
                "{e:?}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the 5 s socket timeout was used"
        );
        assert_eq!(server.read_timeout().unwrap(), Some(Duration::from_secs(5)));
    }

    #[test]
    fn tcp_reader_reports_a_closed_connection() {
        let (client, server) = socket_pair();
        drop(client);
        let result = read_header_tcp(&server, Instant::now() + Duration::from_secs(5));
        assert!(
            matches!(result, Err(ProxyError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof)
        );
    }

    // --- properties ---

    fn socket_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
            // Mapped and special addresses, which printing and parsing treat apart.
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(
                IpAddr::V6(Ipv4Addr::from(ip).to_ipv6_mapped()),
                port
            )),
            Just(sa("[::]:0")),
            Just(sa("0.0.0.0:65535")),
        ]
    }

    /// A valid header (bytes) and what it must parse to.
    fn valid_header() -> impl Strategy<Value = (Vec<u8>, ProxyHeader)> {
        let proxied = (
            socket_addr(),
            socket_addr(),
            0..3u8,
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(|(s, d, kind, tlvs)| {
                let (es, ed) = same_family(s, d);
                let expected = ProxyHeader::Proxied {
                    source: es,
                    destination: ed,
                };
                let bytes = match kind {
                    0 => write_v1(s, d),
                    1 => write_v2(s, d),
                    _ => {
                        // v2 with TLV bytes appended to the address block.
                        let mut bytes = write_v2(s, d);
                        let len = u16::from_be_bytes([bytes[14], bytes[15]]) as usize + tlvs.len();
                        bytes[14..16].copy_from_slice(&u16::try_from(len).unwrap().to_be_bytes());
                        bytes.extend_from_slice(&tlvs);
                        bytes
                    }
                };
                (bytes, expected)
            });
        let local = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..60)
                .prop_map(|body| (v2(0x20, 0x00, &body), ProxyHeader::Local)),
            "[ -~]{0,90}".prop_map(|junk| {
                let line = if junk.is_empty() {
                    "PROXY UNKNOWN\r\n".to_owned()
                } else {
                    format!("PROXY UNKNOWN {junk}\r\n")
                };
                (line.into_bytes(), ProxyHeader::Local)
            }),
        ];
        prop_oneof![3 => proxied, 1 => local]
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Parsed::Complete { consumed, .. }) = parse(&bytes) {
                prop_assert!(consumed <= bytes.len());
            }
            let _ = read_all(&bytes);
        }

        #[test]
        fn near_miss_bytes_never_panic(
            start in prop_oneof![
                Just(b"PROXY ".to_vec()),
                Just(b"PROXY TCP4 ".to_vec()),
                Just(b"PROXY TCP6 ".to_vec()),
                Just(V2_SIGNATURE.to_vec()),
            ],
            tail in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut bytes = start;
            bytes.extend_from_slice(&tail);
            let (result, rest) = read_all(&bytes);
            if result.is_ok() {
                prop_assert!(rest.len() < bytes.len());
            }
        }

        #[test]
        fn split_header_parses_the_same_and_leaves_the_rest(
            (header_bytes, expected) in valid_header(),
            after in proptest::collection::vec(any::<u8>(), 0..64),
            sizes in proptest::collection::vec(1..20usize, 1..8),
        ) {
            let mut data = header_bytes.clone();
            data.extend_from_slice(&after);

            let mut reader = Chunked { data: data.clone(), pos: 0, sizes: sizes.clone(), reads: 0 };
            prop_assert_eq!(read_header(&mut reader).unwrap(), expected);
            prop_assert_eq!(&reader.data[reader.pos..], &after[..]);

            let mut src = Trickle { data, pos: 0, arrived: 0, sizes, peeks: 0 };
            prop_assert_eq!(read_with_peek(&mut src).unwrap(), expected);
            prop_assert_eq!(&src.data[src.pos..], &after[..]);
        }

        #[test]
        fn every_prefix_is_incomplete_and_asks_for_no_more_than_is_left(
            (header_bytes, expected) in valid_header(),
        ) {
            for cut in 0..header_bytes.len() {
                match parse(&header_bytes[..cut]) {
                    Ok(Parsed::Incomplete { need }) => {
                        prop_assert!(need >= 1);
                        prop_assert!(cut + need <= header_bytes.len(), "cut {} need {}", cut, need);
                    }
                    other => prop_assert!(false, "cut {}: {:?}", cut, other),
                }
            }
            prop_assert_eq!(
                parse(&header_bytes).unwrap(),
                Parsed::Complete { header: expected, consumed: header_bytes.len() }
            );
        }
    }
}
