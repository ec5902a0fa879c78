//! The `rpc` example (`examples/rpc`): JSON-RPC 2.0 over length-prefixed
//! frames.
//!
//! The protocol's files are compiled into this test (`#[path]`) and served
//! in-process, for the exact reply bytes of every method and error code,
//! notifications, `"id":null`, batches, frame limits, deadlines and
//! `forward` (through real servers and through a fake `Upstream`). The
//! example's binary runs as a process for what only it does: the start-up
//! log line, `--request-rate` and its metric, the refusal frame of a full
//! server, `forward` between two processes, and `rpc call`'s output and
//! exit codes.

mod support;

#[path = "support/binary.rs"]
mod binary;
#[path = "support/example.rs"]
mod example;
#[allow(dead_code)]
#[path = "../examples/rpc/methods.rs"]
mod methods;
#[allow(dead_code)]
#[path = "../examples/rpc/protocol.rs"]
mod protocol;
#[path = "support/rpc_process.rs"]
mod rpc_process;
#[allow(dead_code)]
#[path = "../examples/rpc/upstream.rs"]
mod upstream;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use binary::Binary;
use protocol::{JsonRpc, MAX_FRAME};
use rpc_process::{rpc_call, rpc_command, rpc_serve};
use support::*;
use syncnet::ClientPool;
use syncnet::ServerHandle;
use syncnet::service::FramedService;
use upstream::{ConnectPerCall, Pooled, Upstream};

/// What a full server writes before closing: this exact frame.
const REFUSAL: &[u8] =
    b"\x00\x00\x00\x4b{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\"message\":\"server busy\"}}";

/// Every method, as (request, reply) payloads.
const METHODS: &[(&str, &str)] = &[
    // A trace context that is not a string is ignored, never an error.
    (
        r#"{"jsonrpc":"2.0","id":58,"method":"echo","traceparent":1,"tracestate":[]}"#,
        r#"{"jsonrpc":"2.0","id":58,"result":null}"#,
    ),
    // echo: the params byte for byte, whatever the member order or spacing.
    (
        r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":[1,2,"x"],"b":null}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"a":[1,2,"x"],"b":null}}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":"s-2","method":"echo"}"#,
        r#"{"jsonrpc":"2.0","id":"s-2","result":null}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":3,"method":"echo","params":"caf\u00e9 \"quoted\" é"}"#,
        r#"{"jsonrpc":"2.0","id":3,"result":"caf\u00e9 \"quoted\" é"}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":4,"method":"echo","params":[1, 2]}"#,
        r#"{"jsonrpc":"2.0","id":4,"result":[1, 2]}"#,
    ),
    (
        r#"{"method":"echo","params":7,"id":5,"jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"2.0","id":5,"result":7}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":null,"method":"echo","params":"x"}"#,
        r#"{"jsonrpc":"2.0","id":null,"result":"x"}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":-7.5,"method":"ec\u0068o","params":true}"#,
        r#"{"jsonrpc":"2.0","id":-7.5,"result":true}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":8,"method":"echo","params":{},"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"congo=t61rcWkgMzE"}"#,
        r#"{"jsonrpc":"2.0","id":8,"result":{}}"#,
    ),
    // add: an integer when every operand is one, else a float.
    (
        r#"{"jsonrpc":"2.0","id":10,"method":"add","params":[1,2,3]}"#,
        r#"{"jsonrpc":"2.0","id":10,"result":6}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":11,"method":"add","params":[-5,2]}"#,
        r#"{"jsonrpc":"2.0","id":11,"result":-3}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":12,"method":"add","params":[1.5,2]}"#,
        r#"{"jsonrpc":"2.0","id":12,"result":3.5}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":13,"method":"add","params":[1,2.0]}"#,
        r#"{"jsonrpc":"2.0","id":13,"result":3.0}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":14,"method":"add","params":[]}"#,
        r#"{"jsonrpc":"2.0","id":14,"result":0}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":15,"method":"add","params":[0.1,0.2]}"#,
        r#"{"jsonrpc":"2.0","id":15,"result":0.30000000000000004}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":16,"method":"add","params":[9223372036854775807,-1]}"#,
        r#"{"jsonrpc":"2.0","id":16,"result":9223372036854775806}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":17,"method":"add","params":[-9223372036854775808]}"#,
        r#"{"jsonrpc":"2.0","id":17,"result":-9223372036854775808}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":18,"method":"add","params":[1e2,1]}"#,
        r#"{"jsonrpc":"2.0","id":18,"result":101.0}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":19,"method":"add","params":[18446744073709551615,-18446744073709551615]}"#,
        r#"{"jsonrpc":"2.0","id":19,"result":0.0}"#,
    ),
    // sleep: null once slept.
    (
        r#"{"jsonrpc":"2.0","id":20,"method":"sleep","params":[0]}"#,
        r#"{"jsonrpc":"2.0","id":20,"result":null}"#,
    ),
    (
        r#"{"jsonrpc":"2.0","id":21,"method":"sleep","params":[20]}"#,
        r#"{"jsonrpc":"2.0","id":21,"result":null}"#,
    ),
    // forward without --forward.
    (
        r#"{"jsonrpc":"2.0","id":30,"method":"forward","params":{"method":"echo","params":1}}"#,
        r#"{"jsonrpc":"2.0","id":30,"error":{"code":-32001,"message":"upstream failure: no upstream configured (start the server with --forward ADDR)"}}"#,
    ),
];

