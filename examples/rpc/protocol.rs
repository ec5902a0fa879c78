//! The JSON-RPC 2.0 envelope: reading a request out of one frame, writing
//! its reply, and the refusals (`busy`, `bad_frame`, the server's reject
//! reply) in JSON-RPC's own words.
//!
//! Nothing here builds a `serde_json::Value`. A request is deserialised into
//! [`Request`], which *borrows* from the frame: the method is a `Cow<str>`
//! (borrowed unless it contains escapes), the id and the params are
//! `&RawValue`s, the exact JSON text they came as, checked but not parsed
//! into a tree. A reply is written byte by byte into the `Vec<u8>` that
//! [`FramedService`](syncnet::service::FramedService) hands in and reuses, so
//! a request costs no allocation of its own.
//!
//! The wire format, one JSON object per length-prefixed frame:
//!
//! ```text
//! → {"jsonrpc":"2.0","id":1,"method":"add","params":[1,2]}
//! ← {"jsonrpc":"2.0","id":1,"result":3}
//! → {"jsonrpc":"2.0","id":2,"method":"nope"}
//! ← {"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"Method not found"}}
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, Visitor};
use serde_json::value::RawValue;
use syncnet::RequestErrorKind;
use syncnet::frame::{Codec, FrameError, LengthPrefixed};
use syncnet::service::{Answer, Protocol, RequestContext};

use crate::methods::{self, Scratch};
use crate::upstream::Upstream;

/// The largest frame, in bytes, length prefix not counted: 1 MiB.
pub const MAX_FRAME: usize = 1 << 20;

/// Invalid JSON (or not UTF-8).
pub const PARSE_ERROR: i64 = -32700;
/// JSON, but not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// No method by that name.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// The method's params are not what it takes.
pub const INVALID_PARAMS: i64 = -32602;
/// The reply could not be made (here: it would not fit in a frame).
pub const INTERNAL_ERROR: i64 = -32603;
/// Refused unanswered: request-rate limit, deadline passed, server full.
pub const SERVER_BUSY: i64 = -32000;
/// `forward` could not get an answer from its upstream.
pub const UPSTREAM_FAILURE: i64 = -32001;

/// One request object, borrowed from the frame it was read from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request<'a> {
    /// Always `"2.0"`: any other value fails to deserialise.
    #[serde(rename = "jsonrpc")]
    _version: Version,
    /// The id exactly as written (`1`, `"a"`, `null`); `None` when the
    /// member is absent, which makes the request a notification.
    #[serde(default, borrow, deserialize_with = "present")]
    pub id: Option<&'a RawValue>,
    /// The method name.
    #[serde(borrow)]
    pub method: Cow<'a, str>,
    /// The params exactly as written; `None` when absent (the methods
    /// treat that as `null`).
    #[serde(default, borrow, deserialize_with = "present")]
    pub params: Option<&'a RawValue>,
    /// The W3C trace context the caller sends, as raw JSON: handed to
    /// syncnet with `RequestContext::trace` when it is a string. Any other
    /// value, like a malformed string, starts a new trace: it is never an
    /// error.
    #[serde(default, borrow)]
    pub traceparent: Option<&'a RawValue>,
    /// The W3C `tracestate` sent with `traceparent`, passed on unchanged.
    #[serde(default, borrow)]
    pub tracestate: Option<&'a RawValue>,
}

/// Deserialises a member that is there, `null` included, as `Some`.
///
/// A plain `Option<&RawValue>` would turn `"id":null` into `None`, the same
/// as no id at all; JSON-RPC tells them apart (`null` is a request that
/// wants a reply, no id is a notification). With `#[serde(default)]` an
/// absent member stays `None`.
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// The `jsonrpc` member: the string `"2.0"` and nothing else.
#[derive(Debug)]
struct Version;

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        struct Expect;
        impl Visitor<'_> for Expect {
            type Value = Version;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"2.0\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Version, E> {
                if v == "2.0" {
                    Ok(Version)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_str(Expect)
    }
}

/// The text of a JSON string (borrowed unless it has escapes); `None`
/// for any other JSON value.
fn json_string(raw: &RawValue) -> Option<Cow<'_, str>> {
    if !raw.get().starts_with('"') {
        return None;
    }
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(text) => Some(Cow::Borrowed(text)),
        Err(_) => serde_json::from_str::<String>(raw.get())
            .ok()
            .map(Cow::Owned),
    }
}

/// A frame that is not a request: the error code, and the id to answer with.
#[derive(Debug)]
pub struct Invalid<'a> {
    /// [`PARSE_ERROR`] or [`INVALID_REQUEST`].
    pub code: i64,
    /// The request's id when one could be read, else `None` (answered `null`).
    pub id: Option<&'a RawValue>,
}

/// Whitespace as JSON defines it (`str::trim` would take more).
const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

