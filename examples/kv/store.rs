//! The key space: [`Store`], split into [`SHARDS`] shards, each a
//! `Mutex<`[`Shard`]`>`, with lazy expiry on access and a background sweep.
//!
//! A command on one key locks one shard, so commands on different keys
//! rarely wait for each other. A command on several keys (`MGET`, `MSET`,
//! `DEL a b`) and a whole transaction (`EXEC`) lock every shard, in index
//! order, through [`AllShards`]: they see and leave the store as one atomic
//! step, as in Redis. [`Db`] lets a command body run either way.
//!
//! Expiry: each shard keeps, besides its map, the list of its keys that
//! have a time to live (`expiring`; each entry knows its slot there). A key
//! past its time is removed when a command touches it, and
//! [`Store::sweep`] (every 100 ms, from [`spawn_sweeper`]'s thread) walks
//! that list a bounded number of keys per shard and pass, so the memory of
//! expired keys comes back even when nobody reads them.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// How many shards the key space has: a power of two.
pub const SHARDS: usize = 32;

/// Keys looked at per shard in one step of a sweep pass.
const SWEEP_SAMPLE: usize = 20;

/// Steps per shard and pass at most: a pass looks at no more than
/// `SHARDS * SWEEP_STEPS * SWEEP_SAMPLE` keys.
const SWEEP_STEPS: usize = 16;

/// `Entry::slot` of a key without a time to live.
const NO_SLOT: usize = usize::MAX;

/// Milliseconds since the first call: the clock expiry times are kept in.
/// Never 0 after the first millisecond; 0 in [`Entry::expires_at`] means
/// "no expiry".
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    // +1: an expiry set in the very first millisecond is still not 0.
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
}

/// One key's value and time to live.
#[derive(Debug)]
pub struct Entry {
    /// The value: a string of bytes.
    pub value: Vec<u8>,
    /// When it expires, in [`now_ms`] time; 0 for never.
    expires_at: u64,
    /// Its index in the shard's `expiring` list; [`NO_SLOT`] when none.
    slot: usize,
}

impl Entry {
    /// When it expires ([`now_ms`] time), or `None` for never.
    pub fn expires_at(&self) -> Option<u64> {
        (self.expires_at != 0).then_some(self.expires_at)
    }

    /// True once its time has come.
    fn is_expired(&self) -> bool {
        self.expires_at != 0 && self.expires_at <= now_ms()
    }

    /// Replaces the value, reusing the allocation when it fits without
    /// wasting more than half of it.
    pub fn assign(&mut self, value: &[u8]) {
        let capacity = self.value.capacity();
        if value.len() <= capacity && capacity <= value.len().saturating_mul(2).max(64) {
            self.value.clear();
            self.value.extend_from_slice(value);
        } else {
            self.value = value.to_vec();
        }
    }
}

/// One part of the key space.
#[derive(Debug, Default)]
pub struct Shard {
    map: HashMap<Box<[u8]>, Entry>,
    /// The keys with a time to live, each entry's `slot` its index here.
    expiring: Vec<Box<[u8]>>,
    /// Where the sweep goes on in `expiring`.
    cursor: usize,
}

impl Shard {
    /// Calls `f` with the live entry of `key` (`None` when it does not
    /// exist); removes the key first if it has expired.
    pub fn read<R>(&mut self, key: &[u8], f: impl FnOnce(Option<&Entry>) -> R) -> R {
        match self.map.get(key) {
            Some(entry) if !entry.is_expired() => return f(Some(entry)),
            Some(_) => {}
            None => return f(None),
        }
        self.remove(key);
        f(None)
    }

