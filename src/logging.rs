//! Log output (`docs/reference.md`, "Logs"): `env_logger` with a text and a JSON format, and
//! the rate limiter that keeps a flood of rejections from flooding the log.
//!
//! Events carry their fields as `log` key-values, e.g.
//! `log::info!(conn_id = 7, peer:% = addr; "closed")`; both formats print
//! them (`key=value` in text, top-level keys in JSON).

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use std::net::SocketAddr;

use log::kv::{Key, Source, Value, VisitSource};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `ts LEVEL target: msg key=value ...`, for people.
    Text,
    /// One JSON object per line with `ts`, `level`, `target`, `msg` and the fields.
    Json,
    /// Text when stderr is a terminal, JSON otherwise. The default.
    #[default]
    Auto,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            "auto" => Ok(LogFormat::Auto),
            other => Err(format!(
                "'{other}' is not a log format (expected text, json or auto)"
            )),
        }
    }
}

/// Starts logging to stderr in `format`, at the level `RUST_LOG` gives
/// (default `info`). Does nothing if a logger is already installed, so tests
/// and embedding programs may call it more than once.
pub fn init_logging(format: LogFormat) {
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if json {
        builder.format(|buf, record| {
            let line = json_line(&buf.timestamp_millis().to_string(), record);
            writeln!(buf, "{line}")
        });
    } else {
        builder.format(|buf, record| {
            let line = text_line(&buf.timestamp_millis().to_string(), record);
            writeln!(buf, "{line}")
        });
    }
    let _ = builder.try_init();
}

/// One record as a JSON object: `ts`, `level`, `target`, `msg`, then its
/// fields. Written straight into one `String` (no intermediate map): a log
/// line costs one allocation and little stack, which matters because every
/// worker thread that logs keeps the stack pages it touched.
fn json_line(ts: &str, record: &log::Record<'_>) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"ts\":");
    push_json_str(&mut out, format_args!("{ts}"));
    out.push_str(",\"level\":");
    let level = match record.level() {
        log::Level::Error => "error",
        log::Level::Warn => "warn",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    };
    push_json_str(&mut out, format_args!("{level}"));
    out.push_str(",\"target\":");
    push_json_str(&mut out, format_args!("{}", record.target()));
    out.push_str(",\"msg\":");
    push_json_str(&mut out, *record.args());
    let _ = record.key_values().visit(&mut JsonFields(&mut out));
    if let Some(cx) = crate::trace::log_ids() {
        let _ = write!(
            out,
            ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
            cx.trace_id_hex(),
            cx.span_id_hex()
        );
    }
    out.push('}');
    out
}

/// Appends `text` as a JSON string, quotes included.
fn push_json_str(out: &mut String, text: std::fmt::Arguments<'_>) {
    out.push('"');
    let _ = JsonEscaped(out).write_fmt(text);
    out.push('"');
}

/// A `fmt::Write` that escapes what it is given for a JSON string.
struct JsonEscaped<'a>(&'a mut String);

impl std::fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for c in s.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                '\n' => self.0.push_str("\\n"),
                '\r' => self.0.push_str("\\r"),
                '\t' => self.0.push_str("\\t"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        Ok(())
    }
}

/// Appends each field as `,"key":value`: numbers and booleans bare,
/// everything else as a JSON string.
struct JsonFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        self.0.push(',');
        push_json_str(self.0, format_args!("{key}"));
        self.0.push(':');
        if let Some(n) = value.to_u64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(n) = value.to_i64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(b) = value.to_bool() {
            let _ = write!(self.0, "{b}");
        } else if let Some(f) = value.to_f64().filter(|f| f.is_finite()) {
            let _ = write!(self.0, "{f}");
        } else {
            push_json_str(self.0, format_args!("{value}"));
        }
        Ok(())
    }
}

/// One record as text: `ts LEVEL target: msg key=value ...`.
fn text_line(ts: &str, record: &log::Record<'_>) -> String {
    let mut line = format!(
        "{ts} {:<5} {}: {}",
        record.level(),
        record.target(),
        record.args()
    );
    let mut fields = TextFields(&mut line);
    let _ = record.key_values().visit(&mut fields);
    if let Some(cx) = crate::trace::log_ids() {
        let _ = write!(
            line,
            " trace_id={} span_id={}",
            cx.trace_id_hex(),
            cx.span_id_hex()
        );
    }
    line
}

struct TextFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for TextFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let text = value.to_string();
        if text.is_empty() || text.contains([' ', '"', '=']) {
            let _ = write!(self.0, " {key}={text:?}");
        } else {
            let _ = write!(self.0, " {key}={text}");
        }
        Ok(())
    }
}

/// The fields every connection event carries: `conn_id`, `peer` and, for
/// connections that came through a PROXY protocol balancer, `proxy_peer`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnFields {
    pub conn_id: u64,
    pub peer: SocketAddr,
    pub proxy_peer: Option<SocketAddr>,
}

/// The connection fields followed by event-specific ones, as a `log` key-value source.
struct EventFields<'a> {
    conn: ConnFields,
    extra: &'a [(&'a str, Value<'a>)],
}

impl Source for EventFields<'_> {
    fn visit<'kvs>(&'kvs self, visitor: &mut dyn VisitSource<'kvs>) -> Result<(), log::kv::Error> {
        visitor.visit_pair(Key::from("conn_id"), Value::from(self.conn.conn_id))?;
        visitor.visit_pair(Key::from("peer"), Value::from_display(&self.conn.peer))?;
        if let Some(proxy_peer) = &self.conn.proxy_peer {
            visitor.visit_pair(Key::from("proxy_peer"), Value::from_display(proxy_peer))?;
        }
        for (key, value) in self.extra {
            visitor.visit_pair(Key::from(*key), value.clone())?;
        }
        Ok(())
    }
}