/// Every error code, as (request, reply) payloads.
const ERRORS: &[(&[u8], &str)] = &[
    // -32601
    (
        br#"{"jsonrpc":"2.0","id":40,"method":"nope"}"#,
        r#"{"jsonrpc":"2.0","id":40,"error":{"code":-32601,"message":"Method not found"}}"#,
    ),
    // -32602: add
    (
        br#"{"jsonrpc":"2.0","id":41,"method":"add","params":[9223372036854775807,1]}"#,
        r#"{"jsonrpc":"2.0","id":41,"error":{"code":-32602,"message":"Invalid params"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":42,"method":"add","params":[1,"2"]}"#,
        r#"{"jsonrpc":"2.0","id":42,"error":{"code":-32602,"message":"Invalid params"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":43,"method":"add","params":{"a":1}}"#,
        r#"{"jsonrpc":"2.0","id":43,"error":{"code":-32602,"message":"Invalid params"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":44,"method":"add"}"#,
        r#"{"jsonrpc":"2.0","id":44,"error":{"code":-32602,"message":"Invalid params"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":45,"method":"add","params":[1e308,1e308]}"#,
        r#"{"jsonrpc":"2.0","id":45,"error":{"code":-32602,"message":"Invalid params"}}"#,
    ),
    // -32602: sleep
    (
        br#"{"jsonrpc":"2.0","id":46,"method":"sleep","params":[10001]}"#,
        r#"{"jsonrpc":"2.0","id":46,"error":{"code":-32602,"message":"Invalid params"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":47,"method":"sleep","params":[-1]}"#,
        r#"{"jsonrpc":"2.0","id":47,"error":{"code":-32602,"message":"Invalid params"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":48,"method":"sleep","params":[1.5]}"#,
        r#"{"jsonrpc":"2.0","id":48,"error":{"code":-32602,"message":"Invalid params"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":49,"method":"sleep","params":[1,2]}"#,
        r#"{"jsonrpc":"2.0","id":49,"error":{"code":-32602,"message":"Invalid params"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":50,"method":"sleep"}"#,
        r#"{"jsonrpc":"2.0","id":50,"error":{"code":-32602,"message":"Invalid params"}}"#,
    ),
    // -32700: not JSON, or not UTF-8.
    (
        br#"{"jsonrpc":"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
    ),
    (
        b"hello",
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
    ),
    (
        b"",
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
    ),
    (
        b"{\"jsonrpc\":\"2.0\",\"id\":51,\"method\":\"echo\",\"params\":\"\xff\xfe\"}",
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":52,"extra":1,"method":"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
    ),
    (
        br#"[{"jsonrpc":"2.0","id":1,"method":"echo"}"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}"#,
    ),
    // -32600: batches and other JSON that is not a request object...
    (
        br#"[{"jsonrpc":"2.0","id":1,"method":"echo"},{"jsonrpc":"2.0","id":2,"method":"echo"}]"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    (
        b"[]",
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    (
        b"42",
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    (
        br#""a string""#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    // ... and objects that are not valid requests: answered with their id
    // when it can be read, else null.
    (
        br#"{"jsonrpc":"2.0","id":53,"method":"echo","extra":1}"#,
        r#"{"jsonrpc":"2.0","id":53,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    (
        br#"{"jsonrpc":"1.0","id":54,"method":"echo"}"#,
        r#"{"jsonrpc":"2.0","id":54,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    (
        br#"{"id":55,"method":"echo"}"#,
        r#"{"jsonrpc":"2.0","id":55,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":56,"method":1}"#,
        r#"{"jsonrpc":"2.0","id":56,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":57}"#,
        r#"{"jsonrpc":"2.0","id":57,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":{"a":1},"method":"echo"}"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":true,"method":"echo"}"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    (
        br#"{"jsonrpc":"2.0","id":59,"id":60,"method":"echo"}"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
    // An invalid request without an id still gets its error (the client
    // cannot know it was taken for a notification).
    (
        br#"{"jsonrpc":"2.0","method":1}"#,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#,
    ),
];

// ---------------------------------------------------------------- helpers

/// `payload` with its 4-byte big-endian length in front.
fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a frame under 4 GiB");
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(payload);
    framed
}

/// Reads one frame's payload, as text.
fn read_frame(stream: &mut impl Read) -> String {
    let mut header = [0u8; 4];
    stream
        .read_exact(&mut header)
        .expect("a reply frame's length");
    let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut payload).expect("a reply frame");
    String::from_utf8(payload).expect("a UTF-8 reply")
}

/// A connection speaking frames, with every wait bounded by [`WAIT`].
struct Rpc {
    stream: TcpStream,
}

impl Rpc {
    fn connect(addr: SocketAddr) -> Rpc {
        Rpc {
            stream: connect(addr),
        }
    }

    fn send(&mut self, payload: &[u8]) {
        self.stream
            .write_all(&frame(payload))
            .expect("send a frame");
    }

    fn recv(&mut self) -> String {
        read_frame(&mut self.stream)
    }

    fn call(&mut self, request: &str) -> String {
        self.send(request.as_bytes());
        self.recv()
    }
}

/// `{"jsonrpc":"2.0","id":ID,"result":RESULT}`.
fn result(id: u64, result: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

/// `{"jsonrpc":"2.0","id":ID,"error":{"code":-32000,"message":"server busy"}}`.
fn busy(id: u64) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32000,"message":"server busy"}}}}"#)
}

