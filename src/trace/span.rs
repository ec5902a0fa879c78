//! [`SpanRecord`]: one finished span as a worker hands it to the export
//! thread — plain data, cheap to build (`otlp.rs` encodes it there).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

/// What a span is: OpenTelemetry's kinds, as syncnet uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A request answered (or a connection served) by this process.
    Server,
    /// A call this process made to another.
    Client,
}

/// One attribute value.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A number, e.g. `syncnet.conn_id`.
    Int(i64),
    /// A fixed text, e.g. `syncnet.close_reason`.
    Static(&'static str),
}

/// One finished span.
#[derive(Debug)]
pub(crate) struct SpanRecord {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The parent span; `None` for a trace's root.
    pub parent: Option<[u8; 8]>,
    /// The parent is in another process (came in with a `traceparent`).
    pub parent_remote: bool,
    pub kind: Kind,
    pub name: String,
    pub start: SystemTime,
    pub end: SystemTime,
    /// The peer: `network.peer.address` and `network.peer.port`.
    pub peer: Option<SocketAddr>,
    /// `rpc.system`, and then `rpc.method` (the span's name).
    pub rpc_system: Option<&'static str>,
    /// `syncnet.conn_id`.
    pub conn_id: Option<u64>,
    /// Any others (empty, and not allocated, for request spans).
    pub attributes: Vec<(&'static str, Value)>,
    /// Status error with this description; `None`: status unset (ok).
    pub error: Option<Cow<'static, str>>,
}

/// The wall-clock time at which `instant` was, by the clocks read now.
pub(crate) fn wall_clock(instant: Instant, now: Instant, wall_now: SystemTime) -> SystemTime {
    wall_now
        .checked_sub(now.saturating_duration_since(instant))
        .unwrap_or(wall_now)
}

/// What a connection span says about the connection it covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnSummary {
    pub conn_id: u64,
    pub peer: SocketAddr,
    /// How long the connection was served (its span ends now).
    pub duration: std::time::Duration,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// The close reason (`eof`, `idle_timeout`, ...).
    pub reason: &'static str,
    /// The connection ended in an error or a panic: status error.
    pub failed: bool,
}

/// Records one `connection` span (kind server, the root of a trace of its
/// own) for a connection that just closed.
pub(crate) fn record_connection(tracer: &super::Tracer, conn: ConnSummary) {
    let to_i64 = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let end = SystemTime::now();
    tracer.submit(SpanRecord {
        trace_id: super::context::new_trace_id(),
        span_id: super::context::new_span_id(),
        parent: None,
        parent_remote: false,
        kind: Kind::Server,
        name: "connection".to_string(),
        start: end.checked_sub(conn.duration).unwrap_or(end),
        end,
        peer: Some(conn.peer),
        rpc_system: None,
        conn_id: Some(conn.conn_id),
        attributes: vec![
            ("syncnet.bytes_in", to_i64(conn.bytes_in)),
            ("syncnet.bytes_out", to_i64(conn.bytes_out)),
            ("syncnet.close_reason", Value::Static(conn.reason)),
        ],
        error: conn.failed.then_some(Cow::Borrowed(conn.reason)),
    });
}
