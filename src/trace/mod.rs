//! Distributed tracing: W3C trace context carried through requests, and
//! OpenTelemetry spans exported over OTLP/HTTP — with no async runtime.
//!
//! | file | what it holds |
//! | --- | --- |
//! | `context.rs` | [`TraceParent`]: parsing and writing `traceparent`, fresh ids |
//! | `current.rs` | the thread's current request span (one request at a time per worker) |
//! | `client.rs` | [`ClientSpan`]: a call made to another service |
//! | `span.rs` | a finished span |
//! | `otlp.rs` | OTLP's protobuf encoding of a batch of spans |
//! | `export.rs` | [`Tracer`]: the bounded queue and the export thread (OTLP/HTTP over `ureq`) |
//!
//! ## How a request is traced
//!
//! [`FramedService`](crate::service::FramedService) opens a *server span*
//! for each request. The protocol hands it the request's trace context
//! from inside [`Protocol::answer`](crate::service::Protocol::answer), as
//! soon as it has read the request, with
//! [`RequestContext::trace`](crate::service::RequestContext::trace): the
//! span is named after the method, and continues the caller's trace when
//! the `traceparent` is valid (a missing or malformed one starts a new
//! trace; it is never an error). Calls the handler makes open a
//! [`ClientSpan`], a child of the server span, and send
//! [`ClientSpan::traceparent`] on in their own request.
//!
//! With tracing off (no [`Tracer`] installed) nothing is recorded, but an
//! incoming `traceparent` and `tracestate` are still passed on by
//! [`ClientSpan`], so a chain through a service that does not export still
//! forms one trace. This path allocates nothing.
//!
//! What comes from a peer is bounded before it is kept: a `tracestate` to
//! W3C's 32 members and 512 bytes, a span name to 128 bytes
//! (`context.rs`).
//!
//! Log lines written while a request is served carry `trace_id` and
//! `span_id` (the server span's; with tracing off, the caller's).

mod client;
mod context;
mod current;
mod export;
mod otlp;
mod span;

pub use client::ClientSpan;
pub use context::{Hex, TraceParent};
pub use current::{TracerGuard, current, install};
pub use export::{ENDPOINT_VARS, TraceOptions, Tracer};

pub(crate) use current::{RequestSpan, log_ids};
pub(crate) use span::{ConnSummary, record_connection};