/// Logs one connection event (target `syncnet::conn`) with `conn`'s fields
/// and `extra` ones, e.g. `[("reason", "eof".into())]`.
pub(crate) fn conn_event(
    level: log::Level,
    msg: std::fmt::Arguments<'_>,
    conn: ConnFields,
    extra: &[(&str, Value<'_>)],
) {
    const TARGET: &str = "syncnet::conn";
    if !log::log_enabled!(target: TARGET, level) {
        return;
    }
    let fields = EventFields { conn, extra };
    log::logger().log(
        &log::Record::builder()
            .level(level)
            .target(TARGET)
            .module_path_static(Some(module_path!()))
            .args(msg)
            .key_values(&fields)
            .build(),
    );
}

/// Lets one event through per second and counts the ones it holds back.
///
/// Lock-free: the first caller in a new second wins a compare-and-swap and
/// logs, with the number suppressed since the previous line.
pub(crate) struct LogEvery {
    start: Instant,
    /// Milliseconds since `start` of the last line let through, plus one
    /// (0 = never).
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogEvery {
    pub(crate) fn new() -> LogEvery {
        LogEvery {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed)` when this event may be logged, with the number of
    /// events held back since the last one; `None` when it must be dropped.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.last_ms.load(Ordering::Relaxed);
        if (last == 0 || now >= last + 1000)
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_record<R>(f: impl FnOnce(&log::Record<'_>) -> R) -> R {
        let kvs: [(&str, Value<'_>); 3] = [
            ("conn_id", Value::from(7u64)),
            ("peer", Value::from("127.0.0.1:5000")),
            ("reason", Value::from("idle timeout")),
        ];
        let record = log::Record::builder()
            .level(log::Level::Info)
            .target("syncnet::conn")
            .args(format_args!("closed \"x\""))
            .key_values(&kvs)
            .build();
        f(&record)
    }

    #[test]
    fn json_lines_carry_fields_as_top_level_keys() {
        let line = with_record(|r| json_line("2026-01-01T00:00:00.000Z", r));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], "2026-01-01T00:00:00.000Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["target"], "syncnet::conn");
        assert_eq!(v["msg"], "closed \"x\"");
        assert_eq!(v["conn_id"], 7);
        assert_eq!(v["peer"], "127.0.0.1:5000");
    }

    #[test]
    fn lines_written_while_a_request_is_served_carry_its_trace() {
        use crate::trace::RequestSpan;
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let peer = "127.0.0.1:5000".parse().unwrap();
        let outside = with_record(|r| json_line("T", r));
        assert!(!outside.contains("trace_id"), "{outside}");

        // Tracing off: the caller's ids.
        let span = RequestSpan::begin(1, peer, std::time::Instant::now(), "test");
        RequestSpan::continue_trace("m", Some(incoming), None);
        let json: serde_json::Value =
            serde_json::from_str(&with_record(|r| json_line("T", r))).unwrap();
        assert_eq!(json["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(json["span_id"], "00f067aa0ba902b7");
        let text = with_record(|r| text_line("T", r));
        assert!(
            text.ends_with(" trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7"),
            "{text}"
        );
        span.end(None);
        assert!(!with_record(|r| text_line("T", r)).contains("trace_id"));

        // Tracing on: the same trace, this request's own span.
        let tracer = crate::trace::TraceOptions::new("http://127.0.0.1:9")
            .start()
            .unwrap();
        let guard = crate::trace::install(tracer.clone());
        let span = RequestSpan::begin(1, peer, std::time::Instant::now(), "test");
        RequestSpan::continue_trace("m", Some(incoming), None);
        let json: serde_json::Value =
            serde_json::from_str(&with_record(|r| json_line("T", r))).unwrap();
        assert_eq!(json["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        let own = crate::trace::current().unwrap();
        assert_eq!(json["span_id"], own.span_id_hex().to_string());
        assert_ne!(json["span_id"], "00f067aa0ba902b7");
        span.end(None);
        drop(guard);
        tracer.shutdown(std::time::Duration::from_millis(100));
    }

    #[test]
    fn json_strings_are_escaped() {
        let kvs: [(&str, Value<'_>); 2] = [
            ("error", Value::from("bad \"quote\" \\ and\nnewline\u{1}")),
            ("ratio", Value::from(0.5f64)),
        ];
        let record = log::Record::builder()
            .level(log::Level::Warn)
            .target("t")
            .args(format_args!("tab\there"))
            .key_values(&kvs)
            .build();
        let line = json_line("T", &record);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["error"], "bad \"quote\" \\ and\nnewline\u{1}");
        assert_eq!(v["msg"], "tab\there");
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["level"], "warn");
    }

    #[test]
    fn text_lines_quote_values_with_spaces() {
        let line = with_record(|r| text_line("T", r));
        assert_eq!(
            line,
            "T INFO  syncnet::conn: closed \"x\" conn_id=7 peer=127.0.0.1:5000 reason=\"idle timeout\""
        );
    }

    #[test]
    fn log_every_lets_one_through_per_second() {
        let gate = LogEvery::new();
        assert_eq!(gate.allow(), Some(0));
        assert_eq!(gate.allow(), None);
        assert_eq!(gate.allow(), None);
        // A gate whose last line was two seconds ago, with two held back.
        let later = LogEvery {
            start: Instant::now() - std::time::Duration::from_secs(2),
            last_ms: AtomicU64::new(1),
            suppressed: AtomicU64::new(2),
        };
        assert_eq!(later.allow(), Some(2));
    }

    #[test]
    fn log_format_parses() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert!("yaml".parse::<LogFormat>().unwrap_err().contains("yaml"));
    }
}
