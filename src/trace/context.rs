//! W3C trace context: the `traceparent` value (parse and format) and fresh
//! trace and span ids.
//!
//! A `traceparent` is `VERSION-TRACEID-PARENTID-FLAGS` in lower-case hex,
//! e.g. `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`. A value
//! that breaks the rules is not an error anywhere in syncnet: it is ignored
//! and the request starts a new trace.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

/// One W3C `traceparent`: which trace a request belongs to, which span
/// sent it, and whether the trace is sampled (recorded).
///
/// ```
/// use syncnet::trace::TraceParent;
///
/// let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// let parent = TraceParent::parse(text).unwrap();
/// assert!(parent.sampled);
/// assert_eq!(parent.to_string(), text);
/// assert_eq!(TraceParent::parse("00-not-a-trace-01"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id (never all zero).
    pub trace_id: [u8; 16],
    /// The sending span's id (never all zero).
    pub span_id: [u8; 8],
    /// Flag `01`: the caller records this trace.
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` when it breaks the W3C rules
    /// (wrong length, upper-case or non-hex digits, version `ff`, an
    /// all-zero id, or extra text after a version-00 value).
    pub fn parse(text: &str) -> Option<TraceParent> {
        let b = text.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = hex_byte(b[0], b[1])?;
        // Version 00 is exactly 55 characters; a later version may append
        // fields after a dash; ff is forbidden.
        if version == 0xff || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, byte) in trace_id.iter_mut().enumerate() {
            *byte = hex_byte(b[3 + 2 * i], b[4 + 2 * i])?;
        }
        let mut span_id = [0u8; 8];
        for (i, byte) in span_id.iter_mut().enumerate() {
            *byte = hex_byte(b[36 + 2 * i], b[37 + 2 * i])?;
        }
        let flags = hex_byte(b[53], b[54])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The trace id as 32 lower-case hex digits (as logs and `trace_id=`
    /// print it).
    pub fn trace_id_hex(&self) -> Hex<'_> {
        Hex(&self.trace_id)
    }

    /// The span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> Hex<'_> {
        Hex(&self.span_id)
    }

    /// The same trace and flags with another span as the sender.
    pub(crate) fn with_span(self, span_id: [u8; 8]) -> TraceParent {
        TraceParent { span_id, ..self }
    }
}

impl fmt::Display for TraceParent {
    /// `00-TRACEID-SPANID-FLAGS`, the form to send on.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = if self.sampled { "01" } else { "00" };
        write!(
            f,
            "00-{}-{}-{flags}",
            self.trace_id_hex(),
            self.span_id_hex()
        )
    }
}

/// Bytes shown as lower-case hex.
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 32];
        for (chunk, byte) in buf.chunks_exact_mut(2).zip(self.0) {
            chunk[0] = DIGITS[usize::from(byte >> 4)];
            chunk[1] = DIGITS[usize::from(byte & 0xf)];
        }
        let len = 2 * self.0.len().min(16);
        // Only ASCII hex digits were written.
        f.write_str(std::str::from_utf8(&buf[..len]).unwrap_or_default())
    }
}

/// Two lower-case hex digits as a byte.
fn hex_byte(hi: u8, lo: u8) -> Option<u8> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    Some(digit(hi)? << 4 | digit(lo)?)
}

/// Most bytes of a `tracestate` passed on: W3C's 512, within which
/// every vendor must propagate it.
pub(crate) const TRACESTATE_MAX_LEN: usize = 512;

/// Most list members of a `tracestate` (W3C).
pub(crate) const TRACESTATE_MAX_MEMBERS: usize = 32;

/// Most bytes of a span's name (and `rpc.method`) exported: a method name
/// comes from the peer, and OTLP collectors refuse huge attributes.
pub(crate) const SPAN_NAME_MAX_LEN: usize = 128;

/// `name` cut to at most [`SPAN_NAME_MAX_LEN`] bytes, on a character
/// boundary.
pub(crate) fn span_name(name: &str) -> &str {
    let mut end = name.len().min(SPAN_NAME_MAX_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// Appends to `out` the part of an incoming `tracestate` to pass on, the
/// way W3C says to shorten one: at most [`TRACESTATE_MAX_MEMBERS`] members
/// and [`TRACESTATE_MAX_LEN`] bytes, members over 128 bytes dropped first,
/// then the ones at the end. A value with characters outside printable
/// ASCII is not a `tracestate`: nothing is appended. Empty members and the
/// spaces around members are left out.
pub(crate) fn push_tracestate(out: &mut String, state: &str) {
    if !state
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return;
    }
    let start = out.len();
    let mut members = 0;
    for member in state.split(',').map(|m| m.trim_matches([' ', '\t'])) {
        if member.is_empty() {
            continue;
        }
        let comma = usize::from(out.len() > start);
        if out.len() - start + comma + member.len() > TRACESTATE_MAX_LEN {
            if member.len() > 128 {
                continue;
            }
            break;
        }
        if comma == 1 {
            out.push(',');
        }
        out.push_str(member);
        members += 1;
        if members == TRACESTATE_MAX_MEMBERS {
            break;
        }
    }
}

thread_local! {
    /// This thread's id generator state (splitmix64), seeded from the
    /// standard library's per-process random keys.
    static SEED: Cell<u64> = Cell::new({
        let mut h = RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        h.finish()
    });
}

/// The next pseudo-random 64-bit number of this thread (splitmix64: ids
/// must be unique, not secret).
fn next_u64() -> u64 {
    SEED.with(|s| {
        let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A fresh span id (never zero).
pub(crate) fn new_span_id() -> [u8; 8] {
    loop {
        let id = next_u64();
        if id != 0 {
            return id.to_be_bytes();
        }
    }
}

/// A fresh trace id (never zero).
pub(crate) fn new_trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&next_u64().to_be_bytes());
    id[8..].copy_from_slice(&new_span_id());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_formats_a_traceparent() {
        let p = TraceParent::parse(GOOD).expect("valid");
        assert_eq!(p.trace_id[0], 0x4b);
        assert_eq!(p.span_id[7], 0xb7);
        assert!(p.sampled);
        assert_eq!(p.to_string(), GOOD);
        let unsampled = GOOD.replace("-01", "-00");
        assert!(!TraceParent::parse(&unsampled).expect("valid").sampled);
    }

    #[test]
    fn refuses_what_breaks_the_rules() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
        // A later version may carry more fields.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(TraceParent::parse(later).is_some());
    }

    #[test]
    fn a_tracestate_passed_on_is_bounded_as_w3c_says() {
        let pass_on = |state: &str| {
            let mut out = String::from("kept");
            push_tracestate(&mut out, state);
            out.split_off(4)
        };
        assert_eq!(pass_on("a=1, b=2 ,,c=3"), "a=1,b=2,c=3");
        // A megabyte of members: 32 at most, within 512 bytes.
        let huge = vec!["vendor=value"; 100_000].join(",");
        let out = pass_on(&huge);
        assert_eq!(out.split(',').count(), TRACESTATE_MAX_MEMBERS);
        // One huge member is dropped; the ones after it that fit stay.
        let long = format!("a=1,big={},b=2", "x".repeat(1 << 20));
        assert_eq!(pass_on(&long), "a=1,b=2");
        // 60 members of 10 bytes: cut at the last whole one within 512.
        let many = (0..60)
            .map(|i| format!("k{i:03}=12345"))
            .collect::<Vec<_>>();
        let out = pass_on(&many[..40].join(","));
        assert!(out.len() <= TRACESTATE_MAX_LEN, "{}", out.len());
        assert!(many[..TRACESTATE_MAX_MEMBERS].join(",").starts_with(&out));
        // Not printable ASCII: not a tracestate.
        assert_eq!(pass_on("a=\u{e9}t\u{e9}"), "");
        assert_eq!(pass_on("a=1\nb=2"), "");
    }

    #[test]
    fn a_span_name_is_cut_on_a_character_boundary() {
        let long = "\u{e9}".repeat(1 << 19); // a 1 MiB method name
        let name = span_name(&long);
        assert!(name.len() <= SPAN_NAME_MAX_LEN && name.len() >= SPAN_NAME_MAX_LEN - 1);
        assert_eq!(span_name("sum"), "sum");
    }

    #[test]
    fn ids_are_fresh_and_non_zero() {
        let (a, b) = (new_trace_id(), new_trace_id());
        assert_ne!(a, b);
        assert_ne!(new_span_id(), [0; 8]);
    }
}