    /// Calls `f` with the live entry of `key`, to change it; `None` when
    /// the key does not exist (an expired key is removed first).
    pub fn update<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        match self.map.get_mut(key) {
            Some(entry) if !entry.is_expired() => return Some(f(entry)),
            Some(_) => {}
            None => return None,
        }
        self.remove(key);
        None
    }

    /// True when `key` exists (and has not expired).
    pub fn contains(&mut self, key: &[u8]) -> bool {
        self.read(key, |entry| entry.is_some())
    }

    /// Sets `key` to `value`, expiring at `expires_at` ([`now_ms`] time;
    /// `None`: never), whatever it held before.
    pub fn set(&mut self, key: &[u8], value: &[u8], expires_at: Option<u64>) {
        let had_expiry = match self.map.get_mut(key) {
            Some(entry) => {
                entry.assign(value);
                entry.slot != NO_SLOT
            }
            None => {
                let entry = Entry {
                    value: value.to_vec(),
                    expires_at: 0,
                    slot: NO_SLOT,
                };
                self.map.insert(Box::from(key), entry);
                false
            }
        };
        if had_expiry || expires_at.is_some() {
            self.set_expiry(key, expires_at);
        }
    }

    /// Sets or clears (`None`) the expiry time of `key`, which must exist.
    pub fn set_expiry(&mut self, key: &[u8], expires_at: Option<u64>) {
        let Some(entry) = self.map.get_mut(key) else {
            return;
        };
        entry.expires_at = expires_at.unwrap_or(0);
        match (expires_at, entry.slot) {
            (Some(_), NO_SLOT) => {
                entry.slot = self.expiring.len();
                self.expiring.push(Box::from(key));
            }
            (None, slot) if slot != NO_SLOT => {
                entry.slot = NO_SLOT;
                self.unlink(slot);
            }
            _ => {}
        }
    }

    /// Removes `key`; true when it was there (expired or not).
    pub fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some(entry) => {
                if entry.slot != NO_SLOT {
                    self.unlink(entry.slot);
                }
                true
            }
            None => false,
        }
    }

    /// Drops slot `slot` of `expiring`; the key moved into it learns its
    /// new slot.
    fn unlink(&mut self, slot: usize) {
        if slot >= self.expiring.len() {
            return;
        }
        self.expiring.swap_remove(slot);
        self.fix_slot(slot);
    }

    /// Tells the key now in slot `slot` of `expiring` (if any) its slot.
    fn fix_slot(&mut self, slot: usize) {
        if let Some(moved) = self.expiring.get(slot)
            && let Some(entry) = self.map.get_mut(&**moved)
        {
            entry.slot = slot;
        }
    }

    /// How many keys it holds, expired ones not yet removed included (as
    /// Redis's `DBSIZE`).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Removes every key and gives the memory back.
    pub fn clear(&mut self) {
        *self = Shard::default();
    }

    /// One sweep of this shard: looks at up to [`SWEEP_SAMPLE`] keys with
    /// a time to live, removing the expired ones, and goes on while more
    /// than a quarter of them were, for at most [`SWEEP_STEPS`] steps.
    /// Returns how many keys it removed.
    fn sweep(&mut self) -> usize {
        let mut removed = 0;
        for _ in 0..SWEEP_STEPS {
            let mut expired = 0;
            let sample = SWEEP_SAMPLE.min(self.expiring.len());
            for _ in 0..sample {
                if self.cursor >= self.expiring.len() {
                    self.cursor = 0;
                }
                let key = &self.expiring[self.cursor];
                if self
                    .map
                    .get(&**key)
                    .is_some_and(|entry| !entry.is_expired())
                {
                    self.cursor += 1;
                    continue;
                }
                // The last key moves into this slot: it is looked at next.
                let key = self.expiring.swap_remove(self.cursor);
                self.map.remove(&*key);
                self.fix_slot(self.cursor);
                expired += 1;
            }
            removed += expired;
            if sample == 0 || expired * 4 <= sample {
                break;
            }
        }
        self.shrink();
        removed
    }

    /// Gives back the memory of a map or list now mostly empty.
    fn shrink(&mut self) {
        if self.map.capacity() > 64 && self.map.len() * 4 < self.map.capacity() {
            self.map.shrink_to(self.map.len() * 2);
        }
        if self.expiring.capacity() > 64 && self.expiring.len() * 4 < self.expiring.capacity() {
            self.expiring.shrink_to(self.expiring.len() * 2);
        }
    }
}