/// Reads one request out of a frame.
///
/// # Errors
/// [`PARSE_ERROR`] when the frame is not UTF-8 or not JSON;
/// [`INVALID_REQUEST`] when it is JSON but not a request object (a batch,
/// an unknown member, `jsonrpc` not `"2.0"`, a method that is not a string,
/// an id that is not a string, a number or `null`).
pub fn parse_request(frame: &[u8]) -> Result<Request<'_>, Invalid<'_>> {
    let Ok(text) = std::str::from_utf8(frame) else {
        return Err(Invalid {
            code: PARSE_ERROR,
            id: None,
        });
    };
    // Only an object can be a request. (serde would also fill a struct from
    // an array, positionally: a batch must not get that far.)
    if text.trim_start_matches(JSON_WHITESPACE).starts_with('{')
        && let Ok(request) = serde_json::from_str::<Request<'_>>(text)
    {
        if request.id.is_none_or(is_valid_id) {
            return Ok(request);
        }
        return Err(Invalid {
            code: INVALID_REQUEST,
            id: None,
        });
    }
    Err(classify(text))
}

/// Why `text` is not a request: not JSON at all, or JSON of the wrong shape.
/// The error path, so it may parse the text again.
#[cold]
fn classify(text: &str) -> Invalid<'_> {
    // serde may stop at an unknown member before it reaches a syntax error
    // further on: whether `text` is JSON at all is a question of its own.
    if serde_json::from_str::<IgnoredAny>(text).is_err() {
        return Invalid {
            code: PARSE_ERROR,
            id: None,
        };
    }
    Invalid {
        code: INVALID_REQUEST,
        id: readable_id(text),
    }
}

/// The `id` of a JSON object that is not a valid request, when it has a
/// valid one: the client can then match the error to its request.
pub fn readable_id(text: &str) -> Option<&RawValue> {
    /// Only the id; every other member is skipped.
    #[derive(Deserialize)]
    struct IdOnly<'a> {
        #[serde(default, borrow, deserialize_with = "present")]
        id: Option<&'a RawValue>,
    }
    if !text.trim_start_matches(JSON_WHITESPACE).starts_with('{') {
        return None;
    }
    let id = serde_json::from_str::<IdOnly<'_>>(text).ok()?.id?;
    is_valid_id(id).then_some(id)
}

/// JSON-RPC ids are strings, numbers or `null` (a `RawValue` starts with
/// its first character: no leading whitespace).
fn is_valid_id(id: &RawValue) -> bool {
    matches!(
        id.get().as_bytes().first(),
        Some(b'"' | b'-' | b'0'..=b'9' | b'n')
    )
}

/// An error reply's `code` and `message` (and `data`, which only a
/// forwarded error carries).
#[derive(Debug)]
pub struct RpcError {
    /// The JSON-RPC error code, e.g. [`INVALID_PARAMS`].
    pub code: i64,
    /// The message; one of the spec's short phrases for its own codes.
    pub message: Cow<'static, str>,
    /// Extra information, as raw JSON.
    pub data: Option<Box<RawValue>>,
    /// How the request is counted in `syncnet_request_errors_total{kind}`.
    pub kind: RequestErrorKind,
}

impl RpcError {
    /// The error for `code` with the spec's message for it.
    pub fn new(code: i64) -> RpcError {
        let (message, kind) = match code {
            PARSE_ERROR => ("Parse error", RequestErrorKind::Malformed),
            INVALID_REQUEST => ("Invalid Request", RequestErrorKind::Malformed),
            METHOD_NOT_FOUND => ("Method not found", RequestErrorKind::Handler),
            INVALID_PARAMS => ("Invalid params", RequestErrorKind::Handler),
            SERVER_BUSY => ("server busy", RequestErrorKind::Handler),
            _ => ("Internal error", RequestErrorKind::Handler),
        };
        RpcError {
            code,
            message: Cow::Borrowed(message),
            data: None,
            kind,
        }
    }

    /// `-32602 Invalid params`.
    pub fn invalid_params() -> RpcError {
        RpcError::new(INVALID_PARAMS)
    }

    /// `-32001`, with a message naming what went wrong with the upstream.
    pub fn upstream(why: impl fmt::Display) -> RpcError {
        RpcError {
            code: UPSTREAM_FAILURE,
            message: Cow::Owned(format!("upstream failure: {why}")),
            data: None,
            kind: RequestErrorKind::Handler,
        }
    }
}

/// `{"jsonrpc":"2.0","id":`: how every reply starts.
const REPLY_HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;

/// Writes `{"jsonrpc":"2.0","id":ID,` (`null` for no id).
fn begin_reply(reply: &mut Vec<u8>, id: Option<&RawValue>) {
    reply.extend_from_slice(REPLY_HEAD);
    reply.extend_from_slice(id.map_or("null", RawValue::get).as_bytes());
    reply.push(b',');
}

