//! [`Cidr`], an IP network as written in `--allow`, `--deny` and
//! `--trusted-proxy`, and [`ParseCidrError`], why a string is not one.
//!
//! IPv4-mapped IPv6 addresses are folded to IPv4 on both sides: in the
//! network a [`Cidr`] is built from and in the address it is asked about.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network in CIDR notation, as taken by `--allow`, `--deny` and
/// `--trusted-proxy`.
///
/// Parsed with [`FromStr`] from `10.0.0.0/8`, `2001:db8::/32`, or a bare
/// address (`192.168.1.7`, `::1`), which stands for that one address (`/32`
/// or `/128`). Host bits below the prefix are ignored: `10.1.2.3/8` is
/// `10.0.0.0/8`.
///
/// IPv4 is matched as IPv4: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
/// how a dual-stack IPv6 listener sees an IPv4 client) is matched as the
/// IPv4 address `a.b.c.d`, and a network written in the mapped range with a
/// prefix of at least 96 (`::ffff:10.0.0.0/104`) is taken as its IPv4
/// equivalent (`10.0.0.0/8`). Other IPv6 networks, `::/0` included, never
/// contain an IPv4 client.
///
/// ```
/// use std::net::IpAddr;
/// use syncnet::Cidr;
///
/// let net: Cidr = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.20.30.40".parse::<IpAddr>().unwrap()));
/// assert!(net.contains("::ffff:10.1.1.1".parse::<IpAddr>().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse::<IpAddr>().unwrap()));
/// assert_eq!(net.to_string(), "10.0.0.0/8");
///
/// let err = "10.0.0.0/33".parse::<Cidr>().unwrap_err();
/// assert_eq!(err.to_string(), "'10.0.0.0/33' is not a valid CIDR (prefix length above 32)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address: host bits zeroed, IPv4-mapped folded to IPv4.
    network: IpAddr,
    /// The prefix length in bits: at most 32 for an IPv4 network, 128 for
    /// IPv6.
    prefix_len: u8,
}

impl Cidr {
    /// The network of `addr` with a prefix of `prefix_len` bits, or `None`
    /// when the prefix is longer than the address (32 for IPv4, 128 for
    /// IPv6). Host bits are cleared.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Cidr> {
        let (addr, prefix_len) = match addr {
            IpAddr::V6(v6) if (96..=128).contains(&prefix_len) => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix_len - 96),
                None => (addr, prefix_len),
            },
            _ => (addr, prefix_len),
        };
        let network = match addr {
            IpAddr::V4(v4) if prefix_len <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_v4(prefix_len)))
            }
            IpAddr::V6(v6) if prefix_len <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_v6(prefix_len)))
            }
            _ => return None,
        };
        Some(Cidr {
            network,
            prefix_len,
        })
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 address is
    /// matched as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                u32::from(ip) & mask_v4(self.prefix_len) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask_v6(self.prefix_len) == u128::from(net)
            }
            _ => false,
        }
    }
}

/// The IPv4 netmask of `prefix_len` (at most 32) leading one bits; 0 for a
/// prefix of 0.
fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

/// The IPv6 netmask of `prefix_len` (at most 128) leading one bits; 0 for a
/// prefix of 0.
fn mask_v6(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0)
}

impl fmt::Display for Cidr {
    /// `network/prefix`, e.g. `10.0.0.0/8` or `::1/128`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Cidr {
    type Err = ParseCidrError;

    /// Parses `ADDR/PREFIX` or a bare `ADDR`. Surrounding whitespace is
    /// ignored (so `SYNCNET_ALLOW=10.0.0.0/8, 192.168.0.0/16` works); the
    /// prefix is plain decimal digits.
    fn from_str(s: &str) -> Result<Cidr, ParseCidrError> {
        let err = |reason| ParseCidrError {
            value: s.to_owned(),
            reason,
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(err("empty"));
        }
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| err("not an IP address"))?;
        let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix_text {
            None => max,
            Some(p) => {
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(err("prefix length is not a number"));
                }
                let n: u16 = p
                    .parse()
                    .map_err(|_| err("prefix length is not a number"))?;
                if n > u16::from(max) {
                    return Err(err(if max == 32 {
                        "prefix length above 32"
                    } else {
                        "prefix length above 128"
                    }));
                }
                n as u8
            }
        };
        Cidr::new(addr, prefix_len).ok_or_else(|| err("prefix length too long"))
    }
}

/// The error from parsing a [`Cidr`]: names the value and what is wrong, e.g.
/// `'10.0.0.0/33' is not a valid CIDR (prefix length above 32)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCidrError {
    /// The text that was parsed, as given (untrimmed).
    value: String,
    /// What is wrong with it, e.g. `prefix length above 32`.
    reason: &'static str,
}

impl fmt::Display for ParseCidrError {
    /// `'VALUE' is not a valid CIDR (REASON)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a valid CIDR ({})", self.value, self.reason)
    }
}

impl std::error::Error for ParseCidrError {}
