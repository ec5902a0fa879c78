//! [`Tracer`]: where finished spans go. Workers hand spans to a bounded
//! queue with `try_send` — a full queue drops the span and counts it in
//! `syncnet_trace_spans_dropped_total`, it never blocks — and one export
//! thread sends them in batches to an OTLP/HTTP (protobuf) endpoint with
//! `opentelemetry-otlp`'s exporter over [`UreqClient`], a blocking HTTP
//! client: no async runtime anywhere.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use opentelemetry::InstrumentationScope;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanExporter;
use prometheus::IntCounter;

use super::span::SpanRecord;
use crate::Error;

/// The environment variables that name the endpoint when no flag does,
/// first match wins.
pub const ENDPOINT_VARS: [&str; 2] = ["SYNCNET_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"];

/// How tracing is set up: where spans go and how many may wait.
///
/// ```
/// use std::time::Duration;
/// use syncnet::trace::TraceOptions;
///
/// let options = TraceOptions::new("http://127.0.0.1:4318")
///     .service_name("billing")
///     .queue(4096)
///     .export_timeout(Duration::from_secs(5));
/// # drop(options);
/// ```
#[derive(Debug, Clone)]
pub struct TraceOptions {
    endpoint: String,
    service_name: String,
    queue: usize,
    batch: usize,
    interval: Duration,
    export_timeout: Duration,
}

impl TraceOptions {
    /// Spans go to `endpoint`, an OTLP/HTTP base URL such as
    /// `http://127.0.0.1:4318`: they are POSTed to `endpoint/v1/traces`.
    /// Service name `syncnet` (or `OTEL_SERVICE_NAME`), a queue of 2048
    /// spans, batches of at most 512 every 500 ms, a 5 s export timeout.
    pub fn new(endpoint: impl Into<String>) -> TraceOptions {
        TraceOptions {
            endpoint: endpoint.into(),
            service_name: std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "syncnet".to_string()),
            queue: 2048,
            batch: 512,
            interval: Duration::from_millis(500),
            export_timeout: Duration::from_secs(5),
        }
    }

    /// The options for an endpoint given by a flag, else by
    /// `SYNCNET_OTLP_ENDPOINT`, else by `OTEL_EXPORTER_OTLP_ENDPOINT`;
    /// `None` (tracing off) when none is set.
    pub fn from_flag_or_env(flag: Option<&str>) -> Option<TraceOptions> {
        let from_env = || {
            ENDPOINT_VARS
                .iter()
                .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        };
        flag.map(str::to_string)
            .or_else(from_env)
            .map(TraceOptions::new)
    }

    /// The `service.name` resource attribute. Defaults to
    /// `OTEL_SERVICE_NAME`, else `syncnet`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    /// The service name only when `OTEL_SERVICE_NAME` does not set one (for
    /// a program's own default, e.g. an example's name).
    pub fn default_service_name(self, name: &str) -> Self {
        if std::env::var("OTEL_SERVICE_NAME").is_ok_and(|s| !s.is_empty()) {
            self
        } else {
            self.service_name(name)
        }
    }

    /// Most finished spans waiting for export; beyond, spans are dropped
    /// and counted. Defaults to 2048 (at least 1).
    pub fn queue(mut self, spans: usize) -> Self {
        self.queue = spans.max(1);
        self
    }

    /// One export (with its retries) gives up after this long. Defaults to 5 s.
    pub fn export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = timeout;
        self
    }

    /// The endpoint URL spans are POSTed to: the base with `/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.endpoint.trim_end_matches('/'))
    }

    /// Starts the export thread.
    ///
    /// # Errors
    /// [`Error::Config`] (setting `otlp_endpoint`) when the endpoint is not
    /// an `http://` or `https://` URL; [`Error::Thread`] when the thread
    /// cannot start.
    pub fn start(self) -> Result<Tracer, Error> {
        let bad = |message: String| Error::Config {
            setting: "otlp_endpoint".to_string(),
            message,
        };
        let url = self.traces_url();
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(bad(format!(
                "`{}` is not an http:// or https:// URL",
                self.endpoint
            )));
        }
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(UreqClient::new(self.export_timeout))
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url.clone())
            .with_timeout(self.export_timeout)
            .build()
            .map_err(|e| bad(format!("`{}`: {e}", self.endpoint)))?;
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name(self.service_name.clone())
                .build(),
        );
        let (tx, rx) = crossbeam_channel::bounded(self.queue);
        let dropped = IntCounter::new(
            "syncnet_trace_spans_dropped_total",
            "Finished spans dropped because the export queue was full.",
        )
        .map_err(|e| bad(e.to_string()))?;
        let thread = ExportThread {
            rx,
            exporter,
            batch: self.batch,
            interval: self.interval,
            scope: InstrumentationScope::builder("syncnet")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
            failures: Failures::default(),
            url,
        };
        let handle = thread::Builder::new()
            .name("syncnet-trace-export".to_string())
            .spawn(move || thread.run())
            .map_err(|source| Error::Thread {
                what: "the trace export thread",
                source,
            })?;
        Ok(Tracer {
            inner: Arc::new(Inner {
                tx,
                dropped,
                options: self,
                thread: Mutex::new(Some(handle)),
            }),
        })
    }
}

