//! [`PerIpTable`]: `--max-conns-per-ip` and `--conn-rate-per-ip`, checked on
//! the accept thread; the [`IpTicket`] an admitted connection holds until it
//! closes; and [`Refusal`], why a connection was turned away.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::token_bucket::TokenBucket;

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
pub(super) const SWEEP_MIN: usize = 1024;

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
    /// `--max-conns-per-ip`: open connections allowed per address; 0 is no
    /// limit.
    max_conns: u32,
    /// `--conn-rate-per-ip`: new connections per second per address, and
    /// the burst; 0 is no limit.
    rate: u32,
    /// The per-address entries, behind one lock shared by the accept thread
    /// (admit) and the workers (release on ticket drop).
    state: Mutex<TableState>,
}

/// What [`PerIpTable`]'s lock guards.
#[derive(Debug)]
struct TableState {
    /// One entry per tracked address; an idle one stays until a release or
    /// a sweep finds it idle.
    entries: HashMap<IpAddr, Entry>,
    /// Sweep when `entries.len()` reaches this.
    sweep_at: usize,
    /// The latest `now` passed to `admit`: releases never use an earlier time.
    latest: Option<Instant>,
}

/// What the table knows about one address.
#[derive(Debug)]
struct Entry {
    /// Connections admitted and not yet released.
    open: u32,
    /// New-connection tokens; `None` when the rate limit is off.
    bucket: Option<TokenBucket>,
}

impl Entry {
    /// Whether the entry carries no information at `now` (no open
    /// connection, bucket full or absent) and may be removed.
    fn is_idle(&mut self, now: Instant) -> bool {
        self.open == 0 && self.bucket.as_mut().is_none_or(|b| b.is_full(now))
    }
}

impl TableState {
    /// Removes every idle entry and sets the next sweep threshold to
    /// `max(SWEEP_MIN, 2 × entries left)`.
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

    /// Gives back one of `ip`'s connection slots (from [`IpTicket`]'s
    /// `Drop`), and removes the entry if that leaves it idle. The time used
    /// is the clock, but never earlier than the latest `admit`.
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
    /// The address the connection counts under (IPv4-mapped folded to IPv4).
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
    /// Releases the connection's slot in its table (nothing when both limits
    /// are off).
    fn drop(&mut self) {
        if let Some(table) = self.table.take() {
            table.release(self.ip);
        }
    }
}
