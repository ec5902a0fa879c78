//! The client side of the protocol: framing a request, one round trip over
//! a connection, reading the reply. The `forward` method and `rpc call` both
//! use it.
//!
//! `forward` reaches its upstream only through the [`Upstream`] trait: one
//! request frame out, one reply frame back. [`Pooled`] borrows a connection
//! from a [`ClientPool`] for each call and gives it back (what `rpc serve
//! --forward` uses); [`ConnectPerCall`] opens a new connection for every
//! call (kept for comparison: `bench/rpc.sh` measures both).

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;
use syncnet::trace::ClientSpan;
use syncnet::{Client, ClientPool};

use crate::protocol::{MAX_FRAME, present, write_json};

/// Where `forward` sends its calls.
pub trait Upstream: Send + Sync + 'static {
    /// Sends `request` — one whole frame, length prefix included, as
    /// [`frame_request`] writes it — and reads the reply frame's payload
    /// into `reply` (whatever it held is replaced), giving up at `deadline`.
    ///
    /// # Errors
    /// The upstream cannot be reached, closes the connection, sends a
    /// frame over 1 MiB, or does not answer before `deadline`.
    fn round_trip(&self, request: &[u8], reply: &mut Vec<u8>, deadline: Instant) -> io::Result<()>;
}

/// An [`Upstream`] over a [`ClientPool`]: each call borrows a connection to
/// the upstream (an idle one, checked first; or a new one), runs
/// [`exchange`] on it and gives it back for the next call. A connection
/// that failed mid-call is closed, never reused: it may still hold part of
/// a reply. The call is not retried on another connection (the upstream
/// method may not be idempotent): the caller gets `-32001`.
///
/// The connect and the write are bounded by the pool's connect and write
/// timeouts; the reads by `deadline` (`exchange` sets the connection's read
/// timeout for each call, so the value it is left with does not matter).
#[derive(Debug, Clone)]
pub struct Pooled {
    pool: ClientPool,
    addr: String,
}

impl Pooled {
    /// Calls go to `addr` (as [`ClientPool::get`] takes it) through `pool`.
    pub fn new(pool: ClientPool, addr: impl Into<String>) -> Pooled {
        Pooled {
            pool,
            addr: addr.into(),
        }
    }
}

impl Upstream for Pooled {
    fn round_trip(&self, request: &[u8], reply: &mut Vec<u8>, deadline: Instant) -> io::Result<()> {
        let mut lease = self.pool.get(&self.addr).map_err(io::Error::other)?;
        // `exchange` does its I/O on the `Client` inside the lease, so the
        // lease does not see a failure by itself: discard it by hand.
        let done = exchange(&mut lease, request, reply, deadline);
        if done.is_err() {
            lease.discard();
        }
        done
    }
}

/// An [`Upstream`] that opens a new connection for every call (connect
/// timeout and read/write timeouts: the time left before the deadline).
#[derive(Debug, Clone)]
pub struct ConnectPerCall {
    addr: SocketAddr,
}

impl ConnectPerCall {
    /// Calls go to `addr`.
    pub fn new(addr: SocketAddr) -> ConnectPerCall {
        ConnectPerCall { addr }
    }
}

impl Upstream for ConnectPerCall {
    fn round_trip(&self, request: &[u8], reply: &mut Vec<u8>, deadline: Instant) -> io::Result<()> {
        let timeout = time_until(deadline)?;
        let mut client = Client::connect(self.addr, timeout).map_err(io::Error::other)?;
        exchange(&mut client, request, reply, deadline)
    }
}

/// The first read of a reply asks for this many bytes: the length prefix
/// and, for most replies, the whole payload, in one `recv`.
const FIRST_READ: usize = 1024;

/// One round trip on an open connection: writes the `request` frame, then
/// reads exactly one reply frame's payload into `reply`, bounded by the
/// time left before `deadline` (the read timeout is set once; a reply that
/// needs more than one read sets it again for the rest). A server that
/// sent more than the reply frame is an error, so after `Ok` the
/// connection can serve the next call (a pool can reuse it).
///
/// # Errors
/// As [`Upstream::round_trip`]; `InvalidData` when the server sent bytes
/// after the reply frame.
pub fn exchange(
    client: &mut Client,
    request: &[u8],
    reply: &mut Vec<u8>,
    deadline: Instant,
) -> io::Result<()> {
    client
        .write_all(request)
        .map_err(named("sending the request"))?;
    client.flush().map_err(named("sending the request"))?;
    client.set_read_timeout(Some(time_until(deadline)?))?;
    reply.clear();
    reply.resize(FIRST_READ, 0);
    let mut got = 0;
    while got < 4 {
        match client.read(&mut reply[got..]) {
            Ok(0) => {
                return Err(named("reading the reply")(
                    io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(named("reading the reply")(e)),
        }
    }
    let prefix = [reply[0], reply[1], reply[2], reply[3]];
    let len = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the reply frame is {len} bytes, over the {MAX_FRAME}-byte limit"),
        ));
    }
    let end = 4 + len;
    if got > end {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server sent more than one reply frame",
        ));
    }
    reply.resize(end, 0);
    if got < end {
        client.set_read_timeout(Some(time_until(deadline)?))?;
        client
            .read_exact(&mut reply[got..])
            .map_err(named("reading the reply"))?;
    }
    reply.drain(..4);
    Ok(())
}

