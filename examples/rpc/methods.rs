//! The methods: `echo`, `add`, `sleep` and `forward`.
//!
//! Each one gets the request's params as raw JSON text (`None` when the
//! request had none) and, on success, writes its result — one JSON value —
//! straight into `out`; the envelope around it is `protocol.rs`'s business.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde_json::value::RawValue;

use syncnet::service::Protocol;
use syncnet::trace::ClientSpan;

use crate::protocol::{JsonRpc, METHOD_NOT_FOUND, RpcError, present, write_json};
use crate::upstream::{self, Outcome, Upstream};

/// The longest `sleep`, in milliseconds.
pub const MAX_SLEEP_MS: u64 = 10_000;

/// How long `forward` waits for its upstream when the request has no
/// deadline (no `--request-timeout`).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// What one connection keeps between requests: the request and reply
/// buffers of `forward`, reused so that a forwarded call allocates nothing
/// once they have grown.
#[derive(Debug, Default)]
pub struct Scratch {
    request: Vec<u8>,
    reply: Vec<u8>,
}

/// Runs `method`, writing its result into `out`.
///
/// # Errors
/// `-32601` for an unknown method; the method's own error otherwise.
pub fn call(
    upstream: Option<&dyn Upstream>,
    method: &str,
    params: Option<&RawValue>,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    match method {
        "echo" => echo(params, out),
        "add" => add(params, out),
        "sleep" => sleep(params, out),
        "forward" => forward(upstream, params, scratch, out),
        _ => Err(RpcError::new(METHOD_NOT_FOUND)),
    }
}

/// Deserialises the params (absent = `null`) as `T`.
///
/// # Errors
/// `-32602 Invalid params` when they do not fit `T`.
fn params_as<'a, T: Deserialize<'a>>(params: Option<&'a RawValue>) -> Result<T, RpcError> {
    let text = params.map_or("null", RawValue::get);
    serde_json::from_str(text).map_err(|_| RpcError::invalid_params())
}

/// `echo`: the result is the params, byte for byte as they came (JSON-RPC
/// allows any JSON value as a result, and a `RawValue` is valid JSON).
fn echo(params: Option<&RawValue>, out: &mut Vec<u8>) -> Result<(), RpcError> {
    out.extend_from_slice(params.map_or("null", RawValue::get).as_bytes());
    Ok(())
}

/// `add`: the sum of an array of numbers; an integer (`i64`) when every
/// operand is one, else a float.
///
/// # Errors
/// `-32602` when the params are not an array of numbers, when an integer
/// sum overflows `i64`, or when a float sum is not finite.
fn add(params: Option<&RawValue>, out: &mut Vec<u8>) -> Result<(), RpcError> {
    let sum: Sum = params_as(params)?;
    if sum.any_float {
        if !sum.float.is_finite() {
            return Err(RpcError::invalid_params());
        }
        write_json(out, &sum.float);
    } else {
        let total = sum.int.ok_or_else(RpcError::invalid_params)?;
        write_json(out, &total);
    }
    Ok(())
}

/// The operands of `add`, summed as they are read: no `Vec`, no allocation.
#[derive(Debug)]
struct Sum {
    /// The integer sum; `None` once it overflowed `i64`.
    int: Option<i64>,
    /// The sum as floats (used when any operand is a float).
    float: f64,
    /// Whether any operand was a float (`1.0` is one: JSON says so by its dot).
    any_float: bool,
}

impl<'de> Deserialize<'de> for Sum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sum, D::Error> {
        struct Operands;
        impl<'de> Visitor<'de> for Operands {
            type Value = Sum;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of numbers")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Sum, A::Error> {
                let mut sum = Sum {
                    int: Some(0),
                    float: 0.0,
                    any_float: false,
                };
                while let Some(operand) = seq.next_element::<Operand>()? {
                    let int = match operand {
                        Operand::Int(n) => i64::try_from(n).ok(),
                        Operand::Float(x) => {
                            sum.any_float = true;
                            sum.float += x;
                            continue;
                        }
                    };
                    sum.int = sum.int.zip(int).and_then(|(a, b)| a.checked_add(b));
                    // An integer over 2^53 loses precision as a float: only
                    // used when a float operand makes the sum a float anyway.
                    sum.float += operand.as_f64();
                }
                Ok(sum)
            }
        }
        d.deserialize_seq(Operands)
    }
}

