//! Writing PROXY headers for an upstream: [`write_v1`] and [`write_v2`].
//!
//! The proxy (`src/proxy/`) sends them to its upstreams with
//! `--send-proxy-protocol`; the tests build the headers the parser is tested
//! against with them.

use std::net::{IpAddr, SocketAddr};

use super::v2::{TCP4, TCP6, V2_FIXED_LEN, V2_SIGNATURE};

/// Puts both addresses in one family, as the header requires: IPv4-mapped
/// IPv6 addresses become IPv4; if one side is then IPv4 and the other IPv6,
/// the IPv4 one is written in its mapped IPv6 form.
pub(super) fn same_family(source: SocketAddr, destination: SocketAddr) -> (SocketAddr, SocketAddr) {
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
