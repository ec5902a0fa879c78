//! Tracing across services: `rpc call` → `rpc serve` A → (`forward`) →
//! `rpc serve` B, every process exporting to a receiver written here
//! (tests/support/otlp_receiver.rs). One trace id across the chain, each
//! span the child of the one that called it, errors marked; a request
//! without (or with a malformed) `traceparent` starts a new trace; a
//! service with tracing off still passes the trace on. Hostile contexts
//! (a huge `tracestate`, odd or non-ASCII values, a huge method name) are
//! never an error, and what is passed on or exported is bounded.

mod support;

#[path = "support/binary.rs"]
mod binary;
#[path = "support/example.rs"]
mod example;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;
#[path = "support/rpc_process.rs"]
mod rpc_process;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use binary::{Binary, Finished};
use otlp_receiver::{Mode, ReceivedSpan, Receiver};
use rpc_process::{rpc_call, rpc_command, rpc_serve};

/// OTLP span kinds and status codes.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const ERROR: i32 = 2;

/// The trace id `rpc call` printed on stderr (`trace_id=<32 hex>`).
fn printed_trace_id(call: &Finished) -> String {
    let id = call
        .stderr
        .lines()
        .find_map(|line| line.strip_prefix("trace_id="))
        .unwrap_or_else(|| panic!("no trace_id= line on stderr: {call:?}"))
        .to_string();
    assert!(
        id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "not 32 lower-case hex digits: {id:?}"
    );
    id
}

/// The one span of `trace` with `kind` and `service`, among `spans`.
fn one<'a>(
    spans: &'a [ReceivedSpan],
    trace: &str,
    kind: i32,
    service: &str,
    name: &str,
) -> &'a ReceivedSpan {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == trace && s.kind == kind && s.service == service && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {service} {name} span of kind {kind} in {spans:#?}"
    );
    found[0]
}

/// A caller → A (`--forward` B) → B chain, A and B named by
/// `OTEL_SERVICE_NAME`, all exporting to `receiver` (A only when
/// `a_traces`).
struct Chain {
    a: Binary,
    _b: Binary,
}

