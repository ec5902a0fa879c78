//! The thread's tracing state: the installed [`Tracer`] (if any) and the
//! request being answered. A worker answers one request at a time, so a
//! thread-local is the natural carrier (as for the request's deadline).

use std::borrow::Cow;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use super::context::{TraceParent, new_span_id, new_trace_id, push_tracestate, span_name};
use super::export::Tracer;
use super::span::{Kind, SpanRecord, wall_clock};

/// The tracing state of one thread.
struct State {
    tracer: Option<Tracer>,
    request: Option<Active>,
    /// The incoming `tracestate`, while `request.has_tracestate` (a buffer
    /// reused from one request to the next).
    tracestate: String,
}

/// The request being answered on this thread.
struct Active {
    /// What calls made now continue: with a tracer, this request's span
    /// (its trace, its id); without, the incoming `traceparent`, if any.
    context: Option<TraceParent>,
    /// With a tracer: whether this span is recorded (the caller's sampled
    /// flag, or a new trace).
    recording: bool,
    /// The caller's span, when the request came with a valid `traceparent`.
    parent: Option<[u8; 8]>,
    has_tracestate: bool,
    name: String,
    system: &'static str,
    start: Instant,
    conn_id: u64,
    peer: SocketAddr,
}

thread_local! {
    static STATE: RefCell<State> = const {
        RefCell::new(State { tracer: None, request: None, tracestate: String::new() })
    };
}

/// Installs `tracer` on this thread until the guard is dropped: requests
/// served and [`ClientSpan`](super::ClientSpan)s opened on it are recorded
/// and exported. The previous one (usually none) comes back afterwards.
pub fn install(tracer: Tracer) -> TracerGuard {
    let previous = STATE.with(|s| s.borrow_mut().tracer.replace(tracer));
    TracerGuard { previous }
}

/// Uninstalls the tracer [`install`] put on this thread when dropped.
#[derive(Debug)]
#[must_use = "the tracer is uninstalled when the guard is dropped"]
pub struct TracerGuard {
    previous: Option<Tracer>,
}

impl Drop for TracerGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        STATE.with(|s| s.borrow_mut().tracer = previous);
    }
}

/// The trace context a call made now continues: inside a request, its
/// server span (with tracing on) or the `traceparent` it came with (off);
/// `None` outside a request, or off without an incoming `traceparent`.
///
/// ```
/// // Outside a request there is no current trace context.
/// assert_eq!(syncnet::trace::current(), None);
/// ```
pub fn current() -> Option<TraceParent> {
    STATE.with(|s| s.borrow().request.as_ref().and_then(|a| a.context))
}

/// The installed tracer, if any.
pub(super) fn tracer() -> Option<Tracer> {
    STATE.with(|s| s.borrow().tracer.clone())
}

/// The incoming `tracestate` of the request being answered, if it had one.
pub(super) fn tracestate() -> Option<String> {
    STATE.with(|s| {
        let s = s.borrow();
        s.request
            .as_ref()
            .filter(|a| a.has_tracestate)
            .map(|_| s.tracestate.clone())
    })
}

/// The ids for a log line written now: the current context, if any. Never
/// panics, also when called while the state is in use.
pub(crate) fn log_ids() -> Option<TraceParent> {
    STATE
        .try_with(|s| {
            s.try_borrow()
                .ok()
                .and_then(|s| s.request.as_ref().and_then(|a| a.context))
        })
        .ok()
        .flatten()
}

/// The server span of the request being answered on this thread, from
/// [`begin`](RequestSpan::begin) to [`end`](RequestSpan::end) (or drop,
/// when the handler panics: then nothing is recorded).
pub(crate) struct RequestSpan(());

impl RequestSpan {
    /// A request received at `received` on connection `conn_id` from
    /// `peer`: with a tracer installed, a new span in a new trace (until
    /// [`continue_trace`](RequestSpan::continue_trace)); without, only a
    /// place for an incoming context.
    pub(crate) fn begin(
        conn_id: u64,
        peer: SocketAddr,
        received: Instant,
        system: &'static str,
    ) -> RequestSpan {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let recording = s.tracer.is_some();
            let context = recording.then(|| TraceParent {
                trace_id: new_trace_id(),
                span_id: new_span_id(),
                sampled: true,
            });
            let name = match s.request.take() {
                Some(previous) => previous.name,
                None => String::new(),
            };
            s.request = Some(Active {
                context,
                recording,
                parent: None,
                has_tracestate: false,
                name,
                system,
                start: received,
                conn_id,
                peer,
            });
        });
        RequestSpan(())
    }

    /// What [`RequestContext::trace`](crate::service::RequestContext::trace)
    /// does: names the span `method` and continues the caller's trace when
    /// `traceparent` is valid.
    pub(crate) fn continue_trace(
        method: &str,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
    ) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let State {
                tracer,
                request,
                tracestate: buffer,
            } = &mut *s;
            let Some(active) = request.as_mut() else {
                return;
            };
            let incoming = traceparent.and_then(TraceParent::parse);
            if let (Some(_), Some(state)) = (incoming, tracestate) {
                // Bounded: a peer's megabyte is not copied into every call.
                buffer.clear();
                push_tracestate(buffer, state);
                active.has_tracestate = !buffer.is_empty();
            }
            if tracer.is_none() {
                active.context = incoming;
                return;
            }
            active.name.clear();
            active.name.push_str(span_name(method));
            if let (Some(parent), Some(own)) = (incoming, active.context) {
                active.context = Some(TraceParent {
                    trace_id: parent.trace_id,
                    span_id: own.span_id,
                    sampled: parent.sampled,
                });
                active.parent = Some(parent.span_id);
                active.recording = parent.sampled;
            }
        });
    }

    /// The request was answered (`error`: its status is error, with this
    /// description): records the span when it is recorded.
    pub(crate) fn end(self, error: Option<&'static str>) {
        STATE.with(|s| {
            let mut s = s.borrow_mut();
            let State {
                tracer, request, ..
            } = &mut *s;
            let Some(active) = request.as_mut() else {
                return;
            };
            let context = active.context.take();
            active.has_tracestate = false;
            let recording = std::mem::replace(&mut active.recording, false);
            let (Some(tracer), Some(context), true) = (tracer.as_ref(), context, recording) else {
                return;
            };
            let (now, wall_now) = (Instant::now(), SystemTime::now());
            let name = if active.name.is_empty() {
                "request".to_string()
            } else {
                std::mem::take(&mut active.name)
            };
            tracer.submit(SpanRecord {
                trace_id: context.trace_id,
                span_id: context.span_id,
                parent: active.parent,
                parent_remote: active.parent.is_some(),
                kind: Kind::Server,
                start: wall_clock(active.start, now, wall_now),
                end: wall_now,
                peer: Some(active.peer),
                rpc_system: Some(active.system),
                conn_id: Some(active.conn_id),
                attributes: Vec::new(),
                name,
                error: error.map(Cow::Borrowed),
            });
        });
    }
}

impl Drop for RequestSpan {
    fn drop(&mut self) {
        let _ = STATE.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut()
                && let Some(active) = s.request.as_mut()
            {
                active.context = None;
                active.recording = false;
                active.has_tracestate = false;
            }
        });
    }
}
