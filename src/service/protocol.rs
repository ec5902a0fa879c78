//! [`Protocol`]: what a request/response protocol tells
//! [`FramedService`](super::FramedService): how its frames are cut, how one
//! request is answered, and how refusals are worded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::RequestErrorKind;
use crate::frame::{Codec, FrameError};

/// A request/response protocol, served by [`FramedService`](super::FramedService).
///
/// Implement [`answer`](Protocol::answer); override [`busy`](Protocol::busy)
/// and [`bad_frame`](Protocol::bad_frame) to answer refusals in the
/// protocol's own words instead of a silent close.
///
/// One value serves every connection, from many worker threads at once
/// (`answer` takes `&self`): state shared by all clients goes in its fields,
/// behind a `Mutex` or atomics; what one connection remembers goes in its
/// [`Session`](Protocol::Session). Serve it with
/// [`FramedService::new`](super::FramedService::new) (the crate root's
/// "Your own protocol" runs one end to end).
///
/// ```
/// use syncnet::frame::Lines;
/// use syncnet::service::{Answer, Protocol, RequestContext};
/// use syncnet::RequestErrorKind;
///
/// /// `ADD a b` → the sum; anything else → `ERR ...`.
/// struct Adder;
///
/// impl Protocol for Adder {
///     type Codec = Lines;
///     type Session = ();
///
///     fn codec(&self) -> Lines {
///         Lines::new(1024)
///     }
///
///     fn answer(&self, _: &mut (), request: &[u8], _: &RequestContext, reply: &mut Vec<u8>) -> Answer {
///         let text = String::from_utf8_lossy(request);
///         let mut words = text.split_whitespace();
///         let sum = match (words.next(), words.next(), words.next()) {
///             (Some("ADD"), Some(a), Some(b)) => a.parse::<i64>().ok().zip(b.parse::<i64>().ok()),
///             _ => None,
///         };
///         match sum.and_then(|(a, b)| a.checked_add(b)) {
///             Some(sum) => {
///                 reply.extend_from_slice(sum.to_string().as_bytes());
///                 Answer::Reply
///             }
///             None => {
///                 reply.extend_from_slice(b"ERR usage: ADD <int> <int>");
///                 Answer::Error(RequestErrorKind::Malformed)
///             }
///         }
///     }
///
///     fn busy(&self, _: &mut (), _: &[u8], _: RequestErrorKind, reply: &mut Vec<u8>) -> Answer {
///         reply.extend_from_slice(b"ERR busy, retry later");
///         Answer::Reply
///     }
/// }
/// ```
pub trait Protocol: Send + Sync + 'static {
    /// How frames are cut (e.g. [`Lines`](crate::frame::Lines),
    /// [`LengthPrefixed`](crate::frame::LengthPrefixed)).
    type Codec: Codec;
    /// What one connection remembers between requests (e.g. a transaction
    /// in progress); `()` for none. Created with `Default` per connection.
    type Session: Default;

    /// The `rpc.system` attribute of this protocol's request spans
    /// (OpenTelemetry's RPC conventions, e.g. `jsonrpc`); see
    /// [`RequestContext::trace`]. Defaults to `syncnet`.
    const RPC_SYSTEM: &'static str = "syncnet";

    /// The codec for a new connection.
    fn codec(&self) -> Self::Codec;

    /// Answers one request: writes the reply frame's payload into `reply`
    /// (empty on entry, reused between requests) and says what to do with it.
    fn answer(
        &self,
        session: &mut Self::Session,
        request: &[u8],
        cx: &RequestContext,
        reply: &mut Vec<u8>,
    ) -> Answer;

    /// The reply to a request that was not answered: `why` is
    /// [`RateLimit`](RequestErrorKind::RateLimit) (the connection's request
    /// rate was exceeded; the handler did not run) or
    /// [`Deadline`](RequestErrorKind::Deadline) (the deadline passed before
    /// or during the handler; its reply was dropped). The request is counted
    /// under `why` whatever this returns. The default closes the connection
    /// without a word.
    fn busy(
        &self,
        session: &mut Self::Session,
        request: &[u8],
        why: RequestErrorKind,
        reply: &mut Vec<u8>,
    ) -> Answer {
        let _ = (session, request, why, reply);
        Answer::Close
    }

    /// The last words to a peer whose frame could not be read (too large,
    /// truncated, malformed): write them into `reply`. The connection then
    /// closes (reason `error`) whatever is written; the default writes
    /// nothing. A reply the codec cannot encode (e.g. over its limit) is
    /// dropped. For [`Lines`](crate::frame::Lines) the one error worth
    /// answering is [`FrameError::TooLarge`]: a truncated line means the
    /// peer already closed its side.
    fn bad_frame(&self, error: &FrameError, reply: &mut Vec<u8>) {
        let _ = (error, reply);
    }
}