fn chain(receiver: &Receiver, a_traces: bool) -> Chain {
    let endpoint = receiver.endpoint();
    let mut b = rpc_command(&["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
    b.args(["--otlp-endpoint", &endpoint])
        .env("OTEL_SERVICE_NAME", "b");
    let b = Binary::start(b);
    let forward = b.listen.to_string();
    let mut a = rpc_command(&["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
    a.args(["--forward", &forward])
        .env("OTEL_SERVICE_NAME", "a");
    if a_traces {
        // Through the environment, to cover the precedence's second step.
        a.env("SYNCNET_OTLP_ENDPOINT", &endpoint);
    }
    Chain {
        a: Binary::start(a),
        _b: b,
    }
}

#[test]
fn a_call_chain_forms_one_trace() {
    let receiver = Receiver::start(Mode::Answer);
    let chain = chain(&receiver, true);
    let a = chain.a.listen.to_string();
    let call = rpc_call(&[
        "--connect",
        &a,
        "--otlp-endpoint",
        &receiver.endpoint(),
        "forward",
        r#"{"method":"echo","params":[1,"x"]}"#,
    ]);
    assert_eq!(call.code(), 0, "{call:?}");
    assert_eq!(call.stdout_text().trim(), r#"[1,"x"]"#);
    let trace = printed_trace_id(&call);

    let spans = receiver.wait_for("the four spans of the call", |spans| {
        spans.iter().filter(|s| s.trace_id == trace).count() >= 4
    });
    assert_eq!(
        spans.iter().filter(|s| s.trace_id == trace).count(),
        4,
        "{spans:#?}"
    );
    let caller = one(&spans, &trace, CLIENT, "rpc", "forward");
    let a_server = one(&spans, &trace, SERVER, "a", "forward");
    let a_client = one(&spans, &trace, CLIENT, "a", "echo");
    let b_server = one(&spans, &trace, SERVER, "b", "echo");
    assert_eq!(caller.parent_span_id, "", "the caller's span is the root");
    assert_eq!(a_server.parent_span_id, caller.span_id);
    assert_eq!(a_client.parent_span_id, a_server.span_id);
    assert_eq!(b_server.parent_span_id, a_client.span_id);
    for span in [caller, a_server, a_client, b_server] {
        assert_ne!(span.status_code, ERROR, "{span:?}");
        assert_eq!(span.attr("rpc.system"), Some("jsonrpc"), "{span:?}");
        assert_eq!(
            span.attr("rpc.method"),
            Some(span.name.as_str()),
            "{span:?}"
        );
    }
    for server in [a_server, b_server] {
        assert_eq!(
            server.attr("network.peer.address"),
            Some("127.0.0.1"),
            "{server:?}"
        );
        assert!(server.attr("network.peer.port").is_some(), "{server:?}");
        assert!(server.attr("syncnet.conn_id").is_some(), "{server:?}");
    }
}

#[test]
fn an_error_reply_from_the_end_of_the_chain_marks_every_span_error() {
    let receiver = Receiver::start(Mode::Answer);
    let chain = chain(&receiver, true);
    let a = chain.a.listen.to_string();
    let call = rpc_call(&[
        "--connect",
        &a,
        "--otlp-endpoint",
        &receiver.endpoint(),
        "forward",
        r#"{"method":"no_such_method"}"#,
    ]);
    assert_eq!(call.code(), 1, "{call:?}");
    assert!(call.stderr.contains("error -32601"), "{call:?}");
    let trace = printed_trace_id(&call);
    let spans = receiver.wait_for("the four spans of the call", |spans| {
        spans.iter().filter(|s| s.trace_id == trace).count() >= 4
    });
    let b_server = one(&spans, &trace, SERVER, "b", "no_such_method");
    let a_client = one(&spans, &trace, CLIENT, "a", "no_such_method");
    let a_server = one(&spans, &trace, SERVER, "a", "forward");
    let caller = one(&spans, &trace, CLIENT, "rpc", "forward");
    for span in [b_server, a_client, a_server, caller] {
        assert_eq!(span.status_code, ERROR, "{span:?}");
    }
    assert_eq!(b_server.parent_span_id, a_client.span_id);
}

#[test]
fn a_service_with_tracing_off_passes_the_trace_on() {
    let receiver = Receiver::start(Mode::Answer);
    let chain = chain(&receiver, false);
    let a = chain.a.listen.to_string();
    let call = rpc_call(&[
        "--connect",
        &a,
        "--otlp-endpoint",
        &receiver.endpoint(),
        "forward",
        r#"{"method":"echo"}"#,
    ]);
    assert_eq!(call.code(), 0, "{call:?}");
    let trace = printed_trace_id(&call);
    let spans = receiver.wait_for("the caller's and B's spans", |spans| {
        spans.iter().filter(|s| s.trace_id == trace).count() >= 2
    });
    let caller = one(&spans, &trace, CLIENT, "rpc", "forward");
    let b_server = one(&spans, &trace, SERVER, "b", "echo");
    // A records nothing and passes the caller's traceparent on unchanged.
    assert_eq!(b_server.parent_span_id, caller.span_id);
    assert!(spans.iter().all(|s| s.service != "a"), "{spans:#?}");
}

/// Sends one JSON-RPC request as a length-prefixed frame and returns the
/// reply's payload.
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let len = u32::try_from(request.len()).expect("small request");
    stream.write_all(&len.to_be_bytes()).expect("send");
    stream.write_all(request.as_bytes()).expect("send");
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).expect("reply length");
    let mut reply = vec![0; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut reply).expect("reply");
    String::from_utf8(reply).expect("UTF-8 reply")
}

#[test]
fn a_request_without_or_with_a_malformed_traceparent_starts_a_new_trace() {
    let receiver = Receiver::start(Mode::Answer);
    let server = rpc_serve(&["--otlp-endpoint", &receiver.endpoint()]);
    let cases = [
        (
            "none",
            r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":"none"}"#,
        ),
        (
            "malformed",
            r#"{"jsonrpc":"2.0","id":2,"method":"echo","params":"malformed","traceparent":"00-xyz-01"}"#,
        ),
        (
            "zero",
            r#"{"jsonrpc":"2.0","id":3,"method":"echo","params":"zero","traceparent":"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}"#,
        ),
        (
            "valid",
            r#"{"jsonrpc":"2.0","id":4,"method":"echo","params":"valid","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
        ),
    ];
    for (i, (params, request)) in cases.iter().enumerate() {
        let reply = exchange(server.listen, request);
        assert_eq!(
            reply,
            format!(r#"{{"jsonrpc":"2.0","id":{},"result":"{params}"}}"#, i + 1),
            "never an error reply"
        );
    }
    let spans = receiver.wait_for("four server spans", |spans| {
        spans
            .iter()
            .filter(|s| s.kind == SERVER && s.name == "echo")
            .count()
            >= 4
    });
    let echo: Vec<_> = spans.iter().filter(|s| s.name == "echo").collect();
    let roots: Vec<_> = echo
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(
        roots.len(),
        3,
        "none, malformed and zero start new traces: {echo:#?}"
    );
    let mut traces: Vec<_> = roots.iter().map(|s| s.trace_id.as_str()).collect();
    traces.sort_unstable();
    traces.dedup();
    assert_eq!(traces.len(), 3, "three different traces: {echo:#?}");
    let child = echo
        .iter()
        .find(|s| !s.parent_span_id.is_empty())
        .expect("the valid one continues its trace");
    assert_eq!(child.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(child.parent_span_id, "00f067aa0ba902b7");
    assert!(!traces.contains(&child.trace_id.as_str()));
}

/// A fake upstream: answers every request on the first connection with
/// `"ok"`, and sends each request it read to the test.
fn fake_upstream() -> (SocketAddr, std::sync::mpsc::Receiver<serde_json::Value>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake upstream");
    let addr = listener.local_addr().expect("its address");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let _ = conn.set_read_timeout(Some(otlp_receiver::WAIT));
        loop {
            let mut prefix = [0u8; 4];
            if conn.read_exact(&mut prefix).is_err() {
                return;
            }
            let mut frame = vec![0; u32::from_be_bytes(prefix) as usize];
            if conn.read_exact(&mut frame).is_err() {
                return;
            }
            let request: serde_json::Value = serde_json::from_slice(&frame).expect("JSON request");
            let reply = format!(
                r#"{{"jsonrpc":"2.0","id":{},"result":"ok"}}"#,
                request["id"]
            );
            let len = u32::try_from(reply.len()).expect("small reply");
            if conn.write_all(&len.to_be_bytes()).is_err()
                || conn.write_all(reply.as_bytes()).is_err()
                || tx.send(request).is_err()
            {
                return;
            }
        }
    });
    (addr, rx)
}

#[test]
fn hostile_trace_context_is_never_an_error_and_is_passed_on_bounded() {
    let receiver = Receiver::start(Mode::Answer);
    let (upstream, forwarded) = fake_upstream();
    let server = rpc_serve(&[
        "--otlp-endpoint",
        &receiver.endpoint(),
        "--forward",
        &upstream.to_string(),
    ]);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // 600 KB of tracestate: what is passed on is W3C's 32 members at most,
    // within 512 bytes.
    let huge = vec!["vendor=value"; 50_000].join(",");
    let request = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"forward","params":{{"method":"echo"}},"traceparent":"{parent}","tracestate":"{huge}"}}"#
    );
    assert_eq!(
        exchange(server.listen, &request),
        r#"{"jsonrpc":"2.0","id":1,"result":"ok"}"#
    );
    let sent = forwarded
        .recv_timeout(otlp_receiver::WAIT)
        .expect("forwarded");
    let state = sent["tracestate"].as_str().expect("a tracestate passed on");
    assert!(state.len() <= 512, "{} bytes passed on", state.len());
    assert_eq!(state.split(',').count(), 32, "{state}");
    // Malformed, odd or non-ASCII contexts: answered, never an error.
    let odd = [
        r#""traceparent":"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01""#,
        r#""traceparent":"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01""#,
        r#""traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra""#,
        r#""traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é""#,
        r#""traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"a=\u00e9\u0000""#,
        r#""traceparent":7,"tracestate":["a"]"#,
    ];
    for (i, context) in odd.iter().enumerate() {
        let id = i + 2;
        let request =
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"echo","params":"x",{context}}}"#);
        assert_eq!(
            exchange(server.listen, &request),
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"x"}}"#),
            "{context}"
        );
    }
    // A method name of half a megabyte: its span's name is cut short.
    let method = "m".repeat(512 * 1024);
    let request = format!(r#"{{"jsonrpc":"2.0","id":99,"method":"{method}"}}"#);
    assert!(exchange(server.listen, &request).contains(r#""error""#));
    let spans = receiver.wait_for("the long method's span", |spans| {
        spans.iter().any(|s| s.name.starts_with("mmmm"))
    });
    let long = spans
        .iter()
        .find(|s| s.name.starts_with("mmmm"))
        .expect("found above");
    assert!(
        long.name.len() <= 128,
        "a {}-byte span name",
        long.name.len()
    );
    assert_eq!(long.attr("rpc.method"), Some(long.name.as_str()));
}
