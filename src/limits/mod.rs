//! Admission building blocks: CIDR allow/deny lists, token buckets, per-IP limits, the read throttle.
//!
//! Everything here takes the current time as an argument (`now: Instant`)
//! instead of reading the clock, so the arithmetic is deterministic under
//! test. The one exception is [`IpTicket`]'s `Drop`, which has no caller to
//! ask and reads the clock itself (never earlier than the latest `now` the
//! table has seen).
//!
//! How the server uses these (the flags are listed in `docs/reference.md`,
//! section Flags; the refusal reasons in section Metrics):
//! - `--allow` / `--deny` → one [`AccessList`], checked on the accept thread
//!   with [`AccessList::permits`] (refusal reason `denied`).
//! - `--max-conns-per-ip` / `--conn-rate-per-ip` → one [`PerIpTable`] per
//!   server; [`PerIpTable::admit`] on the accept thread returns an
//!   [`IpTicket`] that the connection keeps until it closes (refusal reasons
//!   `per_ip_limit` / `rate_limit`).
//! - `--max-bytes-per-sec` → one [`ReadThrottle`] per connection, consulted
//!   by `Conn::read`.
//!
//! One file per thing:
//! - `cidr.rs`: [`Cidr`] and [`ParseCidrError`] (public: `syncnet::Cidr`).
//! - `access.rs`: [`AccessList`].
//! - `token_bucket.rs`: the token bucket the next two are built on.
//! - `per_ip.rs`: [`PerIpTable`], [`IpTicket`], [`Refusal`].
//! - `throttle.rs`: [`ReadThrottle`].
//! - `tests.rs`: the unit tests of all of them.

mod access;
mod cidr;
mod per_ip;
mod throttle;
mod token_bucket;

#[cfg(test)]
mod tests;

pub(crate) use access::AccessList;
pub use cidr::{Cidr, ParseCidrError};
pub(crate) use per_ip::{IpTicket, PerIpTable, Refusal};
pub(crate) use throttle::ReadThrottle;
pub(crate) use token_bucket::TokenBucket;
