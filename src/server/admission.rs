//! Admission: who may connect. The allow/deny lists, the trusted proxies,
//! and the per-IP connection count and rate, decided on the accept thread
//! before a connection is queued (or, with `--proxy-protocol`, once its
//! header named the client).
//!
//! The other refusal, `overload` (`workers + queue` connections already in
//! flight), is the pool's to decide: see [`Pool::dispatch`](crate::pool::Pool::dispatch).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use crate::Cidr;
use crate::config::ServerConfig;
use crate::limits::{AccessList, IpTicket, PerIpTable, Refusal};
use crate::metrics::RejectReason;

/// The admission rules of one server.
pub(super) struct Admission {
    /// `--proxy-protocol`: the socket peer is a balancer, the client comes later.
    proxy_protocol: bool,
    /// `--trusted-proxy`: the balancers allowed to send PROXY headers.
    trusted_proxies: Vec<Cidr>,
    /// `--allow` / `--deny`.
    access: AccessList,
    /// `--max-conns-per-ip` / `--conn-rate-per-ip`.
    per_ip: Arc<PerIpTable>,
    /// `--per-ip-prefix-v6`: IPv6 clients are counted by this prefix.
    prefix_v6: u8,
}

impl Admission {
    /// The rules `config` sets.
    pub(super) fn new(config: &ServerConfig) -> Admission {
        Admission {
            proxy_protocol: config.proxy_protocol,
            trusted_proxies: config.trusted_proxies.clone(),
            access: AccessList::new(config.allow.clone(), config.deny.clone()),
            per_ip: PerIpTable::new(config.max_conns_per_ip, config.conn_rate_per_ip),
            prefix_v6: config.per_ip_prefix_v6.min(128),
        }
    }

    /// Admission on the accept thread, for the socket peer `ip`. With
    /// `--proxy-protocol` the socket peer is a balancer: only the
    /// trusted-proxy list applies here, the rest in [`Admission::client`]
    /// once the header named the client.
    ///
    /// A ticket, when one is returned, holds the client's place in the
    /// per-IP count until it is dropped.
    pub(super) fn on_accept(
        &self,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Option<IpTicket>, RejectReason> {
        if self.proxy_protocol {
            let trusted = self.trusted_proxies.is_empty()
                || self.trusted_proxies.iter().any(|net| net.contains(ip));
            return if trusted {
                Ok(None)
            } else {
                Err(RejectReason::Denied)
            };
        }
        self.client(ip, now)
    }

    /// Allow/deny, then the per-IP count and rate, for the client `ip`.
    pub(super) fn client(
        &self,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Option<IpTicket>, RejectReason> {
        if !self.access.permits(ip) {
            return Err(RejectReason::Denied);
        }
        if self.per_ip.is_off() {
            return Ok(None);
        }
        match self.per_ip.admit(per_ip_key(ip, self.prefix_v6), now) {
            Ok(ticket) => Ok(Some(ticket)),
            Err(Refusal::PerIpLimit) => Err(RejectReason::PerIpLimit),
            Err(Refusal::RateLimit) => Err(RejectReason::RateLimit),
        }
    }
}

/// The address the per-IP limits count `ip` under: IPv4 as it is, IPv6 with
/// everything after the first `prefix` bits zeroed.
fn per_ip_key(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(std::net::Ipv6Addr::from(bits & mask))
        }
    }
}

/// IPv4 clients of a dual-stack listener (`::ffff:a.b.c.d`) become plain
/// IPv4, so lists and per-IP limits see one address per client.
pub(super) fn canonical_peer(peer: SocketAddr) -> SocketAddr {
    match peer.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), peer.port()),
            None => peer,
        },
        IpAddr::V4(_) => peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_ipv4_peers_become_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.1.2.3]:4000".parse().unwrap();
        assert_eq!(canonical_peer(mapped), "10.1.2.3:4000".parse().unwrap());
        let v6: SocketAddr = "[::1]:4000".parse().unwrap();
        assert_eq!(canonical_peer(v6), v6);
    }

    #[test]
    fn ipv6_clients_share_the_per_ip_limit_by_prefix() {
        let limited = |prefix| {
            Admission::new(&ServerConfig {
                max_conns_per_ip: 1,
                per_ip_prefix_v6: prefix,
                ..ServerConfig::default()
            })
        };
        let now = Instant::now();
        let by_64 = limited(64);
        let first = by_64
            .on_accept("2001:db8::1".parse().unwrap(), now)
            .unwrap();
        assert_eq!(
            by_64
                .on_accept("2001:db8::2".parse().unwrap(), now)
                .unwrap_err(),
            RejectReason::PerIpLimit,
            "the same /64 is one client"
        );
        let other_64 = by_64.on_accept("2001:db8:0:1::1".parse().unwrap(), now);
        assert!(other_64.is_ok(), "another /64 is another client");
        assert!(by_64.on_accept("10.0.0.1".parse().unwrap(), now).is_ok());
        assert!(
            by_64.on_accept("10.0.0.2".parse().unwrap(), now).is_ok(),
            "IPv4 per address"
        );
        drop(first);
        assert!(
            by_64.on_accept("2001:db8::2".parse().unwrap(), now).is_ok(),
            "released"
        );

        let by_128 = limited(128);
        let _a = by_128
            .on_accept("2001:db8::1".parse().unwrap(), now)
            .unwrap();
        assert!(
            by_128
                .on_accept("2001:db8::2".parse().unwrap(), now)
                .is_ok()
        );
        assert_eq!(
            per_ip_key("2001:db8::1".parse().unwrap(), 1),
            "::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn deny_wins_and_proxies_are_checked_first() {
        let mut config = ServerConfig {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            deny: vec!["10.9.0.0/16".parse().unwrap()],
            ..ServerConfig::default()
        };
        let admission = Admission::new(&config);
        let now = Instant::now();
        assert!(
            admission
                .on_accept("10.1.1.1".parse().unwrap(), now)
                .is_ok()
        );
        assert_eq!(
            admission
                .on_accept("10.9.1.1".parse().unwrap(), now)
                .unwrap_err(),
            RejectReason::Denied
        );
        config.proxy_protocol = true;
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        let behind_proxy = Admission::new(&config);
        assert!(
            behind_proxy
                .on_accept("127.0.0.1".parse().unwrap(), now)
                .is_ok()
        );
        assert_eq!(
            behind_proxy
                .on_accept("10.1.1.1".parse().unwrap(), now)
                .unwrap_err(),
            RejectReason::Denied,
            "only trusted balancers may send PROXY headers"
        );
    }
}