/// A shard on its own cache line, so that two cores locking neighbouring
/// shards do not contend for one line.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded(Mutex<Shard>);

/// The whole key space, shared by every connection.
#[derive(Debug, Default)]
pub struct Store {
    shards: [Padded; SHARDS],
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// The shard `key` lives in, locked.
    pub fn lock(&self, key: &[u8]) -> MutexGuard<'_, Shard> {
        lock(&self.shards[shard_of(key)].0)
    }

    /// Every shard, locked in index order (so two callers cannot deadlock).
    pub fn lock_all(&self) -> AllShards<'_> {
        AllShards {
            guards: std::array::from_fn(|i| lock(&self.shards[i].0)),
        }
    }

    /// One sweep pass over every shard, one shard locked at a time; returns
    /// how many expired keys it removed.
    pub fn sweep(&self) -> usize {
        self.shards.iter().map(|shard| lock(&shard.0).sweep()).sum()
    }
}

/// Locks `shard`. A command never panics while holding it; if one did,
/// every step before leaves the shard consistent, so the poison is ignored.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The shard of `key`: a multiply-rotate hash over 8-byte words (FxHash's).
/// Cheap; a peer that chooses keys to land in one shard only makes them
/// share one lock, since each shard's map hashes with SipHash and a random
/// key.
fn shard_of(key: &[u8]) -> usize {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut hash = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(bytes)).wrapping_mul(K);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    hash = (hash.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    // The high bits are the well mixed ones.
    (hash >> 58) as usize % SHARDS
}

/// Every shard locked: what `EXEC` and multi-key commands work on.
pub struct AllShards<'a> {
    guards: [MutexGuard<'a, Shard>; SHARDS],
}

impl AllShards<'_> {
    /// The shard of `key`.
    pub fn shard(&mut self, key: &[u8]) -> &mut Shard {
        &mut self.guards[shard_of(key)]
    }

    /// How many keys the store holds.
    pub fn len(&self) -> usize {
        self.guards.iter().map(|shard| shard.len()).sum()
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.guards.iter_mut().for_each(|shard| shard.clear());
    }
}

/// Where a command runs: on the store, locking what it needs, or inside
/// `EXEC`, with every shard already locked.
pub enum Db<'s, 'g> {
    /// Not in a transaction: lock per command.
    Store(&'s Store),
    /// In `EXEC`: every shard is held.
    Locked(&'g mut AllShards<'s>),
}

impl Db<'_, '_> {
    /// Runs `f` on the shard of `key`.
    pub fn with_key<R>(&mut self, key: &[u8], f: impl FnOnce(&mut Shard) -> R) -> R {
        match self {
            Db::Store(store) => f(&mut store.lock(key)),
            Db::Locked(all) => f(all.shard(key)),
        }
    }

    /// Runs `f` with every shard locked: one atomic step.
    pub fn with_all<R>(&mut self, f: impl FnOnce(&mut AllShards<'_>) -> R) -> R {
        match self {
            Db::Store(store) => f(&mut store.lock_all()),
            Db::Locked(all) => f(all),
        }
    }
}

/// Starts the thread that calls [`Store::sweep`] every `every`. It holds
/// the store weakly and ends at the first pass after the store is dropped.
///
/// # Errors
/// When the thread cannot be started.
pub fn spawn_sweeper(store: &Arc<Store>, every: Duration) -> io::Result<()> {
    let store = Arc::downgrade(store);
    thread::Builder::new()
        .name("kv-expiry".to_string())
        .spawn(move || {
            loop {
                // The sweep's period: a timer, not a wait for an event.
                thread::sleep(every);
                let Some(store) = store.upgrade() else { return };
                store.sweep();
            }
        })
        .map(drop)
}