/// The export side of tracing: a handle to the queue and the export
/// thread. Clones share them. Install it on a thread with
/// [`install`](super::install) (a [`Server`](crate::Server) built with
/// [`Builder::tracing`](crate::Builder::tracing) does so for every
/// connection).
#[derive(Clone)]
pub struct Tracer {
    inner: Arc<Inner>,
}

struct Inner {
    tx: Sender<Msg>,
    dropped: IntCounter,
    options: TraceOptions,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("options", &self.inner.options)
            .field("dropped", &self.inner.dropped.get())
            .finish_non_exhaustive()
    }
}

/// What the export thread is sent.
enum Msg {
    Span(SpanRecord),
    /// Export what is queued, shut the exporter down, then answer.
    Shutdown(Sender<()>),
}

impl Tracer {
    /// Queues a finished span; a full queue drops it and counts it.
    pub(crate) fn submit(&self, span: SpanRecord) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.inner.tx.try_send(Msg::Span(span))
        {
            self.inner.dropped.inc();
        }
    }

    /// Spans dropped so far because the queue was full.
    pub fn dropped_spans(&self) -> u64 {
        self.inner.dropped.get()
    }

    /// The options it was started with.
    pub fn options(&self) -> &TraceOptions {
        &self.inner.options
    }

    /// Adds `syncnet_trace_spans_dropped_total` to `registry` (once; a
    /// second registration is ignored).
    pub fn register(&self, registry: &prometheus::Registry) {
        let _ = registry.register(Box::new(self.inner.dropped.clone()));
    }

    /// Exports what is queued and stops the export thread, waiting at most
    /// `timeout`. Returns whether it finished in time (else the thread is
    /// left to finish or time out on its own). Spans finished later are
    /// counted as dropped.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let Some(handle) = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return true;
        };
        let (ack_tx, ack_rx) = crossbeam_channel::bounded(1);
        let sent = self
            .inner
            .tx
            .send_deadline(Msg::Shutdown(ack_tx), deadline)
            .is_ok();
        if sent && ack_rx.recv_deadline(deadline).is_ok() {
            let _ = handle.join();
            return true;
        }
        false
    }
}

/// The export thread's state.
struct ExportThread<E> {
    rx: Receiver<Msg>,
    exporter: E,
    batch: usize,
    interval: Duration,
    scope: InstrumentationScope,
    /// At most one warning a second about failed exports.
    failures: Failures,
    url: String,
}

impl<E: SpanExporter> ExportThread<E> {
    /// Collects spans into batches and exports one when it is full or
    /// `interval` passed, until shut down (or every sender is gone).
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.batch);
        let mut due = Instant::now() + self.interval;
        loop {
            match self.rx.recv_deadline(due) {
                Ok(Msg::Span(span)) => {
                    batch.push(span);
                    if batch.len() >= self.batch {
                        self.export(&mut batch);
                        due = Instant::now() + self.interval;
                    }
                }
                Ok(Msg::Shutdown(ack)) => {
                    while let Ok(Msg::Span(span)) = self.rx.try_recv() {
                        batch.push(span);
                    }
                    self.export(&mut batch);
                    let _ = self.exporter.shutdown();
                    let _ = ack.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.export(&mut batch);
                    due = Instant::now() + self.interval;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.export(&mut batch);
                    return;
                }
            }
        }
    }

    /// Sends `batch` (emptying it), in pieces of at most `self.batch`.
    fn export(&mut self, batch: &mut Vec<SpanRecord>) {
        while !batch.is_empty() {
            let n = batch.len().min(self.batch);
            let spans = batch
                .drain(..n)
                .map(|span| span.into_span_data(&self.scope))
                .collect();
            // The client below is blocking: the future is ready when first
            // polled, and `block_on` only drives it.
            if let Err(e) = futures_executor::block_on(self.exporter.export(spans))
                && let Some(suppressed) = self.failures.allow()
            {
                log::warn!(target: "syncnet::trace", url = self.url.as_str(), suppressed = suppressed; "span export failed: {e}");
            }
        }
    }
}

/// Failed exports since the last warning, for at most one warning line
/// a second (the export thread is the only one that uses it).
#[derive(Debug, Default)]
struct Failures {
    last: Option<Instant>,
    suppressed: u64,
}

impl Failures {
    /// `Some(suppressed)` when a warning may be written now.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// `opentelemetry-http`'s [`HttpClient`] over `ureq`, a blocking client:
/// the request is sent and the whole reply read before the returned future
/// is even polled. Every request is bounded by one overall timeout, so an
/// endpoint that accepts but never answers cannot hold the export thread.
#[derive(Debug)]
pub struct UreqClient {
    agent: ureq::Agent,
}

impl UreqClient {
    /// A client whose every request gives up after `timeout` (connect,
    /// send and the whole reply). No proxy from the environment.
    pub fn new(timeout: Duration) -> UreqClient {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .proxy(None)
            .build();
        UreqClient {
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// One blocking request.
    fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = Request::from_parts(parts, body.to_vec());
        let mut reply = self.agent.run(request)?;
        let status = reply.status();
        let body = reply
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_to_vec()?;
        Ok(Response::builder().status(status).body(Bytes::from(body))?)
    }
}

impl HttpClient for UreqClient {
    // What `#[async_trait]` would write for `async fn send_bytes`: the work
    // is done before the future is made, so no executor is needed.
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(self.send(request)))
    }
}
