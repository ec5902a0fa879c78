//! [`ClientPool::call`]: one request frame out, one reply frame back, on a
//! pooled connection, with retries for idempotent requests only.

use std::io::{self, Write};
use std::thread;
use std::time::{Duration, Instant};

use super::ClientPool;
use super::lease::Lease;
use crate::Error;
use crate::frame::{Codec, Decoded, FrameError, FrameReader};

/// Whether a request may be sent again after a failure that leaves unknown
/// whether the server acted on it (the connection broke after the request
/// was written, before the whole reply came back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Sending it twice does no harm (a read, a `SET` to a fixed value):
    /// retried up to [`ClientPool::MAX_RETRIES`] times on a new connection.
    Idempotent,
    /// Must not be done twice (an increment, a payment): never retried.
    NotIdempotent,
}

/// The wait before the first retry; it doubles for each next one (10 ms,
/// then 20 ms).
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// Why one attempt failed.
enum Failure {
    /// The connection failed (write or read error, timeout, end of input
    /// before the reply): the server may or may not have acted.
    Transport(io::Error),
    /// The reply broke the codec's rules: sending again would not help.
    Protocol(io::Error),
}

impl ClientPool {
    /// How many times [`call`](ClientPool::call) sends a
    /// [`Call::Idempotent`] request again after a failure: 2.
    pub const MAX_RETRIES: u32 = 2;

    /// Sends `request` to `addr` as one frame of `codec`, reads one reply
    /// frame into `reply` (replacing what it held; unspecified after an
    /// error), and gives the connection back.
    ///
    /// The connection's read and write timeouts are the pool's; inside a
    /// [`FramedService`](crate::service::FramedService) handler whose
    /// request has a deadline, each wait (checkout, connect, write, read)
    /// is also bounded by the time left before it
    /// ([`time_left`](crate::service::time_left)), so the call gives up in
    /// time for the handler to answer.
    ///
    /// After a failure between the first byte written and the whole reply
    /// read, the connection is closed. A [`Call::Idempotent`] request is
    /// then sent again on another connection, at most [`MAX_RETRIES`](ClientPool::MAX_RETRIES)
    /// times, after 10 ms, then 20 ms, while the deadline leaves time for
    /// it; a [`Call::NotIdempotent`] one never is. Checkout failures (pool
    /// exhausted, cannot connect) are returned at once: no request went out.
    ///
    /// # Errors
    /// - [`Error::PoolExhausted`] when no connection came free in time;
    /// - [`Error::Io`] naming the address when connecting failed, and
    ///   [`Error::Tls`]/[`Error::Address`] as for [`ClientPool::get`];
    /// - [`Error::Call`] when the request could not be sent or answered:
    ///   its source is `TimedOut` for a timeout or the deadline,
    ///   `UnexpectedEof` when the server closed before the reply,
    ///   `InvalidData` for a reply the codec refuses (too large, malformed)
    ///   or followed by bytes nobody asked for, `InvalidInput` for a
    ///   request the codec cannot encode (then nothing was sent:
    ///   `attempts` is 0).
    pub fn call<C: Codec>(
        &self,
        addr: &str,
        codec: &C,
        request: &[u8],
        call: Call,
        reply: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let deadline = crate::service::current_deadline();
        let attempts = match call {
            Call::Idempotent => 1 + ClientPool::MAX_RETRIES,
            Call::NotIdempotent => 1,
        };
        let failed = |attempts, source| Error::Call {
            addr: addr.to_string(),
            attempts,
            source,
        };
        // `reply` holds the encoded request until a reply replaces it.
        reply.clear();
        if let Err(e) = codec.encode(request, reply) {
            return Err(failed(0, io::Error::new(io::ErrorKind::InvalidInput, e)));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(failed(0, deadline_passed()));
        }
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let mut lease = self.checkout(addr, deadline)?;
            let error = match exchange(&mut lease, codec, deadline, reply) {
                Ok(()) => return Ok(()),
                Err(Failure::Protocol(e)) => return Err(failed(attempt, e)),
                Err(Failure::Transport(e)) => e,
            };
            lease.discard();
            let time_for_more = deadline.is_none_or(|d| Instant::now() + backoff < d);
            if attempt == attempts || !time_for_more {
                return Err(failed(attempt, error));
            }
            thread::sleep(backoff);
            backoff *= 2;
            attempt += 1;
        }
    }
}

/// One attempt on `lease`: writes the encoded request that `reply` holds,
/// then reads the reply into `reply` (left as it was on failure, for the
/// next attempt). Leaves the lease marked broken on any failure.
fn exchange<C: Codec>(
    lease: &mut Lease,
    codec: &C,
    deadline: Option<Instant>,
    reply: &mut Vec<u8>,
) -> Result<(), Failure> {
    let result = exchange_on(lease, codec, deadline, reply);
    if result.is_err() {
        lease.mark_broken();
    }
    result
}

fn exchange_on<C: Codec>(
    lease: &mut Lease,
    codec: &C,
    deadline: Option<Instant>,
    reply: &mut Vec<u8>,
) -> Result<(), Failure> {
    if let Some(deadline) = deadline {
        lease.lower_timeouts(deadline).map_err(Failure::Transport)?;
    }
    lease
        .write_all(reply)
        .and_then(|()| lease.flush())
        .map_err(|e| Failure::Transport(timed_out(e, deadline)))?;
    let mut replies = FrameReader::new(&mut *lease, ByRef(codec));
    let frame = match replies.read_frame() {
        Ok(Some(frame)) => frame,
        Ok(None) => {
            return Err(Failure::Transport(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before replying",
            )));
        }
        Err(FrameError::Io(e)) => return Err(Failure::Transport(timed_out(e, deadline))),
        Err(e @ FrameError::Truncated { .. }) => return Err(Failure::Transport(e.into())),
        Err(e) => return Err(Failure::Protocol(e.into())),
    };
    reply.clear();
    reply.extend_from_slice(frame);
    if !replies.buffer().is_empty() {
        // Bytes after the reply: the next call would read them as its own.
        return Err(Failure::Protocol(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server sent more than one reply frame",
        )));
    }
    Ok(())
}

/// The error of a call made after its request's deadline.
fn deadline_passed() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the deadline of the request being answered has passed",
    )
}

/// A socket timeout as `TimedOut` (Unix reports it as `WouldBlock`), and
/// one that ends at the deadline as the deadline.
fn timed_out(e: io::Error, deadline: Option<Instant>) -> io::Error {
    if !matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        return e;
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return deadline_passed();
    }
    io::Error::new(io::ErrorKind::TimedOut, e)
}

/// A borrowed codec, so that a caller's `&C` can drive a [`FrameReader`]
/// (which owns its codec).
struct ByRef<'a, C>(&'a C);

impl<C: Codec> Codec for ByRef<'_, C> {
    fn max_frame_len(&self) -> usize {
        self.0.max_frame_len()
    }
    fn max_encoded_len(&self) -> usize {
        self.0.max_encoded_len()
    }
    fn decode(&self, buf: &[u8]) -> Result<Option<Decoded>, FrameError> {
        self.0.decode(buf)
    }
    fn resume_decode(&self, buf: &[u8], checked: usize) -> Result<Option<Decoded>, FrameError> {
        self.0.resume_decode(buf, checked)
    }
    fn expected_len(&self, partial: &[u8]) -> usize {
        self.0.expected_len(partial)
    }
    fn encode(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        self.0.encode(frame, out)
    }
}