/// An echo request.
fn echo(id: u64, params: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"echo","params":{params}}}"#)
}

/// A forward request for `method` with `params`.
fn forward(id: u64, method: &str, params: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"forward","params":{{"method":"{method}","params":{params}}}}}"#
    )
}

/// A `forward` call (id `id`) answered `-32001 upstream failure: ...`
/// within 2 s.
fn expect_upstream_failure_within_2_s(rpc: &mut Rpc, id: u64) {
    let started = Instant::now();
    let reply = rpc.call(&forward(id, "echo", "1"));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let head = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32001,"message":"upstream failure: "#
    );
    assert!(reply.starts_with(&head), "{reply}");
}

/// The example's protocol served in-process.
fn serve(service: FramedService<JsonRpc>) -> ServerHandle {
    spawn_with(builder(), service)
}

/// The example's protocol with no upstream, no rate limit, no deadline.
fn plain() -> ServerHandle {
    serve(FramedService::new(JsonRpc::new()))
}

fn errors(kind: &str) -> String {
    format!("syncnet_request_errors_total{{kind=\"{kind}\"}}")
}

// ------------------------------------------------------- the exact bytes

#[test]
fn every_method_answers_with_exact_bytes() {
    let server = plain();
    let mut rpc = Rpc::connect(server.local_addr());
    for (request, reply) in METHODS {
        assert_eq!(rpc.call(request), *reply, "the reply to {request}");
    }
    server.shutdown();
}

