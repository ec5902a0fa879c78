//! PROXY protocol v2, the binary form: a 12-byte signature, a version/command
//! byte, a family/protocol byte, a 2-byte length, then the addresses and
//! TLVs. [`parse_v2`] reads it off the start of a buffer; the constants name
//! its fixed bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Parsed, ProxyError, ProxyHeader};

/// The v2 signature: the first 12 bytes of every v2 header.
pub(super) const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family/protocol, 2-byte length.
pub(super) const V2_FIXED_LEN: usize = 16;

/// Family/protocol byte: unspecified (no addresses).
pub(super) const FAMILY_UNSPEC: u8 = 0x00;
/// Family/protocol byte: TCP over IPv4 (12 address bytes).
pub(super) const TCP4: u8 = 0x11;
/// Family/protocol byte: UDP over IPv4 (12 address bytes).
pub(super) const UDP4: u8 = 0x12;
/// Family/protocol byte: TCP over IPv6 (36 address bytes).
pub(super) const TCP6: u8 = 0x21;
/// Family/protocol byte: UDP over IPv6 (36 address bytes).
pub(super) const UDP6: u8 = 0x22;
/// Family/protocol byte: UNIX stream socket (216 address bytes).
pub(super) const UNIX_STREAM: u8 = 0x31;
/// Family/protocol byte: UNIX datagram socket (216 address bytes).
pub(super) const UNIX_DGRAM: u8 = 0x32;

/// Parses the start of `buf` (which begins with `\r`) as a v2 header; see
/// [`parse`](super::parse). The fixed part is checked as soon as its 16
/// bytes are there, before the announced body arrives.
pub(super) fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
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
