//! [`SpanRecord`]: one finished span as a worker hands it to the export
//! thread — plain data, cheap to build — and its conversion into the
//! OpenTelemetry SDK's `SpanData`, done on the export thread.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

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
    /// A fixed text, e.g. `rpc.system`.
    Static(&'static str),
    /// A text made at run time.
    Owned(String),
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

impl SpanRecord {
    /// The SDK's form of this span, for the OTLP exporter.
    pub(crate) fn into_span_data(self, scope: &InstrumentationScope) -> SpanData {
        let mut attributes = Vec::with_capacity(self.attributes.len() + 2);
        if let Some(peer) = self.peer {
            attributes.push(KeyValue::new("network.peer.address", peer.ip().to_string()));
            attributes.push(KeyValue::new("network.peer.port", i64::from(peer.port())));
        }
        for (key, value) in self.attributes {
            attributes.push(match value {
                Value::Int(n) => KeyValue::new(key, n),
                Value::Static(s) => KeyValue::new(key, s),
                Value::Owned(s) => KeyValue::new(key, s),
            });
        }
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(self.trace_id),
                SpanId::from_bytes(self.span_id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: self.parent.map_or(SpanId::INVALID, SpanId::from_bytes),
            parent_span_is_remote: self.parent_remote,
            span_kind: match self.kind {
                Kind::Server => SpanKind::Server,
                Kind::Client => SpanKind::Client,
            },
            name: Cow::Owned(self.name),
            start_time: self.start,
            end_time: self.end,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: match self.error {
                Some(description) => Status::Error { description },
                None => Status::Unset,
            },
            instrumentation_scope: scope.clone(),
        }
    }
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
        attributes: vec![
            ("syncnet.conn_id", to_i64(conn.conn_id)),
            ("syncnet.bytes_in", to_i64(conn.bytes_in)),
            ("syncnet.bytes_out", to_i64(conn.bytes_out)),
            ("syncnet.close_reason", Value::Static(conn.reason)),
        ],
        error: conn.failed.then_some(Cow::Borrowed(conn.reason)),
    });
}