#[test]
fn every_error_code_answers_with_exact_bytes_and_the_connection_stays_open() {
    let server = plain();
    let mut rpc = Rpc::connect(server.local_addr());
    for (request, reply) in ERRORS {
        rpc.send(request);
        assert_eq!(
            rpc.recv(),
            *reply,
            "the reply to {}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(
        rpc.call(&echo(1, "\"still open\"")),
        result(1, "\"still open\"")
    );
    server.shutdown();
}

#[test]
fn a_pipelined_burst_is_answered_in_request_order() {
    let server = plain();
    let mut rpc = Rpc::connect(server.local_addr());
    let mut burst = Vec::new();
    let mut expected = Vec::new();
    for (request, reply) in METHODS {
        burst.extend(frame(request.as_bytes()));
        expected.push(*reply);
    }
    for (request, reply) in ERRORS {
        burst.extend(frame(request));
        expected.push(*reply);
    }
    rpc.stream.write_all(&burst).unwrap();
    for reply in expected {
        assert_eq!(rpc.recv(), reply);
    }
    server.shutdown();
}

#[test]
fn the_refusal_frame_is_a_busy_error_with_a_null_id() {
    assert_eq!(protocol::refusal_frame(), REFUSAL);
}

#[test]
fn notifications_get_no_reply_and_the_next_request_gets_its_own() {
    let server = plain();
    let mut rpc = Rpc::connect(server.local_addr());
    // Notifications: a method, an unknown method, bad params. Not one is
    // answered, not even with an error.
    rpc.send(br#"{"jsonrpc":"2.0","method":"echo","params":1}"#);
    rpc.send(br#"{"jsonrpc":"2.0","method":"nope"}"#);
    rpc.send(br#"{"jsonrpc":"2.0","method":"add","params":"x"}"#);
    rpc.send(br#"{"jsonrpc":"2.0","method":"sleep","params":[10]}"#);
    assert_eq!(rpc.call(&echo(5, "5")), result(5, "5"));
    // "id":null is a request, not a notification.
    assert_eq!(
        rpc.call(r#"{"jsonrpc":"2.0","id":null,"method":"add","params":[2,2]}"#),
        r#"{"jsonrpc":"2.0","id":null,"result":4}"#
    );
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_requests_total"), 6.0);
    server.shutdown();
}

#[test]
fn a_frame_over_1_mib_gets_invalid_request_then_eof() {
    let server = plain();
    let mut rpc = Rpc::connect(server.local_addr());
    let too_long = u32::try_from(MAX_FRAME + 1).unwrap();
    rpc.stream.write_all(&too_long.to_be_bytes()).unwrap();
    assert_eq!(
        rpc.recv(),
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request"}}"#
    );
    expect_closed_by_server(&mut rpc.stream);
    wait_metric(&server, &errors("frame_too_large"), 1.0);
    server.shutdown();
}

#[test]
fn a_frame_of_exactly_1_mib_is_served() {
    let server = plain();
    let mut rpc = Rpc::connect(server.local_addr());
    let head = r#"{"jsonrpc":"2.0","id":1,"method":"echo","params":""#;
    let text = "x".repeat(MAX_FRAME - head.len() - 2);
    let request = format!("{head}{text}\"}}");
    assert_eq!(request.len(), MAX_FRAME);
    assert_eq!(rpc.call(&request), result(1, &format!("\"{text}\"")));
    server.shutdown();
}

#[test]
fn error_kinds_are_counted_malformed_or_handler() {
    let server = plain();
    let mut rpc = Rpc::connect(server.local_addr());
    let requests: [&[u8]; 7] = [
        br#"{"jsonrpc":"2.0","id":1,"method":"echo"}"#, // ok
        br#"{"jsonrpc":"2.0","id":2,"method":"nope"}"#, // -32601 handler
        br#"{"jsonrpc":"2.0","id":3,"method":"add"}"#,  // -32602 handler
        br#"{"jsonrpc":"2.0","id":4,"method":"forward"}"#, // -32001 handler
        b"not json",                                    // -32700 malformed
        b"[]",                                          // -32600 malformed
        br#"{"jsonrpc":"1.0","id":7,"method":"echo"}"#, // -32600 malformed
    ];
    for request in requests {
        rpc.send(request);
        rpc.recv();
    }
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_requests_total"), 7.0);
    assert_eq!(metric(&text, &errors("handler")), 3.0);
    assert_eq!(metric(&text, &errors("malformed")), 3.0);
    server.shutdown();
}

#[test]
fn a_request_past_its_deadline_is_answered_busy_with_its_id() {
    let server =
        serve(FramedService::new(JsonRpc::new()).request_timeout(Duration::from_millis(150)));
    let mut rpc = Rpc::connect(server.local_addr());
    assert_eq!(
        rpc.call(r#"{"jsonrpc":"2.0","id":"slow","method":"sleep","params":[400]}"#),
        r#"{"jsonrpc":"2.0","id":"slow","error":{"code":-32000,"message":"server busy"}}"#
    );
    // A notification past its deadline gets no reply either.
    rpc.send(br#"{"jsonrpc":"2.0","method":"sleep","params":[400]}"#);
    assert_eq!(rpc.call(&echo(2, "2")), result(2, "2"));
    wait_metric(&server, &errors("deadline"), 2.0);
    server.shutdown();
}

// ---------------------------------------------------------------- forward

#[test]
fn forward_calls_the_upstream_and_passes_its_errors_on() {
    let upstream = plain();
    let front = serve(FramedService::new(JsonRpc::forward_to(
        ConnectPerCall::new(upstream.local_addr()),
    )));
    let mut rpc = Rpc::connect(front.local_addr());
    assert_eq!(rpc.call(&forward(1, "add", "[1,2,3.5]")), result(1, "6.5"));
    assert_eq!(
        rpc.call(&forward(2, "echo", r#"{"z":[true,null],"a":"é"}"#)),
        result(2, r#"{"z":[true,null],"a":"é"}"#)
    );
    assert_eq!(
        rpc.call(r#"{"jsonrpc":"2.0","id":3,"method":"forward","params":{"method":"echo"}}"#),
        result(3, "null")
    );
    // Forwarding a forward: the upstream has no upstream.
    assert_eq!(
        rpc.call(&forward(4, "forward", r#"{"method":"echo"}"#)),
        r#"{"jsonrpc":"2.0","id":4,"error":{"code":-32001,"message":"upstream failure: no upstream configured (start the server with --forward ADDR)"}}"#
    );
    // The upstream's errors, as it sent them.
    assert_eq!(
        rpc.call(&forward(5, "nope", "null")),
        r#"{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"Method not found"}}"#
    );
    assert_eq!(
        rpc.call(&forward(6, "add", r#""x""#)),
        r#"{"jsonrpc":"2.0","id":6,"error":{"code":-32602,"message":"Invalid params"}}"#
    );
    // forward's own params.
    for params in [
        r#"{"params":1}"#,
        r#"{"method":1}"#,
        r#"{"method":"echo","x":1}"#,
        "[]",
    ] {
        assert_eq!(
            rpc.call(&format!(
                r#"{{"jsonrpc":"2.0","id":7,"method":"forward","params":{params}}}"#
            )),
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Invalid params"}}"#,
            "forward with params {params}"
        );
    }

    // The upstream goes away: -32001 at once (connection refused).
    upstream.shutdown();
    expect_upstream_failure_within_2_s(&mut rpc, 8);
    front.shutdown();
}

#[test]
fn forward_gives_up_on_a_silent_upstream_after_2_s() {
    // Connections to it complete (the kernel's backlog) but nobody answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let pool = ClientPool::builder().build().unwrap();
    let fronts = [
        serve(FramedService::new(JsonRpc::forward_to(
            ConnectPerCall::new(addr),
        ))),
        pooled_front(addr, &pool),
    ];
    // Both at once: each waits 2 s.
    let calls: Vec<_> = fronts
        .iter()
        .map(|front| {
            let mut rpc = Rpc::connect(front.local_addr());
            thread::spawn(move || {
                let started = Instant::now();
                (rpc.call(&forward(1, "echo", "1")), started.elapsed())
            })
        })
        .collect();
    for (call, upstream) in calls.into_iter().zip(["connect per call", "pooled"]) {
        let (reply, took) = call.join().unwrap();
        assert_eq!(
            reply,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"upstream failure: no reply before the deadline"}}"#,
            "{upstream}"
        );
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
            "{upstream}: gave up after {took:?}"
        );
    }
    assert_eq!(pool.stats().created, 1);
    assert_eq!(pool.stats().idle, 0, "the timed-out connection was closed");
    for front in fronts {
        front.shutdown();
    }
}

#[test]
fn forward_waits_only_the_time_left_before_the_deadline() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let front = serve(
        FramedService::new(JsonRpc::forward_to(ConnectPerCall::new(
            silent.local_addr().unwrap(),
        )))
        .request_timeout(Duration::from_millis(300)),
    );
    let mut rpc = Rpc::connect(front.local_addr());
    let started = Instant::now();
    assert_eq!(rpc.call(&forward(9, "echo", "1")), busy(9));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    front.shutdown();
}

/// `forward` over a pool of connections to `upstream`, as `rpc serve
/// --forward` has it.
fn pooled_front(upstream: SocketAddr, pool: &ClientPool) -> ServerHandle {
    let pooled = Pooled::new(pool.clone(), upstream.to_string());
    serve(FramedService::new(JsonRpc::forward_to(pooled)))
}

#[test]
fn pooled_forward_reuses_one_connection_and_survives_an_upstream_restart() {
    let upstream = plain();
    let addr = upstream.local_addr();
    let pool = ClientPool::builder().build().unwrap();
    let front = pooled_front(addr, &pool);
    let mut rpc = Rpc::connect(front.local_addr());
    for id in 1..=1000 {
        assert_eq!(
            rpc.call(&forward(id, "add", &format!("[{id},1]"))),
            result(id, &(id + 1).to_string())
        );
    }
    assert_eq!(
        metric(&metrics(&upstream), "syncnet_connections_accepted_total"),
        1.0,
        "1000 sequential calls, one upstream connection"
    );
    let stats = pool.stats();
    assert_eq!((stats.created, stats.reused, stats.idle), (1, 999, 1));

    // The upstream restarts on the same port: the pooled connection it
    // closed is found closed before the next call and replaced.
    upstream.shutdown();
    let restarted = spawn_on(addr, FramedService::new(JsonRpc::new()));
    assert_eq!(rpc.call(&forward(1001, "echo", "[1]")), result(1001, "[1]"));
    let stats = pool.stats();
    assert_eq!((stats.created, stats.replaced), (2, 1));
    assert_eq!(
        metric(&metrics(&restarted), "syncnet_connections_accepted_total"),
        1.0
    );

    // Gone for good: -32001, at once.
    restarted.shutdown();
    expect_upstream_failure_within_2_s(&mut rpc, 1002);
    assert_eq!(pool.stats().in_use, 0, "no connection left lent out");
    front.shutdown();
}

#[test]
fn pooled_forward_closes_a_connection_that_failed_mid_call() {
    // The upstream answers its first request, then reads the second and
    // says nothing: that call times out, and its connection, which may
    // still get the late reply, must not serve the next call.
    let silent_after_one = |conn: &mut syncnet::Conn| -> io::Result<()> {
        let mut header = [0u8; 4];
        conn.read_exact(&mut header)?;
        let mut request = vec![0u8; u32::from_be_bytes(header) as usize];
        conn.read_exact(&mut request)?;
        let value: serde_json::Value = serde_json::from_slice(&request).unwrap();
        let reply = format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":"first"}}"#,
            value["id"]
        );
        conn.write_all(&frame(reply.as_bytes()))?;
        // Hold the connection until the client gives up on it.
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).map(drop)
    };
    let upstream = spawn_with(builder(), silent_after_one);
    let pool = ClientPool::builder().build().unwrap();
    let front = serve(
        FramedService::new(JsonRpc::forward_to(Pooled::new(
            pool.clone(),
            upstream.local_addr().to_string(),
        )))
        .request_timeout(Duration::from_millis(300)),
    );
    let mut rpc = Rpc::connect(front.local_addr());
    assert_eq!(rpc.call(&forward(1, "echo", "1")), result(1, r#""first""#));
    assert_eq!(rpc.call(&forward(2, "echo", "2")), busy(2));
    let stats = pool.stats();
    assert_eq!(
        (stats.created, stats.idle, stats.in_use),
        (1, 0, 0),
        "discarded"
    );
    // The next call gets a new connection (and its first answer).
    assert_eq!(rpc.call(&forward(3, "echo", "3")), result(3, r#""first""#));
    assert_eq!(pool.stats().created, 2);
    front.shutdown();
    upstream.shutdown();
}

#[test]
fn pooled_forward_refuses_a_second_reply_and_closes_that_connection() {
    // Answers each request twice, in one write.
    let twice = |conn: &mut syncnet::Conn| -> io::Result<()> {
        let mut header = [0u8; 4];
        while conn.read_exact(&mut header).is_ok() {
            let mut request = vec![0u8; u32::from_be_bytes(header) as usize];
            conn.read_exact(&mut request)?;
            let value: serde_json::Value = serde_json::from_slice(&request).unwrap();
            let reply =
                frame(format!(r#"{{"jsonrpc":"2.0","id":{},"result":1}}"#, value["id"]).as_bytes());
            conn.write_all(&[reply.clone(), reply].concat())?;
        }
        Ok(())
    };
    let upstream = spawn_with(builder(), twice);
    let pool = ClientPool::builder().build().unwrap();
    let front = pooled_front(upstream.local_addr(), &pool);
    let mut rpc = Rpc::connect(front.local_addr());
    assert_eq!(
        rpc.call(&forward(1, "echo", "1")),
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"upstream failure: the server sent more than one reply frame"}}"#
    );
    let stats = pool.stats();
    assert_eq!(
        (stats.created, stats.idle, stats.in_use),
        (1, 0, 0),
        "closed"
    );
    front.shutdown();
    upstream.shutdown();
}

/// An [`Upstream`] that answers from a function of the request, and keeps
/// the requests it was sent.
struct Fake {
    answer: fn(id: u64, method: &str) -> io::Result<String>,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Upstream for Fake {
    fn round_trip(&self, request: &[u8], reply: &mut Vec<u8>, _: Instant) -> io::Result<()> {
        self.seen.lock().unwrap().push(request.to_vec());
        let value: serde_json::Value = serde_json::from_slice(&request[4..]).unwrap();
        let id = value["id"].as_u64().unwrap();
        let method = value["method"].as_str().unwrap();
        *reply = (self.answer)(id, method)?.into_bytes();
        Ok(())
    }
}

#[test]
fn forward_goes_through_the_upstream_trait() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake {
        answer: |id, method| match method {
            "ordered" => Ok(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"z":1,"a":[2, 3]}}}}"#
            )),
            "custom" => Ok(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32099,"message":"custom \"failure\"","data":{{"why":"x"}}}}}}"#
            )),
            "full" => Ok(
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"server busy"}}"#
                    .to_string(),
            ),
            "other" => Ok(r#"{"jsonrpc":"2.0","id":999999,"result":1}"#.to_string()),
            "huge" => Ok(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":"{}"}}"#,
                "x".repeat(MAX_FRAME - 30)
            )),
            "broken" => Ok("not json".to_string()),
            _ => Err(io::Error::new(io::ErrorKind::ConnectionRefused, "refused")),
        },
        seen: Arc::clone(&seen),
    };
    let front = serve(FramedService::new(JsonRpc::forward_to(fake)));
    let mut rpc = Rpc::connect(front.local_addr());

    assert_eq!(
        rpc.call(&forward(1, "ordered", r#"[1,{"x":null}]"#)),
        result(1, r#"{"z":1,"a":[2, 3]}"#),
        "the upstream's result, byte for byte"
    );
    let request = seen.lock().unwrap()[0].clone();
    let payload = String::from_utf8(request[4..].to_vec()).unwrap();
    assert_eq!(
        &request[..4],
        &u32::try_from(payload.len()).unwrap().to_be_bytes()
    );
    let id = serde_json::from_str::<serde_json::Value>(&payload).unwrap()["id"].clone();
    assert_eq!(
        payload,
        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ordered","params":[1,{{"x":null}}]}}"#),
        "the request sent upstream"
    );

    assert_eq!(
        rpc.call(&forward(2, "custom", "null")),
        r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32099,"message":"custom \"failure\"","data":{"why":"x"}}}"#
    );
    assert_eq!(rpc.call(&forward(3, "full", "null")), busy(3));
    let errors = [
        (4, "other", "a reply for id 999999 to the request with id "),
        (5, "broken", "not a JSON-RPC reply: "),
        (6, "refused", "refused"),
    ];
    for (id, method, why) in errors {
        let reply = rpc.call(&forward(id, method, "null"));
        let head = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32001,"message":"upstream failure: {why}"#
        );
        assert!(reply.starts_with(&head), "{reply}");
    }
    // A result that would not fit in a frame.
    assert_eq!(
        rpc.call(&forward(7, "huge", "null")),
        r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32603,"message":"Internal error"}}"#
    );
    assert_eq!(rpc.call(&echo(8, "8")), result(8, "8"));
    front.shutdown();
}

