//! Group commit: one writer thread owns the file and the set of ids.
//! Connections hand it their records in [`Batch`]es over a channel; it takes
//! every batch waiting (and waits briefly for the connections it just
//! answered, see [`Gather`]), appends the new records in one `write`, makes
//! them durable with one `sync`, and only then hands each batch back with a
//! [`Verdict`] per record. One `fsync` thus covers the records of every
//! connection that submitted meanwhile, and no connection can acknowledge a
//! record the `sync` has not covered.
//!
//! A duplicate (its id already in the set) is not written; its batch comes
//! back after the same `sync` as the rest of its cycle. Its original was
//! written in this cycle or an earlier one, and every cycle syncs what it
//! wrote before handing anything back: so a `dup` is never acknowledged
//! before its original is durable. A cycle with only duplicates writes
//! nothing and needs no `sync`.
//!
//! A failed write or sync leaves the file in an unknown state (a partial
//! line, pages the kernel may have dropped): the committer writes nothing
//! more, fails every batch from then on, and calls its `on_fatal` hook (the
//! server exits; the restart cuts a torn line).

use std::collections::HashSet;
use std::io;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};
use syncnet::prometheus::{Histogram, HistogramOpts, IntCounter, Registry};

use crate::store::Store;

/// How many batches may wait for the committer before submitters block.
const QUEUE: usize = 1024;

/// One record to store: its id and its line, without the line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub line: Vec<u8>,
}

/// What became of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Written, and covered by a sync.
    Stored,
    /// Its id was already stored (or is in the same sync): not written again.
    Duplicate,
}

/// A connection's records, sent to the committer and handed back
/// (allocations and all) with one verdict per record once durable.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Filled by the committer, in the order of `records`.
    pub verdicts: Vec<Verdict>,
}

/// The committer failed: nothing was stored for the batch, or not durably.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed;

/// What a batch comes back through.
pub type Reply = Sender<Result<Batch, Failed>>;

enum Message {
    Commit(Batch, Reply),
    /// Commit everything sent before, then stop.
    Stop,
}

/// The ingest metrics, registered in the server's registry.
#[derive(Clone)]
pub struct Metrics {
    records: IntCounter,
    duplicates: IntCounter,
    fsyncs: IntCounter,
    records_per_fsync: Histogram,
}

impl Metrics {
    /// Creates the four metrics and registers them in `registry`.
    ///
    /// # Errors
    /// A metric of the same name is already registered.
    pub fn register(registry: &Registry) -> Result<Metrics, syncnet::prometheus::Error> {
        let metrics = Metrics::unregistered()?;
        registry.register(Box::new(metrics.records.clone()))?;
        registry.register(Box::new(metrics.duplicates.clone()))?;
        registry.register(Box::new(metrics.fsyncs.clone()))?;
        registry.register(Box::new(metrics.records_per_fsync.clone()))?;
        Ok(metrics)
    }

    /// The metrics, counted but exposed nowhere (tests).
    pub fn unregistered() -> Result<Metrics, syncnet::prometheus::Error> {
        let buckets = (0..13).map(|i| f64::from(1u32 << i)).collect();
        Ok(Metrics {
            records: IntCounter::new(
                "syncnet_ingest_records_total",
                "Records written to the file and synced",
            )?,
            duplicates: IntCounter::new(
                "syncnet_ingest_duplicates_total",
                "Records not written because their id was already stored",
            )?,
            fsyncs: IntCounter::new(
                "syncnet_ingest_fsyncs_total",
                "Syncs of the file (fdatasync)",
            )?,
            records_per_fsync: Histogram::with_opts(
                HistogramOpts::new(
                    "syncnet_ingest_records_per_fsync",
                    "Records made durable by one sync",
                )
                .buckets(buckets),
            )?,
        })
    }

    /// (records, duplicates, fsyncs) counted so far.
    #[allow(dead_code)] // for the tests
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.records.get(), self.duplicates.get(), self.fsyncs.get())
    }
}

