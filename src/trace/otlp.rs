//! OTLP's protobuf encoding of finished spans: an
//! `ExportTraceServiceRequest` (opentelemetry-proto's
//! `collector/trace/v1`), written straight from [`SpanRecord`]s into one
//! reused buffer.
//!
//! Written by hand rather than through the OpenTelemetry SDK's `SpanData`
//! and `opentelemetry-otlp`'s conversion: that path allocated a dozen
//! times per span and cost the `rpc` example about 20% more CPU per
//! request with tracing on (`BENCHMARKS.md`, "Tracing (issue 12)"); this
//! one allocates nothing per span. Only the fields syncnet fills are
//! written; `tests/support/otlp_receiver.rs` decodes the result with
//! `opentelemetry-proto`'s own types.
//!
//! Protobuf in brief: each field is a key (`field << 3 | wire type`, as a
//! varint) and a value; a nested message or a string is `LEN`: its length
//! as a varint, then its bytes.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::span::{Kind, SpanRecord, Value};

/// Wire types.
const VARINT: u64 = 0;
const I64: u64 = 1;
const LEN: u64 = 2;
const I32: u64 = 5;

/// `Span.flags`: bit 8 says bit 9 is known; bit 9, the parent is remote.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;
/// The W3C `sampled` flag, in the low byte of `Span.flags`.
const SAMPLED: u32 = 0x01;

/// Appends an `ExportTraceServiceRequest` holding `spans`, all of the
/// service `service`, to `out`.
pub(crate) fn encode_request(out: &mut Vec<u8>, service: &str, spans: &[SpanRecord]) {
    // ExportTraceServiceRequest.resource_spans = 1
    message(out, 1, |resource_spans| {
        // ResourceSpans.resource = 1: Resource.attributes = 1
        message(resource_spans, 1, |resource| {
            key_value(resource, 1, "service.name", Attr::Str(service));
            key_value(resource, 1, "telemetry.sdk.name", Attr::Str("syncnet"));
            key_value(resource, 1, "telemetry.sdk.language", Attr::Str("rust"));
        });
        // ResourceSpans.scope_spans = 2
        message(resource_spans, 2, |scope_spans| {
            // ScopeSpans.scope = 1: InstrumentationScope.name = 1, .version = 2
            message(scope_spans, 1, |scope| {
                string(scope, 1, "syncnet");
                string(scope, 2, env!("CARGO_PKG_VERSION"));
            });
            for span in spans {
                // ScopeSpans.spans = 2
                message(scope_spans, 2, |out| encode_span(out, span));
            }
        });
    });
}

/// The fields of one `Span`.
fn encode_span(out: &mut Vec<u8>, span: &SpanRecord) {
    bytes(out, 1, &span.trace_id);
    bytes(out, 2, &span.span_id);
    if let Some(parent) = &span.parent {
        bytes(out, 4, parent);
    }
    string(out, 5, &span.name);
    let kind = match span.kind {
        Kind::Server => 2,
        Kind::Client => 3,
    };
    tag(out, 6, VARINT);
    varint(out, kind);
    tag(out, 7, I64);
    out.extend_from_slice(&unix_nanos(span.start).to_le_bytes());
    tag(out, 8, I64);
    out.extend_from_slice(&unix_nanos(span.end).to_le_bytes());
    // Span.attributes = 9
    if let Some(system) = span.rpc_system {
        key_value(out, 9, "rpc.system", Attr::Str(system));
        key_value(out, 9, "rpc.method", Attr::Str(&span.name));
    }
    if let Some(peer) = span.peer {
        key_value(out, 9, "network.peer.address", Attr::Ip(peer.ip()));
        key_value(
            out,
            9,
            "network.peer.port",
            Attr::Int(i64::from(peer.port())),
        );
    }
    if let Some(id) = span.conn_id {
        let id = i64::try_from(id).unwrap_or(i64::MAX);
        key_value(out, 9, "syncnet.conn_id", Attr::Int(id));
    }
    for (key, value) in &span.attributes {
        let value = match value {
            Value::Int(n) => Attr::Int(*n),
            Value::Static(s) => Attr::Str(s),
        };
        key_value(out, 9, key, value);
    }
    // Span.status = 15: Status.message = 2, Status.code = 3 (2: error)
    if let Some(description) = &span.error {
        message(out, 15, |status| {
            string(status, 2, description);
            tag(status, 3, VARINT);
            varint(status, 2);
        });
    }
    let mut flags = SAMPLED | HAS_IS_REMOTE;
    if span.parent_remote {
        flags |= IS_REMOTE;
    }
    tag(out, 16, I32);
    out.extend_from_slice(&flags.to_le_bytes());
}