// ------------------------------------------------------ the real process

/// Polls a process's `/metrics` until `sample` has `value`.
fn wait_process_metric(server: &Binary, sample: &str, value: f64) {
    let mut last = f64::NAN;
    wait_until(&format!("{sample} == {value} (last {last})"), || {
        last = metric(&server.metrics(), sample);
        last == value
    });
}

#[test]
fn serve_logs_the_addresses_it_bound() {
    let server = rpc_serve(&[]);
    assert_eq!(
        server.startup["msg"],
        format!("syncnet listening on {}", server.listen)
    );
    assert_ne!(server.listen.port(), 0, "the real port: {}", server.startup);
    assert_eq!(server.startup["admin"], "off", "admin is off by default");
    assert_eq!(server.startup["workers"], 512);
    let mut rpc = Rpc::connect(server.listen);
    assert_eq!(rpc.call(&echo(1, "[]")), result(1, "[]"));

    let with_admin = rpc_serve(&["--admin", "127.0.0.1:0", "--workers", "8"]);
    let admin = with_admin.admin_addr();
    assert_ne!(admin.port(), 0);
    assert_eq!(with_admin.startup["workers"], 8);
    let (status, body) = http_get(admin, "/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
}

#[test]
fn the_request_rate_limit_refuses_the_excess_and_counts_it() {
    let server = rpc_serve(&["--request-rate", "100", "--admin", "127.0.0.1:0"]);
    let mut rpc = Rpc::connect(server.listen);
    let burst: Vec<u8> = (1..=1000)
        .flat_map(|i| frame(echo(i, &i.to_string()).as_bytes()))
        .collect();
    let mut writer = rpc.stream.try_clone().unwrap();
    let started = Instant::now();
    let sending = thread::spawn(move || writer.write_all(&burst));
    let mut served = 0;
    for i in 1..=1000 {
        let reply = rpc.recv();
        if reply == result(i, &i.to_string()) {
            served += 1;
        } else {
            assert_eq!(reply, busy(i), "reply {i} of 1000");
        }
    }
    let t = started.elapsed().as_secs_f64();
    sending.join().unwrap().expect("the burst was sent");
    let most = 100.0 + 100.0 * t + 1.0;
    assert!(
        (100..=most as usize).contains(&served),
        "{served} of 1000 served in {t:.3} s under 100/s"
    );

    // The connection stays open: once the bucket refills, a request is served.
    let mut refused_after = 0;
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = rpc.call(&echo(1001, "1001"));
        if reply == result(1001, "1001") {
            break;
        }
        assert_eq!(reply, busy(1001));
        assert!(Instant::now() < deadline, "still refused after {WAIT:?}");
        refused_after += 1;
        thread::sleep(Duration::from_millis(20)); // the pace under test
    }
    let refused = 1000 - served + refused_after;
    wait_process_metric(&server, &errors("rate_limit"), refused as f64);
}

