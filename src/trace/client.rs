//! [`ClientSpan`]: one call to another service, as a child of the current
//! request's span, and the `traceparent` to send with it.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::context::{TraceParent, new_span_id, new_trace_id, span_name};
use super::current;
use super::export::Tracer;
use super::span::{Kind, SpanRecord, wall_clock};

/// A call made to another service: a client span, child of the current
/// request's span (or the root of a new trace outside a request), recorded
/// when it is dropped. Put [`traceparent`](ClientSpan::traceparent) (and
/// [`tracestate`](ClientSpan::tracestate)) in the call's request so the
/// service called continues the trace.
///
/// With tracing off, nothing is recorded and `traceparent` is the current
/// request's incoming one, unchanged.
///
/// ```
/// use syncnet::trace::ClientSpan;
///
/// // Tracing off, outside a request: nothing to pass on.
/// let mut span = ClientSpan::start("jsonrpc", "add");
/// assert_eq!(span.traceparent(), None);
/// span.set_error("upstream failure");
/// ```
#[derive(Debug)]
pub struct ClientSpan {
    /// What to send on.
    send: Option<TraceParent>,
    /// Set when the span is recorded.
    recording: Option<Box<Recording>>,
}

#[derive(Debug)]
struct Recording {
    tracer: Tracer,
    parent: Option<[u8; 8]>,
    name: String,
    system: &'static str,
    start: Instant,
    peer: Option<SocketAddr>,
    error: Option<Cow<'static, str>>,
}

impl ClientSpan {
    /// Opens a span for calling `method` (its name, and `rpc.method`) of an
    /// `rpc.system` such as `jsonrpc`.
    pub fn start(system: &'static str, method: &str) -> ClientSpan {
        let parent = current::current();
        let tracer = match parent {
            // An unsampled caller: pass its context on, record nothing.
            Some(parent) if !parent.sampled => None,
            _ => current::tracer(),
        };
        let Some(tracer) = tracer else {
            return ClientSpan {
                send: parent,
                recording: None,
            };
        };
        let span_id = new_span_id();
        let send = match parent {
            Some(parent) => parent.with_span(span_id),
            None => TraceParent {
                trace_id: new_trace_id(),
                span_id,
                sampled: true,
            },
        };
        ClientSpan {
            send: Some(send),
            recording: Some(Box::new(Recording {
                tracer,
                parent: parent.map(|p| p.span_id),
                name: span_name(method).to_string(),
                system,
                start: Instant::now(),
                peer: None,
                error: None,
            })),
        }
    }

    /// The `traceparent` to send with the call; `None` with tracing off
    /// and no incoming one.
    pub fn traceparent(&self) -> Option<TraceParent> {
        self.send
    }

    /// The incoming `tracestate` to send on with the call, if the request
    /// being answered had one.
    pub fn tracestate(&self) -> Option<String> {
        current::tracestate()
    }

    /// Whether this span is recorded (tracing on, trace sampled).
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// The service called (`network.peer.address`, `network.peer.port`).
    pub fn set_peer(&mut self, peer: SocketAddr) {
        if let Some(r) = &mut self.recording {
            r.peer = Some(peer);
        }
    }

    /// Marks the call failed: the span's status is error with `description`.
    pub fn set_error(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Some(r) = &mut self.recording {
            r.error = Some(description.into());
        }
    }
}

impl Drop for ClientSpan {
    /// Ends the span and queues it for export.
    fn drop(&mut self) {
        let (Some(r), Some(send)) = (self.recording.take(), self.send) else {
            return;
        };
        let r = *r;
        let (now, wall_now) = (Instant::now(), SystemTime::now());
        r.tracer.submit(SpanRecord {
            trace_id: send.trace_id,
            span_id: send.span_id,
            parent: r.parent,
            parent_remote: false,
            kind: Kind::Client,
            start: wall_clock(r.start, now, wall_now),
            end: wall_now,
            peer: r.peer,
            rpc_system: Some(r.system),
            conn_id: None,
            attributes: Vec::new(),
            name: r.name,
            error: r.error,
        });
    }
}
