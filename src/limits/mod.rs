//! Admission building blocks: CIDR allow/deny lists, token buckets, per-IP limits, the read throttle.
//!
//! Everything here takes the current time as an argument (`now: Instant`)
//! instead of reading the clock, so the arithmetic is deterministic under
//! test. The one exception is [`IpTicket`]'s `Drop`, which has no caller to
//! ask and reads the clock itself (never earlier than the latest `now` the
//! table has seen).
//!
//! How the server uses these (SPEC §1.1):
//! - `--allow` / `--deny` → one [`AccessList`], checked on the accept thread
//!   with [`AccessList::permits`] (refusal reason `denied`).
//! - `--max-conns-per-ip` / `--conn-rate-per-ip` → one [`PerIpTable`] per
//!   server; [`PerIpTable::admit`] on the accept thread returns an
//!   [`IpTicket`] that the connection keeps until it closes (refusal reasons
//!   `per_ip_limit` / `rate_limit`).
//! - `--max-bytes-per-sec` → one [`ReadThrottle`] per connection, consulted
//!   by `Conn::read`.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// CIDR
// ---------------------------------------------------------------------------

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

fn mask_v4(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

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
    value: String,
    reason: &'static str,
}

impl fmt::Display for ParseCidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a valid CIDR ({})", self.value, self.reason)
    }
}

impl std::error::Error for ParseCidrError {}

// ---------------------------------------------------------------------------
// Allow / deny
// ---------------------------------------------------------------------------

/// `--allow` and `--deny`: deny wins over allow; an empty allow list allows
/// every address (that no deny entry names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccessList {
    pub(crate) allow: Vec<Cidr>,
    pub(crate) deny: Vec<Cidr>,
}

impl AccessList {
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

// ---------------------------------------------------------------------------
// Token bucket
// ---------------------------------------------------------------------------

/// Fixed-point scale: the bucket counts credit in billionths of a token, so
/// that `rate` tokens per second over `n` nanoseconds add exactly `rate * n`
/// credit, with no rounding and no floating point.
const SCALE: u128 = 1_000_000_000;

/// A token bucket: holds at most `capacity` tokens, gains `rate` tokens per
/// second, starts full. Integer arithmetic, exact to the nanosecond.
///
/// Time only moves forward: a `now` earlier than one already seen (threads
/// racing to the lock with slightly older timestamps) adds nothing.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    capacity: u64,
    rate: u64,
    /// Tokens × [`SCALE`].
    credit: u128,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilled at `rate_per_sec`.
    pub(crate) fn new(capacity: u64, rate_per_sec: u64, now: Instant) -> TokenBucket {
        TokenBucket {
            capacity,
            rate: rate_per_sec,
            credit: u128::from(capacity) * SCALE,
            last: now,
        }
    }

    fn max_credit(&self) -> u128 {
        u128::from(self.capacity) * SCALE
    }

    fn refill(&mut self, now: Instant) {
        if now > self.last {
            let nanos = now.duration_since(self.last).as_nanos();
            let gained = nanos.saturating_mul(u128::from(self.rate));
            self.credit = self.credit.saturating_add(gained).min(self.max_credit());
            self.last = now;
        }
    }