#[test]
fn a_full_server_refuses_with_the_busy_frame_then_eof() {
    let server = rpc_serve(&["--workers", "1", "--queue", "0"]);
    let mut first = Rpc::connect(server.listen);
    assert_eq!(first.call(&echo(1, "1")), result(1, "1"));
    // The only worker is held by `first`: the next client is refused.
    let mut second = connect(server.listen);
    let mut got = Vec::new();
    match second.read_to_end(&mut got) {
        Ok(_) => assert_eq!(got, REFUSAL, "{}", String::from_utf8_lossy(&got)),
        Err(e) => panic!("expected the refusal, then EOF; got {e} after {got:?}"),
    }
    assert_eq!(
        first.call(&echo(2, "2")),
        result(2, "2"),
        "the held client is served"
    );
}

#[test]
fn forward_between_two_processes_and_minus_32001_once_the_upstream_is_gone() {
    let upstream = rpc_serve(&["--admin", "127.0.0.1:0"]);
    let to = upstream.listen.to_string();
    let front = rpc_serve(&["--forward", &to, "--admin", "127.0.0.1:0"]);
    let mut rpc = Rpc::connect(front.listen);
    for id in 1..=1000 {
        assert_eq!(rpc.call(&forward(id, "echo", "[1]")), result(id, "[1]"));
    }
    // One pooled connection served the 1000 calls; its counts are on the
    // front's /metrics.
    let accepted = "syncnet_connections_accepted_total";
    assert_eq!(metric(&upstream.metrics(), accepted), 1.0);
    let pool = front.metrics();
    assert_eq!(metric(&pool, "syncnet_client_pool_created_total"), 1.0);
    assert_eq!(metric(&pool, "syncnet_client_pool_reused_total"), 999.0);
    assert_eq!(
        metric(&pool, r#"syncnet_client_pool_connections{state="idle"}"#),
        1.0
    );
    // The undocumented --forward-per-call (bench/rpc.sh's comparison)
    // connects for every call.
    let per_call = rpc_serve(&["--forward", &to, "--forward-per-call"]);
    let mut direct = Rpc::connect(per_call.listen);
    for id in 1..=3 {
        assert_eq!(direct.call(&forward(id, "echo", "1")), result(id, "1"));
    }
    assert_eq!(metric(&upstream.metrics(), accepted), 4.0);

    assert_eq!(rpc.call(&forward(1, "add", "[40,2]")), result(1, "42"));
    assert_eq!(
        rpc.call(&forward(2, "nope", "[]")),
        r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32601,"message":"Method not found"}}"#
    );
    let via_call = rpc_call(&[
        "--connect",
        &front.listen.to_string(),
        "forward",
        r#"{"method":"echo","params":{"b":1,"a":2}}"#,
    ]);
    assert_eq!(
        via_call.stdout_text(),
        "{\"b\":1,\"a\":2}\n",
        "{via_call:?}"
    );

    drop(upstream); // killed and reaped
    expect_upstream_failure_within_2_s(&mut rpc, 3);
}