/// How often to sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One sync for everything waiting (group commit).
    Group,
    /// A write and a sync per record: the baseline.
    EveryRecord,
}

/// The committer thread. [`Committer::stop`] commits what was sent and
/// joins it; dropping it without `stop` leaves the thread to finish by
/// itself.
pub struct Committer {
    tx: Sender<Message>,
    thread: JoinHandle<()>,
}

/// Sends batches to a [`Committer`]; cheap to clone, one per connection.
#[derive(Clone)]
pub struct Submitter {
    tx: Sender<Message>,
}

impl Submitter {
    /// Hands `batch` to the committer; it comes back through `reply`.
    ///
    /// # Errors
    /// [`Failed`] when the committer has stopped.
    pub fn submit(&self, batch: Batch, reply: &Reply) -> Result<(), Failed> {
        self.tx
            .send(Message::Commit(batch, reply.clone()))
            .map_err(|_| Failed)
    }
}

impl Committer {
    /// Starts the committer thread over `store`, whose records have the
    /// ids `ids`. `on_fatal` runs (on the committer's thread) when a write
    /// or sync fails, after every waiting batch was failed.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn start<S: Store>(
        store: S,
        ids: HashSet<String>,
        mode: Mode,
        metrics: Metrics,
        on_fatal: impl FnOnce(&io::Error) + Send + 'static,
    ) -> io::Result<Committer> {
        let (tx, rx) = bounded(QUEUE);
        let mut writer = Writer {
            store,
            ids,
            mode,
            metrics,
            buf: Vec::new(),
        };
        let thread = thread::Builder::new()
            .name("ingest-committer".into())
            .spawn(move || {
                if let Err(e) = writer.run(&rx) {
                    fail_all(&rx);
                    on_fatal(&e);
                    // Later batches fail until the senders are gone.
                    while let Ok(message) = rx.recv() {
                        match message {
                            Message::Commit(_, reply) => drop(reply.send(Err(Failed))),
                            Message::Stop => break,
                        }
                    }
                }
            })?;
        Ok(Committer { tx, thread })
    }

    /// A handle to submit batches with.
    pub fn submitter(&self) -> Submitter {
        Submitter {
            tx: self.tx.clone(),
        }
    }

    /// Commits every batch sent before this call, then stops the thread
    /// and waits for it.
    pub fn stop(self) {
        let _ = self.tx.send(Message::Stop);
        let _ = self.thread.join();
    }
}

/// Fails every batch already waiting.
fn fail_all(rx: &Receiver<Message>) {
    while let Ok(message) = rx.try_recv() {
        if let Message::Commit(_, reply) = message {
            let _ = reply.send(Err(Failed));
        }
    }
}

/// Which batches one sync covers.
///
/// Every batch waiting is taken. Then the committer may wait a little for
/// more: the connections whose batches the last sync handed back send
/// their next records within a round trip, while the batches that arrived
/// during that sync are already waiting. Syncing at once would cover only
/// the latter, and the others would wait for the next sync: the producers
/// split into two groups taking turns, each sync covering half of what is
/// in flight. So the committer waits until as many new batches as it handed
/// back have arrived (each connection has one batch at a time), but never
/// longer than the last sync took (nor [`Gather::MAX_LINGER`]): waiting for
/// them costs at most the extra sync they would otherwise need. A lone
/// connection never waits: its next batch is the one expected.
#[derive(Debug)]
struct Gather {
    /// Batches the last cycle handed back: their connections come back soon.
    handed_back: usize,
    /// Batches already waiting when the last cycle ended.
    queued: usize,
    /// When the last cycle ended.
    cycle_end: Instant,
    /// How long the last sync took.
    last_sync: Duration,
}

impl Default for Gather {
    fn default() -> Gather {
        Gather {
            handed_back: 0,
            queued: 0,
            cycle_end: Instant::now(),
            last_sync: Duration::ZERO,
        }
    }
}

