//! [`Tracer`]: where finished spans go. Workers hand spans to a bounded
//! queue with `try_send` — a full queue drops the span and counts it in
//! `syncnet_trace_spans_dropped_total`, it never blocks — and one export
//! thread sends them in batches to an OTLP/HTTP (protobuf) endpoint
//! (`otlp.rs` encodes them) with `ureq`, a blocking HTTP client: no async
//! runtime anywhere.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use prometheus::IntCounter;

use super::otlp;
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
    /// Where the endpoint came from, as errors name it: `otlp_endpoint`, or
    /// the environment variable that set it.
    source: String,
    service_name: String,
    queue: usize,
    batch: usize,
    interval: Duration,
    export_timeout: Duration,
}

impl TraceOptions {
    /// Spans go to `endpoint`, an OTLP/HTTP base URL such as
    /// `http://127.0.0.1:4318`: they are POSTed to `endpoint/v1/traces`.
    /// Service name `syncnet` (or `OTEL_SERVICE_NAME`), a queue of 8192
    /// spans, batches of at most 512 every 500 ms, a 5 s export timeout.
    pub fn new(endpoint: impl Into<String>) -> TraceOptions {
        TraceOptions {
            endpoint: endpoint.into(),
            source: "otlp_endpoint".to_string(),
            service_name: std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "syncnet".to_string()),
            queue: 8192,
            batch: 512,
            interval: Duration::from_millis(500),
            export_timeout: Duration::from_secs(5),
        }
    }

    /// The options for an endpoint given by a flag, else by
    /// `SYNCNET_OTLP_ENDPOINT`, else by `OTEL_EXPORTER_OTLP_ENDPOINT`;
    /// `None` (tracing off) when none is set. An endpoint from a variable
    /// that is not a valid URL is an error naming the variable, at
    /// [`start`](TraceOptions::start).
    pub fn from_flag_or_env(flag: Option<&str>) -> Option<TraceOptions> {
        if let Some(flag) = flag {
            return Some(TraceOptions::new(flag));
        }
        ENDPOINT_VARS.iter().find_map(|var| {
            let value = std::env::var(var).ok().filter(|v| !v.is_empty())?;
            let mut options = TraceOptions::new(value);
            options.source = (*var).to_string();
            Some(options)
        })
    }

    /// Checks that `endpoint` is an OTLP/HTTP base URL: `http://` or
    /// `https://`, a host, and nothing a URL cannot hold (spaces, control
    /// characters), no query or fragment. A path is allowed (`/v1/traces` is
    /// appended to it).
    ///
    /// ```
    /// use syncnet::trace::TraceOptions;
    ///
    /// assert!(TraceOptions::check_endpoint("http://127.0.0.1:4318").is_ok());
    /// assert!(TraceOptions::check_endpoint("https://otel.example/base/").is_ok());
    /// for bad in ["", "notaurl", "ftp://x", "http://", "http:///v1", "http://a b", "http://c/?q"] {
    ///     assert!(TraceOptions::check_endpoint(bad).is_err(), "{bad}");
    /// }
    /// ```
    ///
    /// # Errors
    /// What is wrong, quoting the value.
    pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
        let rest = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"));
        let Some(rest) = rest else {
            return Err(format!("`{endpoint}` is not an http:// or https:// URL"));
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() {
            return Err(format!("`{endpoint}` has no host"));
        }
        if rest.contains(['?', '#']) {
            return Err(format!(
                "`{endpoint}` has a query or fragment (a base URL takes `/v1/traces` after it)"
            ));
        }
        let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        match url.parse::<ureq::http::Uri>() {
            Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
            _ => Err(format!("`{endpoint}` is not a valid URL")),
        }
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
    /// and counted. Defaults to 8192 (at least 1).
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
    /// [`Error::Config`] (setting `otlp_endpoint`, or the environment
    /// variable the endpoint came from) when the endpoint is not a valid
    /// URL ([`check_endpoint`](TraceOptions::check_endpoint));
    /// [`Error::Thread`] when the thread cannot start.
    pub fn start(self) -> Result<Tracer, Error> {
        let bad = |message: String| Error::Config {
            setting: self.source.clone(),
            message,
        };
        let url = self.traces_url();
        TraceOptions::check_endpoint(&self.endpoint).map_err(bad)?;
        let (tx, rx) = crossbeam_channel::bounded(self.queue);
        // Wake-ups are `try_send`: a worker never waits for room here; the
        // shutdown waits for it at most until its deadline.
        let (control_tx, control_rx) = crossbeam_channel::bounded(2);
        let dropped = IntCounter::new(
            "syncnet_trace_spans_dropped_total",
            "Finished spans dropped because the export queue was full.",
        )
        .map_err(|e| bad(e.to_string()))?;
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(self.export_timeout))
            .http_status_as_error(false)
            .proxy(None)
            .build();
        let thread = ExportThread {
            rx,
            control: control_rx,
            agent: ureq::Agent::new_with_config(config),
            url,
            service_name: self.service_name.clone(),
            body: Vec::new(),
            batch: self.batch,
            interval: self.interval,
            export_timeout: self.export_timeout,
            failures: Failures::default(),
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
                control: control_tx,
                wake_at: self.batch.min(self.queue / 2).max(1),
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
    /// Finished spans. The export thread does not wait on this queue (a
    /// wake-up per span would cost every request a context switch): it
    /// drains it every `interval`, or when woken through `control`.
    tx: Sender<SpanRecord>,
    control: Sender<Control>,
    /// Queued spans at which the export thread is woken early: a batch, or
    /// half the queue if that is less.
    wake_at: usize,
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

/// What wakes the export thread before its interval is up.
enum Control {
    /// A batch is waiting.
    Batch,
    /// Export what is queued, shut the exporter down, then answer.
    Shutdown(Sender<()>),
}

impl Tracer {
    /// Queues a finished span; a full queue drops it and counts it.
    pub(crate) fn submit(&self, span: SpanRecord) {
        let inner = &*self.inner;
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = inner.tx.try_send(span)
        {
            inner.dropped.inc();
        } else if inner.tx.len() >= inner.wake_at {
            // A whole batch waits: wake the thread (a full control queue
            // means it was woken already; `try_send` then fails at once).
            let _ = inner.control.try_send(Control::Batch);
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
            .control
            .send_deadline(Control::Shutdown(ack_tx), deadline)
            .is_ok();
        if sent && ack_rx.recv_deadline(deadline).is_ok() {
            let _ = handle.join();
            return true;
        }
        false
    }
}

/// The export thread's state.
struct ExportThread {
    rx: Receiver<SpanRecord>,
    control: Receiver<Control>,
    /// Every request is bounded by the export timeout as a whole (connect,
    /// send, the reply), so an endpoint that accepts and never answers
    /// cannot hold the thread.
    agent: ureq::Agent,
    url: String,
    service_name: String,
    /// One request's body, reused.
    body: Vec<u8>,
    batch: usize,
    interval: Duration,
    export_timeout: Duration,
    /// At most one warning a second about failed exports.
    failures: Failures,
}

impl ExportThread {
    /// Every `interval`, or when woken, exports what is queued, until shut
    /// down (or every sender is gone).
    fn run(mut self) {
        let mut batch = Vec::with_capacity(self.batch);
        loop {
            match self.control.recv_timeout(self.interval) {
                Ok(Control::Batch) | Err(RecvTimeoutError::Timeout) => {
                    self.drain(&mut batch);
                }
                Ok(Control::Shutdown(ack)) => {
                    self.drain(&mut batch);
                    let _ = ack.send(());
                    return;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.drain(&mut batch);
                    return;
                }
            }
        }
    }

    /// Exports the spans queued now, a batch at a time.
    fn drain(&mut self, batch: &mut Vec<SpanRecord>) {
        // Bounded: what was queued when it started, at most.
        for _ in 0..=self.rx.len() / self.batch.max(1) {
            batch.extend(self.rx.try_iter().take(self.batch));
            if batch.is_empty() {
                return;
            }
            self.body.clear();
            otlp::encode_request(&mut self.body, &self.service_name, batch);
            batch.clear();
            if let Err(e) = self.post()
                && let Some(suppressed) = self.failures.allow()
            {
                log::warn!(target: "syncnet::trace", url = self.url.as_str(), suppressed = suppressed; "span export failed: {e}");
            }
        }
    }

    /// POSTs `body`, retrying a failure that may pass (no connection, 429,
    /// 502, 503, 504) after 100 ms, 200 ms, ... while the export timeout
    /// leaves time. A batch that still fails is lost.
    fn post(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.export_timeout;
        let mut backoff = Duration::from_millis(100);
        loop {
            let error = match self
                .agent
                .post(&self.url)
                .header("content-type", "application/x-protobuf")
                .send(&self.body[..])
            {
                Ok(mut reply) => {
                    let status = reply.status();
                    // Read the (small) reply so the connection can be reused.
                    let _ = reply.body_mut().with_config().limit(1 << 20).read_to_vec();
                    if status.is_success() {
                        return Ok(());
                    }
                    if !matches!(status.as_u16(), 429 | 502 | 503 | 504) {
                        return Err(format!("HTTP {status}"));
                    }
                    format!("HTTP {status}")
                }
                // A timeout used the whole budget already.
                Err(ureq::Error::Timeout(_)) => return Err("timed out".to_string()),
                Err(e) => e.to_string(),
            };
            if Instant::now() + backoff >= deadline {
                return Err(error);
            }
            thread::sleep(backoff);
            backoff *= 2;
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
