//! Unit tests of the PROXY protocol: v1 and v2 parsing (valid, malformed,
//! truncated), the writers, reading through any reader, through `peek` and
//! off real loopback sockets, and proptest properties over split and
//! arbitrary input.

use proptest::prelude::*;
use std::io::{self, Cursor, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::read::{PeekRead, read_header, read_header_tcp, read_with_peek};
use super::v1::V1_MAX_LEN;
use super::v2::{FAMILY_UNSPEC, TCP4, TCP6, UDP4, UDP6, UNIX_DGRAM, UNIX_STREAM, V2_SIGNATURE};
use super::write::{same_family, write_v1, write_v2};
use super::{Parsed, ProxyError, ProxyHeader, parse};

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
    assert!(matches!(result, Err(ProxyError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof));
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

#[test]
fn a_timeout_says_so() {
    let e = ProxyError::Io(std::io::Error::from(std::io::ErrorKind::WouldBlock));
    assert_eq!(
        e.to_string(),
        "timed out waiting for the PROXY protocol header"
    );
    let e = ProxyError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    assert!(
        e.to_string()
            .starts_with("reading the PROXY protocol header: ")
    );
}