/// One operand of `add`: any JSON number.
#[derive(Debug, Clone, Copy)]
enum Operand {
    /// An integer (`i128` holds every integer serde_json reads exactly).
    Int(i128),
    /// A number with a fraction or an exponent.
    Float(f64),
}

impl Operand {
    fn as_f64(self) -> f64 {
        match self {
            Operand::Int(n) => n as f64,
            Operand::Float(x) => x,
        }
    }
}

impl<'de> Deserialize<'de> for Operand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Operand, D::Error> {
        struct Number;
        impl Visitor<'_> for Number {
            type Value = Operand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Operand, E> {
                Ok(Operand::Int(n.into()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Operand, E> {
                Ok(Operand::Int(n.into()))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Operand, E> {
                Ok(Operand::Float(x))
            }
        }
        d.deserialize_any(Number)
    }
}

/// `sleep`: params `[ms]`, at most [`MAX_SLEEP_MS`]; the result is `null`
/// once the worker has slept that long. (It holds its worker meanwhile:
/// a thread per connection, blocking code.)
///
/// # Errors
/// `-32602` for anything but `[n]` with `0 <= n <= 10000`.
fn sleep(params: Option<&RawValue>, out: &mut Vec<u8>) -> Result<(), RpcError> {
    let (ms,): (u64,) = params_as(params)?;
    if ms > MAX_SLEEP_MS {
        return Err(RpcError::invalid_params());
    }
    std::thread::sleep(Duration::from_millis(ms));
    out.extend_from_slice(b"null");
    Ok(())
}

/// The params of `forward`: the call to make upstream.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Target<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

/// Ids of the requests `forward` sends, so that a reply is matched to its
/// request (a pooled connection must never hand one call another's reply).
static NEXT_UPSTREAM_ID: AtomicU64 = AtomicU64::new(1);

/// `forward`: params `{"method":M,"params":P}`; calls `M` on the upstream
/// and answers with its result, or its error.
///
/// The upstream gets the time left before this request's deadline
/// (`syncnet::service::time_left`), or [`UPSTREAM_TIMEOUT`] without one.
///
/// # Errors
/// `-32001` without an upstream, when it cannot be reached or does not
/// answer in time; `-32602` for params of the wrong shape; the upstream's
/// own error as it sent it.
fn forward(
    upstream: Option<&dyn Upstream>,
    params: Option<&RawValue>,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<(), RpcError> {
    let upstream = upstream.ok_or_else(|| {
        RpcError::upstream("no upstream configured (start the server with --forward ADDR)")
    })?;
    let target: Target<'_> = params_as(params)?;
    let deadline = Instant::now() + syncnet::service::time_left().unwrap_or(UPSTREAM_TIMEOUT);
    let id = NEXT_UPSTREAM_ID.fetch_add(1, Ordering::Relaxed);
    // A client span, child of this request's; its `traceparent` goes in
    // the upstream request. Ends (and is recorded) when this returns.
    let mut span = ClientSpan::start(JsonRpc::RPC_SYSTEM, &target.method);
    scratch.request.clear();
    upstream::frame_request(
        &mut scratch.request,
        id,
        &target.method,
        target.params,
        Some(&span),
    )
    .map_err(RpcError::upstream)?;
    if let Err(e) = upstream.round_trip(&scratch.request, &mut scratch.reply, deadline) {
        span.set_error(e.to_string());
        return Err(RpcError::upstream(e));
    }
    let outcome = upstream::read_reply(&scratch.reply, id).map_err(|e| {
        span.set_error(e.to_string());
        RpcError::upstream(e)
    })?;
    match outcome {
        Outcome::Result(result) => {
            out.extend_from_slice(result.get().as_bytes());
            Ok(())
        }
        Outcome::Error(error) => {
            span.set_error(format!("error {}: {}", error.code, error.message));
            Err(RpcError {
                code: error.code,
                message: Cow::Owned(error.message.into_owned()),
                data: error.data.map(ToOwned::to_owned),
                kind: syncnet::RequestErrorKind::Handler,
            })
        }
    }
}
