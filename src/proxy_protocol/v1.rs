//! PROXY protocol v1, the text form: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`
//! (or `TCP6`, or `UNKNOWN`), at most 107 bytes. [`parse_v1`] reads the
//! line off the start of a buffer; [`V1_MAX_LEN`] and [`V1_MIN_LEN`] bound it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Parsed, ProxyError, ProxyHeader};

/// The longest v1 header, CRLF included.
pub(super) const V1_MAX_LEN: usize = 107;
/// The shortest v1 header: `PROXY UNKNOWN\r\n`.
pub(super) const V1_MIN_LEN: usize = 15;
/// What every v1 header starts with.
const V1_PREFIX: &[u8] = b"PROXY ";

/// Parses the start of `buf` (which begins with `P`) as a v1 line; see
/// [`parse`](super::parse).
pub(super) fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
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