impl Gather {
    /// The most a cycle waits for returning connections.
    const MAX_LINGER: Duration = Duration::from_millis(5);

    /// Fills `cycle` with at least one batch (blocking for it); true when
    /// the committer must stop after this cycle.
    fn collect(&self, rx: &Receiver<Message>, cycle: &mut Vec<(Batch, Reply)>) -> bool {
        match rx.recv() {
            Ok(Message::Commit(batch, reply)) => cycle.push((batch, reply)),
            Ok(Message::Stop) | Err(_) => return true,
        }
        let linger = self.last_sync.min(Self::MAX_LINGER);
        let deadline = self.cycle_end + linger;
        let wanted = self.queued + self.handed_back;
        loop {
            let next = if cycle.len() >= wanted {
                rx.try_recv().map_err(|e| e.is_disconnected())
            } else {
                rx.recv_deadline(deadline).map_err(|e| e.is_disconnected())
            };
            match next {
                Ok(Message::Commit(batch, reply)) => cycle.push((batch, reply)),
                Ok(Message::Stop) | Err(true) => return true,
                // Nothing more waiting, or the linger is over.
                Err(false) => return false,
            }
        }
    }
}

/// The committer thread's state.
struct Writer<S> {
    store: S,
    ids: HashSet<String>,
    mode: Mode,
    metrics: Metrics,
    /// The lines of one cycle, reused.
    buf: Vec<u8>,
}

impl<S: Store> Writer<S> {
    /// Cycles until [`Message::Stop`] (or every sender is gone): takes the
    /// waiting batches, writes, syncs, hands them back.
    fn run(&mut self, rx: &Receiver<Message>) -> io::Result<()> {
        let mut cycle: Vec<(Batch, Reply)> = Vec::new();
        let mut gather = Gather::default();
        loop {
            let stop = match self.mode {
                Mode::Group => gather.collect(rx, &mut cycle),
                Mode::EveryRecord => Gather::default().collect(rx, &mut cycle),
            };
            let sync_started = Instant::now();
            let committed = self.commit(&mut cycle);
            gather.last_sync = sync_started.elapsed();
            gather.handed_back = cycle.len();
            for (batch, reply) in cycle.drain(..) {
                let outcome = if committed.is_ok() {
                    Ok(batch)
                } else {
                    Err(Failed)
                };
                // A connection that went away no longer waits: fine.
                let _ = reply.send(outcome);
            }
            gather.queued = rx.len();
            gather.cycle_end = Instant::now();
            committed?;
            if stop {
                return Ok(());
            }
        }
    }

    /// Decides each record's verdict, writes the new ones and syncs.
    fn commit(&mut self, cycle: &mut [(Batch, Reply)]) -> io::Result<()> {
        self.buf.clear();
        let (mut stored, mut duplicates) = (0u64, 0u64);
        for (batch, _) in cycle.iter_mut() {
            batch.verdicts.clear();
            for record in &batch.records {
                if self.ids.contains(&record.id) {
                    batch.verdicts.push(Verdict::Duplicate);
                    duplicates += 1;
                    continue;
                }
                self.ids.insert(record.id.clone());
                batch.verdicts.push(Verdict::Stored);
                stored += 1;
                self.buf.extend_from_slice(&record.line);
                self.buf.push(b'\n');
                if self.mode == Mode::EveryRecord {
                    self.store.append(&self.buf)?;
                    self.sync(1)?;
                    self.buf.clear();
                }
            }
        }
        if !self.buf.is_empty() {
            self.store.append(&self.buf)?;
            self.sync(stored)?;
        }
        self.metrics.records.inc_by(stored);
        self.metrics.duplicates.inc_by(duplicates);
        Ok(())
    }

    /// One sync, covering `records` records.
    fn sync(&mut self, records: u64) -> io::Result<()> {
        self.store.sync()?;
        self.metrics.fsyncs.inc();
        self.metrics.records_per_fsync.observe(records as f64);
        Ok(())
    }
}