/// An attribute value.
enum Attr<'a> {
    Str(&'a str),
    Int(i64),
    /// An address, written as text without a separate allocation.
    Ip(std::net::IpAddr),
}

/// A `KeyValue` message as field `field`: `key = 1`, `value = 2` (an
/// `AnyValue`: `string_value = 1` or `int_value = 3`).
fn key_value(out: &mut Vec<u8>, field: u64, key: &str, value: Attr<'_>) {
    message(out, field, |kv| {
        string(kv, 1, key);
        message(kv, 2, |any| match value {
            Attr::Str(s) => string(any, 1, s),
            Attr::Int(n) => {
                tag(any, 3, VARINT);
                // int64 is the two's complement as a varint.
                varint(any, n as u64);
            }
            Attr::Ip(ip) => message(any, 1, |text| {
                // Writing into a Vec cannot fail.
                let _ = write!(Utf8(text), "{ip}");
            }),
        });
    });
}

/// `fmt::Write` into a byte buffer.
struct Utf8<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Utf8<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Field `field` holding what `body` writes, length-prefixed: the body is
/// written in place, then its length is inserted in front of it.
fn message(out: &mut Vec<u8>, field: u64, body: impl FnOnce(&mut Vec<u8>)) {
    tag(out, field, LEN);
    let start = out.len();
    body(out);
    let len = (out.len() - start) as u64;
    let mut buf = [0u8; 10];
    let n = varint_into(&mut buf, len);
    out.splice(start..start, buf[..n].iter().copied());
}

/// A `string` field.
fn string(out: &mut Vec<u8>, field: u64, text: &str) {
    bytes(out, field, text.as_bytes());
}

/// A `bytes` field.
fn bytes(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    tag(out, field, LEN);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A field's key.
fn tag(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, field << 3 | wire);
}

/// A varint: 7 bits a byte, low bits first, the top bit set on all but the last.
fn varint(out: &mut Vec<u8>, value: u64) {
    let mut buf = [0u8; 10];
    let n = varint_into(&mut buf, value);
    out.extend_from_slice(&buf[..n]);
}

/// Writes `value` as a varint into `buf`; returns how many bytes.
fn varint_into(buf: &mut [u8; 10], mut value: u64) -> usize {
    let mut n = 0;
    while value >= 0x80 {
        buf[n] = (value as u8) | 0x80;
        value >>= 7;
        n += 1;
    }
    buf[n] = value as u8;
    n + 1
}

/// Nanoseconds since the Unix epoch (0 before it).
fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut out = Vec::new();
        for value in [0, 1, 127, 128, 300, u64::MAX] {
            varint(&mut out, value);
        }
        assert_eq!(
            out,
            [
                0x00, 0x01, 0x7f, 0x80, 0x01, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                0xff, 0xff, 0x01
            ]
        );
    }

    #[test]
    fn a_nested_message_is_prefixed_with_its_length() {
        let mut out = Vec::new();
        message(&mut out, 1, |m| string(m, 2, "hi"));
        // field 1 LEN, length 4: field 2 LEN, length 2, "hi"
        assert_eq!(out, [0x0a, 0x04, 0x12, 0x02, b'h', b'i']);
        let mut long = Vec::new();
        message(&mut long, 1, |m| m.extend_from_slice(&[7; 200]));
        assert_eq!(&long[..3], &[0x0a, 0xc8, 0x01]);
        assert_eq!(long.len(), 203);
    }
}
