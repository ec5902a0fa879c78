//! [`FramedService`]: a [`Protocol`] served on every connection — read a
//! frame, answer it, write the reply, and flush only when no further
//! request is already waiting.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::deadline;
use super::protocol::{Answer, Protocol, RequestContext};
use crate::frame::{Codec, FrameError, FrameReader};
use crate::limits::TokenBucket;
use crate::metrics::{LocalRequestMetrics, RequestMetrics};
use crate::trace::RequestSpan;
use crate::{Conn, Handler, RequestErrorKind};

/// Replies waiting in the output buffer are written once they pass this
/// size, even when more requests are buffered, so a long pipelined burst
/// never holds more than this in memory.
const OUT_HIGH_WATER: usize = 64 * 1024;

/// Turns a [`Protocol`] into a [`Handler`]: the request/response loop.
///
/// On each connection: read a frame, call [`Protocol::answer`], encode the
/// reply. Replies are flushed only when no further complete request is
/// already buffered, so pipelined requests are answered in order with one
/// write per burst. It counts `syncnet_requests_total`,
/// `syncnet_request_errors_total{kind}` and
/// `syncnet_request_duration_seconds` (`docs/reference.md`, "Metrics"),
/// limits requests per second per connection, and gives each request a
/// deadline.
///
/// Only frame errors (too large, truncated, malformed framing) close the
/// connection (reason `error`, after [`Protocol::bad_frame`]'s last words),
/// besides an [`Answer::Close`](super::Answer::Close) of your own; every
/// other refusal is answered and the connection stays open.
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use syncnet::frame::Lines;
/// use syncnet::service::{Answer, FramedService, Protocol, RequestContext};
///
/// /// Answers every line with itself in upper case.
/// struct Shout;
/// impl Protocol for Shout {
///     type Codec = Lines;
///     type Session = ();
///     fn codec(&self) -> Lines { Lines::new(1024) }
///     fn answer(&self, _: &mut (), line: &[u8], _: &RequestContext, reply: &mut Vec<u8>) -> Answer {
///         reply.extend(line.iter().map(u8::to_ascii_uppercase));
///         Answer::Reply
///     }
/// }
///
/// let server = syncnet::Server::builder().listen("127.0.0.1:0").admin(None).build()?;
/// let handle = server.spawn(FramedService::new(Shout).request_timeout(Duration::from_secs(1)))?;
/// let mut client = syncnet::Client::connect(handle.local_addr(), Duration::from_secs(5))?;
/// client.write_all(b"hello\nworld\n")?;
/// let mut reply = [0u8; 12];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"HELLO\nWORLD\n");
/// handle.shutdown();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FramedService<P> {
    protocol: P,
    /// Requests per second per connection (burst of the same size); 0 = off.
    request_rate: u32,
    /// Per-request deadline, from the moment the frame was read; zero = none.
    request_timeout: Duration,
}

impl<P: Protocol> FramedService<P> {
    /// Serves `protocol`, with no request-rate limit and no deadline.
    pub fn new(protocol: P) -> FramedService<P> {
        FramedService {
            protocol,
            request_rate: 0,
            request_timeout: Duration::ZERO,
        }
    }

    /// At most `per_second` requests per second per connection, in bursts
    /// of up to `per_second`; the excess is answered with
    /// [`Protocol::busy`] (kind `rate_limit`). 0 turns the limit off (the
    /// default).
    pub fn request_rate(mut self, per_second: u32) -> Self {
        self.request_rate = per_second;
        self
    }

    /// Each request must be answered within `timeout` of its frame being
    /// read; one that is not gets [`Protocol::busy`] (kind `deadline`)
    /// instead of its reply. The handler is not interrupted: it runs to its
    /// end and its reply is dropped, so a handler that waits (on a lock, on
    /// another service) should bound the wait by the time left. Calls made
    /// inside the handler can read the time left
    /// ([`RequestContext::time_left`],
    /// [`time_left`](super::time_left)). Zero turns deadlines off (the
    /// default).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The protocol served.
    pub fn protocol(&self) -> &P {
        &self.protocol
    }
}

impl<P: Protocol> FramedService<P> {
    /// Runs the request/response loop on any stream, e.g. a wrapper around
    /// a [`Conn`] that a handler builds, or an in-memory stream in a test.
    /// Requests are counted in no server's metrics (a [`Conn`] handed to
    /// the service as a [`Handler`] counts in its server's), and the
    /// [`RequestContext`] has connection id 0 and peer `0.0.0.0:0`.
    ///
    /// # Errors
    /// As the handler: a frame error or an I/O error ends the loop.
    pub fn serve_stream<S: Read + Write>(&self, stream: &mut S) -> io::Result<()> {
        let detached = RequestMetrics::detached();
        let peer = SocketAddr::from(([0, 0, 0, 0], 0));
        self.serve_on(stream, 0, peer, &detached)
    }

    /// The loop, counting into `metrics`.
    fn serve_on<S: Read + Write>(
        &self,
        stream: &mut S,
        conn_id: u64,
        peer: SocketAddr,
        metrics: &RequestMetrics,
    ) -> io::Result<()> {
        let mut connection = Connection {
            service: self,
            session: P::Session::default(),
            bucket: (self.request_rate > 0).then(|| {
                let n = u64::from(self.request_rate);
                TokenBucket::new(n, n, Instant::now())
            }),
            reply: Vec::new(),
            out: Vec::new(),
            counts: metrics.local(),
            metrics,
            conn_id,
            peer,
        };
        let mut requests = FrameReader::new(stream, self.protocol.codec());
        let result = connection.serve(&mut requests);
        connection.counts.publish(metrics);
        result
    }
}

