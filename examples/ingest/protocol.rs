//! One producer's connection: records in, one reply line per record out, in
//! order, each acknowledgement only once the record is durable.
//!
//! ```text
//! → {"id":"r1","v":1}
//! → {"id":"r2","v":2}
//! → {"id":"r1","v":1}
//! → {"v":3}
//! ← ok r1
//! ← ok r2
//! ← dup r1
//! ← err missing id
//! ```
//!
//! The connection pipelines: it takes every record already received (what
//! one `read` brought in, [`FrameReader::has_buffered_frame`]), submits the
//! valid ones to the committer as one [`Batch`], waits for the `sync` that
//! covers them, and then writes all the replies of the burst in one
//! `write`. A producer with 64 records in flight thus gets them into few
//! syncs, and the committer adds the other connections' bursts to the same
//! ones.
//!
//! A line over the limit gets `err too long`, then the connection closes
//! (its end cannot be found without reading it all). When the server
//! drains (SIGTERM), the burst in hand is committed and acknowledged, and
//! the connection closes instead of reading more.

use std::io::{self, Read, Write};

use crossbeam_channel::{Receiver, bounded};
use syncnet::Conn;
use syncnet::frame::{FrameError, FrameReader, Lines};

use crate::committer::{Batch, Failed, Record, Reply, Submitter, Verdict};
use crate::record::{self, Refusal};

/// The reply to a line over `--max-record`, before the close.
pub const TOO_LONG: &[u8] = b"err too long\n";

/// How many bytes are read and dropped after `err too long` (waiting for
/// the producer to close), so that the close does not reset the connection
/// and destroy the reply in flight.
const DISCARD_LIMIT: usize = 1 << 20;

/// What the connection loop needs of its stream besides bytes: a
/// half-close, and whether the server wants it to stop reading.
pub trait Peer: Read + Write {
    /// True once the server drains: finish the burst in hand, then close.
    fn stop_reading(&self) -> bool;
    /// Sends end of output (FIN), keeping the reading side open.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl Peer for &mut Conn {
    fn stop_reading(&self) -> bool {
        self.is_draining()
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        Conn::shutdown_write(self)
    }
}

/// One reply of a burst, in record order.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// The record at this index of the batch: `ok` or `dup` once committed.
    Record(usize),
    /// Refused; nothing stored.
    Refused(Refusal),
}

/// Serves one producer until it closes, the server drains, a line is too
/// long (`Ok` after `err too long`), or the stream fails.
///
/// # Errors
/// A read or write error, input that ends inside a line, or a committer
/// that failed (nothing is acknowledged then).
pub fn serve<P: Peer>(peer: P, submitter: &Submitter, max_record: usize) -> io::Result<()> {
    let mut records = FrameReader::new(peer, Lines::new(max_record));
    let (reply, committed) = bounded(1);
    let mut burst = Burst::default();
    loop {
        match records.read_frame() {
            Ok(Some(line)) => burst.add(line),
            Ok(None) => return Ok(()),
            Err(FrameError::TooLarge { .. }) => return refuse_too_long(records.get_mut()),
            Err(e) => return Err(e.into()),
        }
        while records.has_buffered_frame() {
            match records.read_frame() {
                Ok(Some(line)) => burst.add(line),
                // `has_buffered_frame` promised a line.
                _ => break,
            }
        }
        burst.commit(submitter, &reply, &committed)?;
        records.get_mut().write_all(&burst.out)?;
        records.get_mut().flush()?;
        if records.get_ref().stop_reading() {
            return Ok(());
        }
    }
}

/// `err too long`, end of output, then the producer's remaining bytes read
/// and dropped until it closes (at most [`DISCARD_LIMIT`]).
fn refuse_too_long<P: Peer>(peer: &mut P) -> io::Result<()> {
    peer.write_all(TOO_LONG)?;
    peer.flush()?;
    peer.shutdown_write()?;
    let mut scratch = [0u8; 4096];
    let mut dropped = 0;
    while dropped < DISCARD_LIMIT {
        match peer.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => dropped += n,
        }
    }
    Ok(())
}

/// The records of one burst and their replies; reused between bursts.
#[derive(Default)]
struct Burst {
    batch: Batch,
    slots: Vec<Slot>,
    /// The encoded replies.
    out: Vec<u8>,
}

impl Burst {
    /// Checks one line: a record goes into the batch, a refusal into its slot.
    fn add(&mut self, line: &[u8]) {
        let slot = match record::parse_id(line) {
            Ok(id) => {
                self.batch.records.push(Record {
                    id,
                    line: line.to_vec(),
                });
                Slot::Record(self.batch.records.len() - 1)
            }
            Err(refusal) => Slot::Refused(refusal),
        };
        self.slots.push(slot);
    }

    /// Submits the records (if any) and waits until they are durable, then
    /// encodes every reply into `out`; empties the burst for the next one.
    fn commit(
        &mut self,
        submitter: &Submitter,
        reply: &Reply,
        committed: &Receiver<Result<Batch, Failed>>,
    ) -> io::Result<()> {
        if !self.batch.records.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            let failed = || io::Error::other("the committer failed: nothing acknowledged");
            submitter.submit(batch, reply).map_err(|_| failed())?;
            self.batch = committed
                .recv()
                .map_err(|_| failed())?
                .map_err(|_| failed())?;
        }
        self.out.clear();
        for slot in self.slots.drain(..) {
            match slot {
                Slot::Record(i) => {
                    let word: &[u8] = match self.batch.verdicts.get(i) {
                        Some(Verdict::Stored) => b"ok ",
                        Some(Verdict::Duplicate) => b"dup ",
                        None => return Err(io::Error::other("the committer lost a verdict")),
                    };
                    self.out.extend_from_slice(word);
                    self.out
                        .extend_from_slice(self.batch.records[i].id.as_bytes());
                }
                Slot::Refused(refusal) => self.out.extend_from_slice(refusal.reply().as_bytes()),
            }
            self.out.push(b'\n');
        }
        self.batch.records.clear();
        self.batch.verdicts.clear();
        Ok(())
    }
}
