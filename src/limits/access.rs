//! [`AccessList`]: the `--allow` / `--deny` verdict on a client address,
//! checked on the accept thread (refusal reason `denied`).

use std::net::IpAddr;

use super::cidr::Cidr;

/// `--allow` and `--deny`: deny wins over allow; an empty allow list allows
/// every address (that no deny entry names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccessList {
    /// `--allow`: when not empty, only addresses in one of these networks
    /// may connect.
    pub(crate) allow: Vec<Cidr>,
    /// `--deny`: addresses in any of these networks may not connect, even
    /// if an allow entry names them.
    pub(crate) deny: Vec<Cidr>,
}

impl AccessList {
    /// A list from the `--allow` and `--deny` networks, in the order given.
    pub(crate) fn new(allow: Vec<Cidr>, deny: Vec<Cidr>) -> AccessList {
        AccessList { allow, deny }
    }

    /// True when both lists are empty: every address is permitted, and the
    /// caller may skip the check.
    #[cfg(test)] // only the tests need it
    pub(crate) fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Whether a client at `ip` may connect. IPv4-mapped IPv6 addresses are
    /// matched as IPv4.
    pub(crate) fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if self.deny.iter().any(|net| net.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(ip))
    }
}