    /// Whole tokens available at `now`.
    pub(crate) fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        // credit <= capacity * SCALE, so the quotient fits in u64.
        (self.credit / SCALE) as u64
    }

    /// Whether the bucket is full at `now` (nothing taken that has not been
    /// refilled).
    pub(crate) fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.credit >= self.max_credit()
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.credit >= SCALE {
            self.credit -= SCALE;
            true
        } else {
            false
        }
    }

    /// Takes as many tokens as are available, up to `want`, and returns how
    /// many it took.
    #[cfg(test)] // only the tests need it
    pub(crate) fn take_up_to(&mut self, want: u64, now: Instant) -> u64 {
        let n = want.min(self.available(now));
        self.credit -= u128::from(n) * SCALE;
        n
    }

    /// Takes `n` tokens without refilling first; takes what is there if that
    /// is fewer (the bucket never goes below empty).
    pub(crate) fn take(&mut self, n: u64) {
        self.credit = self.credit.saturating_sub(u128::from(n) * SCALE);
    }

    /// How long from `now` until `need` tokens are available (zero if they
    /// already are). `need` above the capacity is taken as the capacity.
    /// With a rate of zero and too few tokens, `Duration::MAX`.
    pub(crate) fn wait_time(&mut self, need: u64, now: Instant) -> Duration {
        self.refill(now);
        let target = u128::from(need.min(self.capacity)) * SCALE;
        if self.credit >= target {
            return Duration::ZERO;
        }
        if self.rate == 0 {
            return Duration::MAX;
        }
        let missing = target - self.credit;
        let rate = u128::from(self.rate);
        let nanos = missing.div_ceil(rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

// ---------------------------------------------------------------------------
// Per-IP table
// ---------------------------------------------------------------------------

/// Why [`PerIpTable::admit`] turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `--max-conns-per-ip`: the address already has that many open
    /// (`connections_rejected_total{reason="per_ip_limit"}`).
    PerIpLimit,
    /// `--conn-rate-per-ip`: the address's token bucket is empty
    /// (`connections_rejected_total{reason="rate_limit"}`).
    RateLimit,
}

/// The table never sweeps while it holds fewer entries than this.
const SWEEP_MIN: usize = 1024;

/// Per-source-IP open-connection counts and new-connection token buckets,
/// for `--max-conns-per-ip N` and `--conn-rate-per-ip R` (burst `R`, `R`
/// per second). Either limit may be 0 (off); with both off, [`admit`]
/// always succeeds without taking the lock or touching the map.
///
/// **Check order**: the count limit first, then the rate. A refused
/// connection consumes nothing: refused by the count, it takes no token;
/// refused by the rate, it does not count as open. So a client at its
/// connection cap that keeps retrying does not also drain its rate budget,
/// and a connection refused for both reasons is reported as `per_ip_limit`.
///
/// **Bounded size**: an entry is *idle* when it has no open connection and
/// its bucket is full (or there is no bucket); an idle entry carries no
/// information and is removed. Releasing the last ticket removes the entry
/// if it is idle at that moment. Entries that become idle later (their bucket
/// refills after the last connection closed) are removed by a sweep that
/// `admit` runs when the map has reached a threshold: the threshold is
/// `max(1024, 2 × entries left by the previous sweep)`, so a sweep costs
/// O(entries) but runs at most once per that many insertions (amortised
/// O(1) per admit), and the map never holds more than about twice the
/// addresses that were active (connected, or connected within the last
/// `burst / rate` seconds) at the previous sweep, and at least 1024.
///
/// [`admit`]: PerIpTable::admit
#[derive(Debug)]
pub(crate) struct PerIpTable {
    max_conns: u32,
    rate: u32,
    state: Mutex<TableState>,
}

#[derive(Debug)]
struct TableState {
    entries: HashMap<IpAddr, Entry>,
    /// Sweep when `entries.len()` reaches this.
    sweep_at: usize,
    /// The latest `now` passed to `admit`: releases never use an earlier time.
    latest: Option<Instant>,
}

#[derive(Debug)]
struct Entry {
    open: u32,
    bucket: Option<TokenBucket>,
}

impl Entry {
    fn is_idle(&mut self, now: Instant) -> bool {
        self.open == 0 && self.bucket.as_mut().is_none_or(|b| b.is_full(now))
    }
}

impl TableState {
    fn sweep(&mut self, now: Instant) {
        self.entries.retain(|_, entry| !entry.is_idle(now));
        self.sweep_at = SWEEP_MIN.max(self.entries.len().saturating_mul(2));
    }
}

impl PerIpTable {
    /// A table for `--max-conns-per-ip max_conns_per_ip` and
    /// `--conn-rate-per-ip conn_rate_per_ip`; 0 turns a limit off.
    pub(crate) fn new(max_conns_per_ip: u32, conn_rate_per_ip: u32) -> Arc<PerIpTable> {
        Arc::new(PerIpTable {
            max_conns: max_conns_per_ip,
            rate: conn_rate_per_ip,
            state: Mutex::new(TableState {
                entries: HashMap::new(),
                sweep_at: SWEEP_MIN,
                latest: None,
            }),
        })
    }

    /// True when both limits are off.
    pub(crate) fn is_off(&self) -> bool {
        self.max_conns == 0 && self.rate == 0
    }

    /// The lock, even if a thread panicked while holding it: no code path
    /// panics half-way through an update, so the state is always consistent.
    fn lock(&self) -> MutexGuard<'_, TableState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection from `ip` (IPv4-mapped addresses count as
    /// IPv4), or says why not. Keep the ticket for as long as the connection
    /// is open; dropping it releases the count.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<IpTicket, Refusal> {
        let ip = ip.to_canonical();
        if self.is_off() {
            return Ok(IpTicket { table: None, ip });
        }
        let mut state = self.lock();
        if state.latest.is_none_or(|latest| now > latest) {
            state.latest = Some(now);
        }
        if state.entries.len() >= state.sweep_at {
            state.sweep(now);
        }
        let rate = u64::from(self.rate);
        let entry = state.entries.entry(ip).or_insert_with(|| Entry {
            open: 0,
            bucket: (rate > 0).then(|| TokenBucket::new(rate, rate, now)),
        });
        // A new entry is never refused (no connection open, full bucket of at
        // least one token), so a refusal never leaves an idle entry behind.
        if self.max_conns > 0 && entry.open >= self.max_conns {
            return Err(Refusal::PerIpLimit);
        }
        if let Some(bucket) = entry.bucket.as_mut()
            && !bucket.try_take(now)
        {
            return Err(Refusal::RateLimit);
        }
        entry.open += 1;
        Ok(IpTicket {
            table: Some(Arc::clone(self)),
            ip,
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut state = self.lock();
        let now = match state.latest {
            Some(latest) => latest.max(Instant::now()),
            None => Instant::now(),
        };
        if let Some(entry) = state.entries.get_mut(&ip) {
            debug_assert!(entry.open > 0, "released more tickets than admitted");
            entry.open = entry.open.saturating_sub(1);
            if entry.is_idle(now) {
                state.entries.remove(&ip);
            }
        }
    }

    /// Removes every idle entry now (what `admit` does when the map reaches
    /// its threshold).
    #[cfg(test)] // only the tests need it
    pub(crate) fn sweep(&self, now: Instant) {
        self.lock().sweep(now);
    }

    /// How many addresses the table tracks.
    #[cfg(test)] // only the tests need it
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the table tracks no address.
    #[cfg(test)] // only the tests need it
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Open connections counted for `ip`.
    #[cfg(test)] // only the tests need it
    pub(crate) fn open_count(&self, ip: IpAddr) -> u32 {
        self.lock()
            .entries
            .get(&ip.to_canonical())
            .map_or(0, |entry| entry.open)
    }
}

/// Proof that a connection was admitted by a [`PerIpTable`]: dropping it
/// gives the connection's slot back. `Send`, so it can travel with the
/// connection to its worker.
#[derive(Debug)]
pub(crate) struct IpTicket {
    /// `None` when both limits are off: nothing to release.
    table: Option<Arc<PerIpTable>>,
    ip: IpAddr,
}

impl IpTicket {
    /// The address the connection was counted under (IPv4-mapped folded to
    /// IPv4).
    #[cfg(test)] // only the tests need it
    pub(crate) fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for IpTicket {
    fn drop(&mut self) {
        if let Some(table) = self.table.take() {
            table.release(self.ip);
        }
    }
}

// ---------------------------------------------------------------------------
// Read throttle
// ---------------------------------------------------------------------------

/// `--max-bytes-per-sec N` for one connection: a token bucket of bytes that
/// holds at most one second of tokens (`N`), refilled at `N` per second,
/// full at the start. It throttles and never refuses.
///
/// To keep a throttled connection from waking for every byte, a read that
/// has to wait waits until it can take `min(want, max(1, N / 20))` bytes,
/// i.e. at most about 50 ms worth: a throttled reader wakes about twenty
/// times a second, not once per byte.
///
/// How `Conn::read(buf)` should use it (when the limit is on):
///
/// ```text
/// loop {
///     match throttle.allowance(buf.len(), Instant::now()) {
///         Ok(n) => {
///             // never read more than the allowance
///             let got = stream.read(&mut buf[..n])?;
///             throttle.consume(got);
///             return Ok(got);
///         }
///         // Sleep, but wake early when shutdown starts (SPEC: "a throttled
///         // wait ends when shutdown starts"): e.g. wait on the shutdown
///         // signal's condvar/channel with this timeout rather than
///         // thread::sleep. After a shutdown wake, go on and read: the read
///         // side is shut down, so the read returns the buffered bytes and
///         // then end of input promptly.
///         Err(wait) => sleep_unless_shutdown(wait),
///     }
/// }
/// ```
///
/// `allowance` does not take the tokens; `consume` takes what the read
/// actually returned, so a short read does not waste budget. A `buf` of
/// length 0 gets `Ok(0)`.
#[derive(Debug, Clone)]
pub(crate) struct ReadThrottle {
    bucket: TokenBucket,
    min_grant: u64,
}

impl ReadThrottle {
    /// A throttle for `bytes_per_sec` (at least 1: the caller creates none
    /// when the limit is off).
    pub(crate) fn new(bytes_per_sec: u64, now: Instant) -> ReadThrottle {
        let rate = bytes_per_sec.max(1);
        ReadThrottle {
            bucket: TokenBucket::new(rate, rate, now),
            min_grant: (rate / 20).max(1),
        }
    }

    /// How many bytes (at most `want`) a read may take now, or how long to
    /// wait before asking again. Takes no tokens (see [`consume`]).
    ///
    /// [`consume`]: ReadThrottle::consume
    pub(crate) fn allowance(&mut self, want: usize, now: Instant) -> Result<usize, Duration> {
        if want == 0 {
            return Ok(0);
        }
        let want = u64::try_from(want).unwrap_or(u64::MAX);
        let available = self.bucket.available(now);
        let threshold = want.min(self.min_grant);
        if available >= threshold {
            // Both are at most `want`, which came from a usize.
            Ok(usize::try_from(want.min(available)).unwrap_or(usize::MAX))
        } else {
            Err(self.bucket.wait_time(threshold, now))
        }
    }

    /// Records that a read took `n` bytes.
    pub(crate) fn consume(&mut self, n: usize) {
        self.bucket.take(u64::try_from(n).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::thread;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A base time an hour ahead of the clock: a ticket's `Drop` uses the
    /// later of the real clock and the latest admit time, so with admit
    /// times in the future, releases happen at a known time.
    fn future() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    // --- Cidr ---

    #[test]
    fn cidr_parses_v4_and_v6_networks() {
        let net = cidr("10.0.0.0/8");
        assert_eq!(net.network(), ip("10.0.0.0"));
        assert_eq!(net.prefix_len(), 8);
        assert_eq!(net.to_string(), "10.0.0.0/8");

        let net = cidr("2001:db8::/32");
        assert_eq!(net.network(), ip("2001:db8::"));
        assert_eq!(net.prefix_len(), 32);
        assert_eq!(net.to_string(), "2001:db8::/32");

        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
        assert_eq!(cidr("::/0").to_string(), "::/0");
        assert_eq!(cidr("  10.0.0.0/8 ").to_string(), "10.0.0.0/8");
    }

    #[test]
    fn cidr_bare_address_is_a_single_host() {
        let net = cidr("192.168.1.7");
        assert_eq!(net.to_string(), "192.168.1.7/32");
        assert!(net.contains(ip("192.168.1.7")));
        assert!(!net.contains(ip("192.168.1.8")));

        let net = cidr("::1");
        assert_eq!(net.to_string(), "::1/128");
        assert!(net.contains(ip("::1")));
        assert!(!net.contains(ip("::2")));
    }

    #[test]
    fn cidr_ignores_host_bits() {
        assert_eq!(cidr("10.1.2.3/8"), cidr("10.0.0.0/8"));
        assert_eq!(cidr("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("192.168.1.255/23").to_string(), "192.168.0.0/23");
        assert_eq!(cidr("2001:db8:ffff::1/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("255.255.255.255/0").to_string(), "0.0.0.0/0");
    }

    #[test]
    fn cidr_contains_respects_the_prefix() {
        let net = cidr("192.168.0.0/23");
        assert!(net.contains(ip("192.168.0.0")));
        assert!(net.contains(ip("192.168.1.255")));
        assert!(!net.contains(ip("192.168.2.0")));
        assert!(!net.contains(ip("192.167.255.255")));

        assert!(cidr("0.0.0.0/0").contains(ip("1.2.3.4")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));

        let net = cidr("2001:db8::/32");
        assert!(net.contains(ip("2001:db8:1234::5")));
        assert!(!net.contains(ip("2001:db9::")));
    }

    #[test]
    fn cidr_families_do_not_mix() {
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(!cidr("::/0").contains(ip("10.0.0.1")));
        // A v4 client of a dual-stack listener is IPv4, not part of ::/0.
        assert!(!cidr("::/0").contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn cidr_matches_ipv4_mapped_addresses_as_ipv4() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("::ffff:10.9.8.7")));
        assert!(!net.contains(ip("::ffff:11.0.0.1")));
        assert!(cidr("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        // The IPv4-compatible form (deprecated ::a.b.c.d) is not folded.
        assert!(!net.contains(ip("::10.0.0.1")));
    }

    #[test]
    fn cidr_written_in_the_mapped_range_is_ipv4() {
        let net = cidr("::ffff:10.0.0.0/104");
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert!(net.contains(ip("10.1.1.1")));
        assert!(net.contains(ip("::ffff:10.1.1.1")));
        assert_eq!(cidr("::ffff:1.2.3.4").to_string(), "1.2.3.4/32");
    }

    #[test]
    fn cidr_rejects_bad_prefixes_naming_the_value() {
        let cases = [
            ("10.0.0.0/33", "prefix length above 32"),
            ("::/129", "prefix length above 128"),
            ("10.0.0.0/", "prefix length is not a number"),
            ("10.0.0.0/x", "prefix length is not a number"),
            ("10.0.0.0/+8", "prefix length is not a number"),
            ("10.0.0.0/-1", "prefix length is not a number"),
            ("10.0.0.0/8/8", "prefix length is not a number"),
            ("10.0.0.0/1000", "prefix length is not a number"),
            ("10.0.0.0/ 8", "prefix length is not a number"),
        ];
        for (value, reason) in cases {
            let err = value.parse::<Cidr>().unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("'{value}' is not a valid CIDR ({reason})"),
                "{value}"
            );
        }
    }

    #[test]
    fn cidr_rejects_garbage() {
        for value in [
            "",
            "   ",
            "garbage",
            "10.0.0",
            "10.0.0.256",
            "010.0.0.1",
            "10.0.0.0.0/8",
            "[::1]/128",
            "fe80::1%eth0",
            "/8",
            "10.0.0.0 /8",
            "example.com/8",
        ] {
            let err = value.parse::<Cidr>().unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("'{value}' is not a valid CIDR (")),
                "{msg}"
            );
        }
        assert_eq!(
            "".parse::<Cidr>().unwrap_err().to_string(),
            "'' is not a valid CIDR (empty)"
        );
        assert_eq!(
            "garbage".parse::<Cidr>().unwrap_err().to_string(),
            "'garbage' is not a valid CIDR (not an IP address)"
        );
    }

    #[test]
    fn cidr_new_checks_the_prefix() {
        assert!(Cidr::new(ip("10.0.0.0"), 33).is_none());
        assert!(Cidr::new(ip("::"), 129).is_none());
        assert_eq!(Cidr::new(ip("10.1.2.3"), 16), Some(cidr("10.1.0.0/16")));
        assert_eq!(
            Cidr::new(ip("::ffff:10.1.2.3"), 112),
            Some(cidr("10.1.0.0/16"))
        );
    }

    #[test]
    fn cidr_display_round_trips() {
        for s in [
            "10.0.0.0/8",
            "1.2.3.4/32",
            "::1/128",
            "2001:db8::/32",
            "0.0.0.0/0",
        ] {
            assert_eq!(cidr(&cidr(s).to_string()), cidr(s));
        }
    }

    // --- AccessList ---

    #[test]
    fn access_list_empty_allows_everyone() {
        let list = AccessList::default();
        assert!(list.is_open());
        assert!(list.permits(ip("1.2.3.4")));
        assert!(list.permits(ip("::1")));
    }

    #[test]
    fn access_list_allow_restricts() {
        let list = AccessList::new(vec![cidr("10.0.0.0/8"), cidr("::1")], vec![]);
        assert!(!list.is_open());
        assert!(list.permits(ip("10.2.3.4")));
        assert!(list.permits(ip("::ffff:10.2.3.4")));
        assert!(list.permits(ip("::1")));
        assert!(!list.permits(ip("11.0.0.1")));
        assert!(!list.permits(ip("::2")));
    }

    #[test]
    fn access_list_deny_wins_over_allow() {
        let list = AccessList::new(
            vec![cidr("10.0.0.0/8")],
            vec![cidr("10.1.0.0/16"), cidr("10.2.3.4")],
        );
        assert!(list.permits(ip("10.0.0.1")));
        assert!(!list.permits(ip("10.1.2.3")));
        assert!(!list.permits(ip("10.2.3.4")));
        assert!(!list.permits(ip("::ffff:10.2.3.4")));
        assert!(list.permits(ip("10.2.3.5")));
        assert!(!list.permits(ip("192.168.0.1")), "not in the allow list");
    }

    #[test]
    fn access_list_deny_only_allows_the_rest() {
        let list = AccessList::new(vec![], vec![cidr("192.168.0.0/16")]);
        assert!(!list.permits(ip("192.168.5.5")));
        assert!(list.permits(ip("10.0.0.1")));
        assert!(list.permits(ip("2001:db8::1")));
    }

    // --- TokenBucket ---

    #[test]
    fn bucket_starts_full_and_empties() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3, 3, t0);
        assert!(b.is_full(t0));
        assert!(b.try_take(t0));
        assert!(!b.is_full(t0));
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0), "burst of 3");
        assert_eq!(b.available(t0), 0);
    }

    #[test]
    fn bucket_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 10, t0);
        assert_eq!(b.take_up_to(100, t0), 10);
        // 10 per second: one token per 100 ms, exactly.
        assert_eq!(b.available(t0 + ms(99)), 0);
        assert_eq!(b.available(t0 + ms(100)), 1);
        assert_eq!(b.available(t0 + ms(550)), 5);
        assert!(!b.is_full(t0 + ms(999)));
        assert!(b.is_full(t0 + ms(1000)));
        // Never above capacity, however long it waited.
        assert_eq!(b.available(t0 + Duration::from_secs(3600)), 10);
    }

    #[test]
    fn bucket_keeps_fractional_credit() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1, 3, t0);
        assert!(b.try_take(t0));
        // 3 per second: a token every 333.33.. ms; partial progress adds up.
        assert!(!b.try_take(t0 + ms(200)));
        assert!(!b.try_take(t0 + ms(333)));
        assert!(b.try_take(t0 + ms(334)));
    }

    #[test]
    fn bucket_wait_time_is_exact() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 10, t0);
        assert_eq!(b.wait_time(1, t0), Duration::ZERO);
        b.take_up_to(10, t0);
        assert_eq!(b.wait_time(1, t0), ms(100));
        assert_eq!(b.wait_time(5, t0), ms(500));
        // More than the capacity: wait for a full bucket.
        assert_eq!(b.wait_time(50, t0), ms(1000));
        assert_eq!(b.wait_time(1, t0 + ms(30)), ms(70));
        // Rounds up: 3 per second, one token takes 333_333_334 ns.
        let mut b = TokenBucket::new(1, 3, t0);
        b.take(1);
        let wait = b.wait_time(1, t0);
        assert_eq!(wait, Duration::from_nanos(333_333_334));
        assert!(b.try_take(t0 + wait));
    }

    #[test]
    fn bucket_ignores_time_going_backwards() {
        let t0 = Instant::now();
        let later = t0 + ms(500);
        let mut b = TokenBucket::new(2, 2, t0);
        b.take_up_to(2, t0);
        assert_eq!(b.available(later), 1);
        // An older timestamp adds nothing and does not move time back.
        assert_eq!(b.available(t0 + ms(100)), 1);
        assert_eq!(b.available(later + ms(500)), 2);
    }

    #[test]
    fn bucket_take_never_goes_below_empty() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5, 5, t0);
        b.take(100);
        assert_eq!(b.available(t0), 0);
        assert_eq!(b.available(t0 + ms(200)), 1);
    }

    #[test]
    fn bucket_zero_rate_never_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1, 0, t0);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0 + Duration::from_secs(100)));
        assert_eq!(b.wait_time(1, t0), Duration::MAX);
    }

    #[test]
    fn bucket_huge_rates_do_not_overflow() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(u64::MAX, u64::MAX, t0);
        assert_eq!(b.take_up_to(u64::MAX, t0), u64::MAX);
        assert_eq!(
            b.available(t0 + Duration::from_secs(1_000_000_000)),
            u64::MAX
        );
    }

    // --- PerIpTable ---

    #[test]
    fn table_with_both_limits_off_tracks_nothing() {
        let table = PerIpTable::new(0, 0);
        assert!(table.is_off());
        let t0 = future();
        let tickets: Vec<_> = (0..100)
            .map(|_| table.admit(ip("10.0.0.1"), t0).unwrap())
            .collect();
        assert!(table.is_empty());
        assert_eq!(table.open_count(ip("10.0.0.1")), 0);
        drop(tickets);
        assert!(table.is_empty());
    }

    #[test]
    fn table_enforces_the_count_limit_and_releases_on_drop() {
        let table = PerIpTable::new(2, 0);
        let t0 = future();
        let a = ip("10.0.0.1");
        let first = table.admit(a, t0).unwrap();
        let second = table.admit(a, t0).unwrap();
        assert_eq!(table.open_count(a), 2);
        assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::PerIpLimit);
        assert_eq!(table.open_count(a), 2, "a refusal does not count");
        // Another address has its own count.
        let other = table.admit(ip("10.0.0.2"), t0).unwrap();
        drop(first);
        assert_eq!(table.open_count(a), 1);
        let third = table.admit(a, t0).unwrap();
        assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::PerIpLimit);
        drop((second, third, other));
        assert_eq!(table.open_count(a), 0);
        assert!(table.is_empty(), "entries without a bucket go on release");
    }

    #[test]
    fn table_counts_mapped_ipv4_as_ipv4() {
        let table = PerIpTable::new(1, 0);
        let t0 = future();
        let ticket = table.admit(ip("::ffff:10.0.0.1"), t0).unwrap();
        assert_eq!(ticket.ip(), ip("10.0.0.1"));
        assert_eq!(table.open_count(ip("10.0.0.1")), 1);
        assert_eq!(
            table.admit(ip("10.0.0.1"), t0).unwrap_err(),
            Refusal::PerIpLimit
        );
    }

    #[test]
    fn table_rate_limit_allows_a_burst_then_the_rate() {
        let table = PerIpTable::new(0, 3);
        let t0 = future();
        let a = ip("192.168.1.1");
        for _ in 0..3 {
            drop(table.admit(a, t0).unwrap());
        }
        assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::RateLimit);
        assert_eq!(
            table.admit(a, t0 + ms(300)).unwrap_err(),
            Refusal::RateLimit
        );
        // 3 per second: one more every 333.3 ms.
        drop(table.admit(a, t0 + ms(334)).unwrap());
        assert_eq!(
            table.admit(a, t0 + ms(334)).unwrap_err(),
            Refusal::RateLimit
        );
        // Another address has its own bucket.
        drop(table.admit(ip("192.168.1.2"), t0).unwrap());
        // A long pause refills the burst, no more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            drop(table.admit(a, later).unwrap());
        }
        assert_eq!(table.admit(a, later).unwrap_err(), Refusal::RateLimit);
    }

    #[test]
    fn table_checks_the_count_before_the_rate() {
        let table = PerIpTable::new(1, 2);
        let t0 = future();
        let a = ip("10.0.0.1");
        let held = table.admit(a, t0).unwrap();
        // At the cap: refused for the count, and no token taken.
        for _ in 0..5 {
            assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::PerIpLimit);
        }
        drop(held);
        // One token left of the burst of two.
        let next = table.admit(a, t0).unwrap();
        drop(next);
        assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::RateLimit);
        assert_eq!(table.open_count(a), 0, "a rate refusal does not count");
    }

    #[test]
    fn table_shrinks_back_to_empty_once_buckets_refill() {
        let table = PerIpTable::new(4, 10);
        let t0 = future();
        let tickets: Vec<_> = (0..50u8)
            .flat_map(|i| {
                let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, i));
                [table.admit(a, t0).unwrap(), table.admit(a, t0).unwrap()]
            })
            .collect();
        assert_eq!(table.len(), 50);
        drop(tickets);
        // Closed, but the buckets are not full yet: the entries remember the
        // rate until they refill.
        assert_eq!(table.len(), 50);
        table.sweep(t0 + ms(100));
        assert_eq!(table.len(), 50, "two tokens take 200 ms to refill");
        table.sweep(t0 + ms(200));
        assert!(table.is_empty());
    }

    #[test]
    fn table_release_removes_an_entry_whose_bucket_is_already_full() {
        let table = PerIpTable::new(0, 10);
        let t0 = future();
        let a = ip("10.0.0.1");
        let ticket = table.admit(a, t0).unwrap();
        // Time passes (another admit moves the table's clock), the bucket
        // refills while the connection is open; closing it leaves nothing.
        drop(
            table
                .admit(ip("10.0.0.2"), t0 + Duration::from_secs(5))
                .unwrap(),
        );
        drop(ticket);
        assert_eq!(table.open_count(a), 0);
        assert_eq!(
            table.len(),
            1,
            "only 10.0.0.2, whose token is still missing"
        );
    }

    #[test]
    fn table_sweeps_idle_entries_as_it_grows() {
        let table = PerIpTable::new(0, 1);
        let t0 = future();
        // Many addresses, one connection each, one per millisecond: each entry
        // stays (its bucket needs a second to refill) until a sweep finds it
        // full again. The map must stay bounded.
        let mut largest = 0;
        for i in 0..20_000u32 {
            let a = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let now = t0 + ms(u64::from(i));
            drop(table.admit(a, now).unwrap());
            largest = largest.max(table.len());
        }
        // About 1000 addresses are active in any one second.
        assert!(largest <= 2 * SWEEP_MIN, "table grew to {largest}");
        table.sweep(t0 + Duration::from_secs(30));
        assert!(table.is_empty());
    }

    #[test]
    fn ticket_is_send() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<IpTicket>();
        assert_send::<Arc<PerIpTable>>();
    }

    #[test]
    fn concurrent_admit_and_release_keep_counts_exact() {
        const MAX: u32 = 3;
        let table = PerIpTable::new(MAX, 0);
        let addrs = [ip("10.0.0.1"), ip("10.0.0.2"), ip("::1")];
        let held: Arc<[AtomicU32; 3]> = Arc::new(Default::default());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let table = Arc::clone(&table);
                let held = Arc::clone(&held);
                thread::spawn(move || {
                    let mut admitted = 0u32;
                    let mut tickets = Vec::new();
                    for i in 0..3000usize {
                        let k = (i + t) % addrs.len();
                        if let Ok(ticket) = table.admit(addrs[k], Instant::now()) {
                            admitted += 1;
                            let now_held = held[k].fetch_add(1, Ordering::SeqCst) + 1;
                            assert!(now_held <= MAX, "{now_held} tickets held for one address");
                            tickets.push((k, ticket));
                        }
                        // Release in a different order from admission, now and then.
                        if i % 3 == 0 || tickets.len() > 2 {
                            while let Some((k, ticket)) = tickets.pop() {
                                held[k].fetch_sub(1, Ordering::SeqCst);
                                drop(ticket);
                            }
                        }
                    }
                    for (k, ticket) in tickets {
                        held[k].fetch_sub(1, Ordering::SeqCst);
                        drop(ticket);
                    }
                    admitted
                })
            })
            .collect();
        let admitted: u32 = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(admitted > 0);
        for a in addrs {
            assert_eq!(table.open_count(a), 0);
        }
        assert!(table.is_empty());
    }

    #[test]
    fn tickets_released_on_other_threads() {
        let table = PerIpTable::new(10, 0);
        let t0 = Instant::now();
        let a = ip("10.0.0.1");
        let tickets: Vec<_> = (0..10).map(|_| table.admit(a, t0).unwrap()).collect();
        assert_eq!(table.admit(a, t0).unwrap_err(), Refusal::PerIpLimit);
        let handles: Vec<_> = tickets
            .into_iter()
            .map(|ticket| thread::spawn(move || drop(ticket)))
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(table.open_count(a), 0);
        assert!(table.is_empty());
    }

    // --- ReadThrottle ---

    #[test]
    fn throttle_starts_with_one_second_of_bytes() {
        let t0 = Instant::now();
        let mut th = ReadThrottle::new(1000, t0);
        assert_eq!(th.allowance(4096, t0), Ok(1000));
        assert_eq!(th.allowance(100, t0), Ok(100));
        assert_eq!(th.allowance(0, t0), Ok(0));
    }

    #[test]
    fn throttle_grants_what_was_consumed_back_at_the_rate() {
        let t0 = Instant::now();
        let mut th = ReadThrottle::new(1000, t0);
        th.consume(1000);
        // Empty: wait for 50 ms worth (1000 / 20 = 50 bytes), not one byte.
        assert_eq!(th.allowance(4096, t0), Err(ms(50)));
        assert_eq!(th.allowance(4096, t0 + ms(20)), Err(ms(30)));
        assert_eq!(th.allowance(4096, t0 + ms(50)), Ok(50));
        th.consume(50);
        // A small read only waits for what it wants.
        assert_eq!(th.allowance(10, t0 + ms(55)), Err(ms(5)));
        assert_eq!(th.allowance(10, t0 + ms(60)), Ok(10));
        // Never more than one second's worth, however long it was idle.
        assert_eq!(
            th.allowance(1 << 20, t0 + Duration::from_secs(10)),
            Ok(1000)
        );
    }

    #[test]
    fn throttle_short_reads_keep_the_rest() {
        let t0 = Instant::now();
        let mut th = ReadThrottle::new(1000, t0);
        let n = th.allowance(800, t0).unwrap();
        assert_eq!(n, 800);
        th.consume(300); // the read returned less than allowed
        assert_eq!(th.allowance(4096, t0), Ok(700));
    }

    #[test]
    fn throttle_limits_the_total_over_time() {
        // Read as fast as allowed for 10 simulated seconds: the total is the
        // initial second's burst plus the rate times the time.
        let t0 = Instant::now();
        let mut th = ReadThrottle::new(5000, t0);
        let mut now = t0;
        let mut total = 0usize;
        for _ in 0..100_000 {
            if now >= t0 + Duration::from_secs(10) {
                break;
            }
            match th.allowance(1500, now) {
                Ok(n) => {
                    assert!(n > 0);
                    th.consume(n);
                    total += n;
                }
                Err(wait) => {
                    assert!(wait > Duration::ZERO);
                    now += wait;
                }
            }
        }
        assert!(total <= 5000 + 10 * 5000, "read {total}");
        assert!(total >= 10 * 5000, "read {total}");
    }

    #[test]
    fn throttle_tiny_rates_still_progress() {
        let t0 = Instant::now();
        let mut th = ReadThrottle::new(1, t0);
        assert_eq!(th.allowance(100, t0), Ok(1));
        th.consume(1);
        assert_eq!(th.allowance(100, t0), Err(Duration::from_secs(1)));
        assert_eq!(th.allowance(100, t0 + Duration::from_secs(1)), Ok(1));
        // A rate of 0 is treated as 1 (the caller makes none when off).
        let mut th = ReadThrottle::new(0, t0);
        assert_eq!(th.allowance(100, t0), Ok(1));
    }
}