/// Writes `"error":{"code":C,"message":M}` (with `,"data":D` when given).
fn write_error_member(reply: &mut Vec<u8>, error: &RpcError) {
    reply.extend_from_slice(br#""error":{"code":"#);
    write_json(reply, &error.code);
    reply.extend_from_slice(br#","message":"#);
    write_json(reply, &error.message);
    if let Some(data) = &error.data {
        reply.extend_from_slice(br#","data":"#);
        reply.extend_from_slice(data.get().as_bytes());
    }
    reply.extend_from_slice(b"}");
}

/// Writes a whole error reply: `{"jsonrpc":"2.0","id":ID,"error":{...}}`.
pub fn write_error(reply: &mut Vec<u8>, id: Option<&RawValue>, error: &RpcError) {
    begin_reply(reply, id);
    write_error_member(reply, error);
    reply.push(b'}');
}

/// Serialises a number or a string (escaped) straight into `out`.
pub fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    // Writing into a Vec cannot fail, nor can serialising a number or a
    // string: there is no error to report.
    let _ = serde_json::to_writer(out, value);
}

/// The server's refusal when it is full (`Builder::reject_reply`): the
/// length-prefixed frame of
/// `{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"server busy"}}`.
pub fn refusal_frame() -> Vec<u8> {
    let mut reply = Vec::new();
    write_error(&mut reply, None, &RpcError::new(SERVER_BUSY));
    let mut frame = Vec::with_capacity(4 + reply.len());
    // A short constant reply always fits in a frame.
    let _ = LengthPrefixed::new(MAX_FRAME).encode(&reply, &mut frame);
    frame
}

/// JSON-RPC 2.0 as a syncnet [`Protocol`]: one request per frame, replies
/// in request order.
#[derive(Default)]
pub struct JsonRpc {
    /// Where `forward` sends its calls; `None` without `--forward`.
    upstream: Option<Box<dyn Upstream>>,
}

impl JsonRpc {
    /// The protocol without an upstream: `forward` answers `-32001`.
    pub fn new() -> JsonRpc {
        JsonRpc::default()
    }

    /// The protocol with `forward` calling `upstream`.
    pub fn forward_to(upstream: impl Upstream) -> JsonRpc {
        JsonRpc {
            upstream: Some(Box::new(upstream)),
        }
    }
}

impl Protocol for JsonRpc {
    type Codec = LengthPrefixed;
    /// Buffers `forward` reuses from one request to the next.
    type Session = Scratch;

    const RPC_SYSTEM: &'static str = "jsonrpc";

    fn codec(&self) -> LengthPrefixed {
        LengthPrefixed::new(MAX_FRAME)
    }

    fn answer(
        &self,
        scratch: &mut Scratch,
        frame: &[u8],
        cx: &RequestContext,
        reply: &mut Vec<u8>,
    ) -> Answer {
        let request = match parse_request(frame) {
            Ok(request) => request,
            Err(invalid) => {
                // Invalid requests are answered even without an id: the
                // client cannot know the frame was read as a notification.
                write_error(reply, invalid.id, &RpcError::new(invalid.code));
                return Answer::Error(RequestErrorKind::Malformed);
            }
        };
        let (traceparent, tracestate) = (
            request.traceparent.and_then(json_string),
            request.tracestate.and_then(json_string),
        );
        cx.trace(
            &request.method,
            traceparent.as_deref(),
            tracestate.as_deref(),
        );
        begin_reply(reply, request.id);
        let head = reply.len();
        reply.extend_from_slice(br#""result":"#);
        let called = methods::call(
            self.upstream.as_deref(),
            &request.method,
            request.params,
            scratch,
            reply,
        );
        if request.id.is_none() {
            // A notification: done, and never answered, not even an error.
            reply.clear();
            return Answer::NoReply;
        }
        let error = match called {
            // `< MAX_FRAME`: the closing brace must fit too.
            Ok(()) if reply.len() < MAX_FRAME => {
                reply.push(b'}');
                return Answer::Reply;
            }
            Ok(()) => RpcError::new(INTERNAL_ERROR),
            Err(error) => error,
        };
        reply.truncate(head);
        write_error_member(reply, &error);
        reply.push(b'}');
        if reply.len() > MAX_FRAME {
            // A forwarded error with huge data: drop the data.
            reply.truncate(head);
            write_error_member(reply, &RpcError::new(INTERNAL_ERROR));
            reply.push(b'}');
        }
        Answer::Error(error.kind)
    }

    /// `-32000 server busy`, with the request's id when it can be read.
    /// The request is already counted (`rate_limit` or `deadline`), so this
    /// is a plain [`Answer::Reply`].
    fn busy(
        &self,
        _: &mut Scratch,
        frame: &[u8],
        _: RequestErrorKind,
        reply: &mut Vec<u8>,
    ) -> Answer {
        let id = match parse_request(frame) {
            // A notification expects no reply, not even this one: an extra
            // reply would shift every later one for a client that reads
            // replies in order.
            Ok(request) if request.id.is_none() => return Answer::NoReply,
            Ok(request) => request.id,
            Err(invalid) => invalid.id,
        };
        write_error(reply, id, &RpcError::new(SERVER_BUSY));
        Answer::Reply
    }

    /// A frame over 1 MiB (or cut short): `-32600` with a `null` id, since
    /// the request was never read; then the connection closes.
    fn bad_frame(&self, _: &FrameError, reply: &mut Vec<u8>) {
        write_error(reply, None, &RpcError::new(INVALID_REQUEST));
    }
}