#[test]
fn call_prints_the_result_or_the_error() {
    let server = rpc_serve(&[]);
    let addr = server.listen.to_string();
    let cases: [(&[&str], i32, &str, &str); 6] = [
        (&["add", "[1,2]"], 0, "3\n", ""),
        (&["add", "[0.5, 0.25]"], 0, "0.75\n", ""),
        (
            &["echo", "{ \"k\" : [1, 2],\n \"s\": \"a b\" }"],
            0,
            "{\"k\":[1,2],\"s\":\"a b\"}\n",
            "",
        ),
        (&["echo"], 0, "null\n", ""),
        (&["add", "\"x\""], 1, "", "error -32602: Invalid params\n"),
        (&["nope"], 1, "", "error -32601: Method not found\n"),
    ];
    for (args, code, stdout, stderr) in cases {
        let mut full = vec!["--connect", &addr];
        full.extend_from_slice(args);
        let out = rpc_call(&full);
        assert_eq!(
            (out.code(), out.stdout_text().as_str(), out.stderr.as_str()),
            (code, stdout, stderr),
            "rpc call {args:?}"
        );
    }
}

#[test]
fn call_fails_with_1_when_the_server_is_unreachable_or_silent() {
    // Nobody listens on a port just released.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = rpc_call(&["--connect", &closed.to_string(), "echo"]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("cannot connect"), "{out:?}");
    assert!(out.stdout.is_empty());

    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let out = rpc_call(&["--connect", &addr, "--timeout", "300ms", "echo"]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stderr.contains("no reply before the deadline"),
        "{out:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn call_fails_with_2_on_bad_usage() {
    let server = rpc_serve(&[]);
    let addr = server.listen.to_string();
    let cases: [&[&str]; 5] = [
        &[],                                     // no method
        &["--connect", &addr, "add", "[1,"],     // params not JSON
        &["--connect", &addr, "add", "[1] [2]"], // nor this
        &["--connect", &addr, "--timeout", "0", "echo"],
        &["--connect", &addr, "--bogus", "echo"],
    ];
    for args in cases {
        let out = rpc_call(args);
        assert_eq!(out.code(), 2, "rpc call {args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "rpc call {args:?}");
    }
    let out = rpc_call(&["--connect", &addr, "add", "[1,"]);
    assert!(out.stderr.contains("PARAMS_JSON is not JSON"), "{out:?}");
}

#[test]
fn serve_fails_with_2_on_bad_usage_and_1_when_the_address_is_taken() {
    for args in [
        &["serve", "--workers", "many"][..],
        &["serve", "--request-timeout", "5 parsecs"],
        &["serve", "--workers", "0"],
        &["serve", "--forward", "not-an-address"],
        &["serve", "--log-format", "yaml"],
        &["bogus"],
    ] {
        let out = binary::run(rpc_command(args), b"");
        assert_eq!(out.code(), 2, "rpc {args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "rpc {args:?}");
    }
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = binary::run(rpc_command(&["serve", "--listen", &addr]), b"");
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains("address already in use"), "{out:?}");
}