impl<P: Protocol> Handler for FramedService<P> {
    fn handle(&self, conn: &mut Conn) -> io::Result<()> {
        let metrics = conn.metrics_handle();
        let (conn_id, peer) = (conn.id(), conn.peer());
        self.serve_on(conn, conn_id, peer, &metrics.requests)
    }
}

/// One connection's state while it is served.
struct Connection<'a, P: Protocol> {
    service: &'a FramedService<P>,
    conn_id: u64,
    peer: SocketAddr,
    /// Where `counts` are published.
    metrics: &'a RequestMetrics,
    session: P::Session,
    /// The request-rate limit; `None` when off.
    bucket: Option<TokenBucket>,
    /// One reply's payload, reused.
    reply: Vec<u8>,
    /// Encoded replies not yet written, reused.
    out: Vec<u8>,
    /// This connection's unpublished counts.
    counts: LocalRequestMetrics,
}

impl<P: Protocol> Connection<'_, P> {
    fn serve<S: Read + Write>(
        &mut self,
        requests: &mut FrameReader<S, P::Codec>,
    ) -> io::Result<()> {
        let (conn_id, peer) = (self.conn_id, self.peer);
        let protocol = &self.service.protocol;
        let timeout = self.service.request_timeout;
        // When the next request was already buffered as the last one was
        // answered (and no write came between): the time that answer was
        // done, which is when the next one counts as received. One clock
        // read per pipelined request instead of two.
        let mut buffered_at: Option<Instant> = None;
        loop {
            let frame = match requests.read_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return self.write_out(requests),
                Err(FrameError::Io(e)) => {
                    // Replies already encoded still go out when they can.
                    let _ = self.write_out(requests);
                    return Err(e);
                }
                Err(error) => return self.refuse_frame(requests, error),
            };
            let received = buffered_at.take().unwrap_or_else(Instant::now);
            let cx = RequestContext {
                conn_id,
                peer,
                received,
                deadline: (!timeout.is_zero()).then(|| received + timeout),
            };
            self.reply.clear();
            let span = RequestSpan::begin(conn_id, peer, received, P::RPC_SYSTEM);
            // A refusal (rate limit, deadline) is counted as it happens.
            let mut refused = None;
            let answer = if self
                .bucket
                .as_mut()
                .is_some_and(|bucket| !bucket.try_take(received))
            {
                self.counts.error(RequestErrorKind::RateLimit);
                refused = Some(RequestErrorKind::RateLimit);
                protocol.busy(
                    &mut self.session,
                    frame,
                    RequestErrorKind::RateLimit,
                    &mut self.reply,
                )
            } else {
                let answer = {
                    let _deadline = deadline::enter(cx.deadline);
                    protocol.answer(&mut self.session, frame, &cx, &mut self.reply)
                };
                if cx.deadline.is_some_and(|d| Instant::now() > d) {
                    self.reply.clear();
                    self.counts.error(RequestErrorKind::Deadline);
                    refused = Some(RequestErrorKind::Deadline);
                    protocol.busy(
                        &mut self.session,
                        frame,
                        RequestErrorKind::Deadline,
                        &mut self.reply,
                    )
                } else {
                    answer
                }
            };
            let done = Instant::now();
            self.counts
                .request(done.saturating_duration_since(received).as_secs_f64());
            if let Answer::Error(kind) = answer {
                self.counts.error(kind);
            }
            span.end(match answer {
                Answer::Error(kind) => Some(kind.as_str()),
                _ => refused.map(RequestErrorKind::as_str),
            });
            let send = match answer {
                Answer::Reply | Answer::Error(_) => true,
                Answer::Close => !self.reply.is_empty(),
                Answer::NoReply => false,
            };
            if send {
                requests
                    .codec()
                    .encode(&self.reply, &mut self.out)
                    .map_err(io::Error::from)?;
            }
            if answer == Answer::Close {
                return self.write_out(requests);
            }
            if !requests.has_buffered_frame() || self.out.len() >= OUT_HIGH_WATER {
                self.write_out(requests)?;
            } else {
                buffered_at = Some(done);
            }
        }
    }

    /// Publishes the request counts, then writes and flushes the encoded
    /// replies. Counts go first so a client that has its reply and then
    /// scrapes `/metrics` sees its request counted.
    fn write_out<S: Read + Write>(
        &mut self,
        requests: &mut FrameReader<S, P::Codec>,
    ) -> io::Result<()> {
        self.counts.publish(self.metrics);
        if self.out.is_empty() {
            return Ok(());
        }
        let stream = requests.get_mut();
        let written = stream.write_all(&self.out).and_then(|()| stream.flush());
        self.out.clear();
        written
    }

    /// A frame that could not be read: counts it, sends the protocol's last
    /// words, and ends the connection with the error.
    #[inline(never)]
    fn refuse_frame<S: Read + Write>(
        &mut self,
        requests: &mut FrameReader<S, P::Codec>,
        error: FrameError,
    ) -> io::Result<()> {
        let kind = match error {
            FrameError::TooLarge { .. } => RequestErrorKind::FrameTooLarge,
            _ => RequestErrorKind::Malformed,
        };
        self.counts.request(0.0);
        self.counts.error(kind);
        self.reply.clear();
        self.service.protocol.bad_frame(&error, &mut self.reply);
        if !self.reply.is_empty() {
            // A reply too large for the codec is dropped: the close says enough.
            let _ = requests.codec().encode(&self.reply, &mut self.out);
        }
        let _ = self.write_out(requests);
        Err(error.into())
    }
}