/// What [`Protocol::answer`] (or [`Protocol::busy`]) wants done with the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Send the reply.
    Reply,
    /// Send the reply, an error answer, and count it under this kind
    /// (`request_errors_total{kind}`): usually
    /// [`Malformed`](RequestErrorKind::Malformed) or
    /// [`Handler`](RequestErrorKind::Handler).
    Error(RequestErrorKind),
    /// Send nothing (e.g. a notification that expects no reply).
    NoReply,
    /// Send the reply if it is not empty, then close the connection (e.g. `QUIT`).
    Close,
}

/// What a handler knows about the request it answers.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub(super) conn_id: u64,
    pub(super) peer: SocketAddr,
    pub(super) received: Instant,
    pub(super) deadline: Option<Instant>,
}

impl RequestContext {
    /// The connection's id (`conn_id` in logs).
    pub fn conn_id(&self) -> u64 {
        self.conn_id
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// When the request was received: when its frame was read or, for a
    /// pipelined request already buffered when the one before it was
    /// answered, when that answer was done (one clock read serves both).
    pub fn received(&self) -> Instant {
        self.received
    }

    /// When the answer is due (received + the request timeout); `None`
    /// without a request timeout.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (zero once it passed); `None` without
    /// a request timeout.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Hands the layer this request's trace context, from inside
    /// [`Protocol::answer`] as soon as the request is read (before any call
    /// the handler makes): `method` names the request's span (and its
    /// `rpc.method`); `traceparent` and `tracestate` are the W3C values
    /// the request carried, if any. A valid `traceparent` makes the span a
    /// child of the caller's; a missing or malformed one leaves it the root
    /// of a new trace (never an error). With tracing off, the incoming
    /// values are still what calls made inside the handler pass on
    /// ([`ClientSpan`](crate::trace::ClientSpan)). A protocol that never
    /// calls it gets spans named `request` in new traces.
    ///
    /// ```
    /// use syncnet::frame::Lines;
    /// use syncnet::service::{Answer, Protocol, RequestContext};
    ///
    /// /// `TRACEPARENT METHOD`: answers with the trace context calls would carry.
    /// struct Traced;
    /// impl Protocol for Traced {
    ///     type Codec = Lines;
    ///     type Session = ();
    ///     fn codec(&self) -> Lines { Lines::new(1024) }
    ///     fn answer(&self, _: &mut (), line: &[u8], cx: &RequestContext, reply: &mut Vec<u8>) -> Answer {
    ///         let text = String::from_utf8_lossy(line);
    ///         let (traceparent, method) = text.split_once(' ').unwrap_or(("", &text));
    ///         cx.trace(method, Some(traceparent), None);
    ///         let current = syncnet::trace::current().map(|p| p.to_string());
    ///         reply.extend_from_slice(current.unwrap_or_default().as_bytes());
    ///         Answer::Reply
    ///     }
    /// }
    /// let service = syncnet::service::FramedService::new(Traced);
    /// # let _ = service;
    /// ```
    pub fn trace(&self, method: &str, traceparent: Option<&str>, tracestate: Option<&str>) {
        crate::trace::RequestSpan::continue_trace(method, traceparent, tracestate);
    }
}