/// The time left before `deadline`.
///
/// # Errors
/// `TimedOut` once it has passed (a zero timeout would mean "none" to the
/// socket calls).
fn time_until(deadline: Instant) -> io::Result<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
        .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no time left before the deadline"))
}

/// Rewords the errors of a read or write for people: a timeout and an
/// early close say so; others keep their own message, after `doing`.
fn named(doing: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| {
        let what = match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                "no reply before the deadline".to_string()
            }
            io::ErrorKind::UnexpectedEof => "the connection closed before the reply".to_string(),
            _ => format!("{doing}: {e}"),
        };
        io::Error::new(e.kind(), what)
    }
}

/// Appends one request frame, length prefix included:
/// `{"jsonrpc":"2.0","id":ID,"method":M}` with `,"params":P` before the
/// closing brace when there are params.
///
/// # Errors
/// `InvalidInput` when the request would be over 1 MiB.
pub fn frame_request(
    out: &mut Vec<u8>,
    id: u64,
    method: &str,
    params: Option<&RawValue>,
    span: Option<&ClientSpan>,
) -> io::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]); // the length, filled in below
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    write_json(out, &id);
    out.extend_from_slice(br#","method":"#);
    write_json(out, method);
    if let Some(params) = params {
        out.extend_from_slice(br#","params":"#);
        out.extend_from_slice(params.get().as_bytes());
    }
    // The trace context the callee continues (none with tracing off and
    // no incoming one).
    if let Some(traceparent) = span.and_then(ClientSpan::traceparent) {
        // `Display` writes only hex digits and dashes: no escaping needed.
        let _ = write!(out, r#","traceparent":"{traceparent}""#);
        if let Some(state) = span.and_then(ClientSpan::tracestate) {
            out.extend_from_slice(br#","tracestate":"#);
            write_json(out, &state);
        }
    }
    out.push(b'}');
    let len = out.len() - start - 4;
    match u32::try_from(len) {
        Ok(prefix) if len <= MAX_FRAME => {
            out[start..start + 4].copy_from_slice(&prefix.to_be_bytes());
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the request is {len} bytes, over the {MAX_FRAME}-byte limit"),
            ))
        }
    }
}

/// A reply object, borrowed from its frame. Members other than these
/// (`jsonrpc`) are not checked: be liberal in what you accept.
#[derive(Debug, Deserialize)]
struct Reply<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<ReplyError<'a>>,
}

/// The `error` member of a reply.
#[derive(Debug, Deserialize)]
pub struct ReplyError<'a> {
    /// The error code.
    pub code: i64,
    /// The message.
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    /// Extra information, if any.
    #[serde(default, borrow, deserialize_with = "present")]
    pub data: Option<&'a RawValue>,
}

/// What a reply says.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The call succeeded: its result, as raw JSON.
    Result(&'a RawValue),
    /// The call failed.
    Error(ReplyError<'a>),
}

/// Reads the reply to the request with id `id` out of its frame's payload.
/// An error reply with a `null` id is accepted too: the server could not
/// read the request's id (or refused the connection before reading it).
///
/// # Errors
/// `InvalidData` when the payload is not a reply object, answers another
/// request, or has neither or both of `result` and `error`.
pub fn read_reply(payload: &[u8], id: u64) -> io::Result<Outcome<'_>> {
    let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let reply: Reply<'_> = serde_json::from_slice(payload)
        .map_err(|e| invalid(format!("not a JSON-RPC reply: {e}")))?;
    let ours = serde_json::from_str::<u64>(reply.id.get()).is_ok_and(|got| got == id);
    let anonymous_error = reply.id.get() == "null" && reply.error.is_some();
    if !ours && !anonymous_error {
        return Err(invalid(format!(
            "a reply for id {} to the request with id {id}",
            reply.id
        )));
    }
    match (reply.result, reply.error) {
        (Some(result), None) => Ok(Outcome::Result(result)),
        (None, Some(error)) => Ok(Outcome::Error(error)),
        _ => Err(invalid(
            "a reply must have exactly one of result and error".to_string(),
        )),
    }
}
