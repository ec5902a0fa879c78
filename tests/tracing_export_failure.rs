//! An export endpoint that fails never slows a request down: with the
//! endpoint refusing connections, and with one that accepts and never
//! answers, every one of 2 000 requests is answered within 1 s, and the
//! spans that do not fit in the (small) queue are counted in
//! `syncnet_trace_spans_dropped_total`.

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
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use binary::Binary;
use otlp_receiver::{Mode, Receiver};
use support::{metric, wait_until};

const REQUESTS: usize = 2000;
const QUEUE: &str = "16";

/// `rpc serve` exporting to `endpoint` with a queue of [`QUEUE`] spans.
fn rpc_serve(endpoint: &str) -> Binary {
    rpc_process::rpc_serve(&[
        "--admin",
        "127.0.0.1:0",
        "--otlp-endpoint",
        endpoint,
        "--trace-queue",
        QUEUE,
    ])
}

/// Sends [`REQUESTS`] echo requests one after the other on one connection;
/// each must be answered within 1 s.
fn every_request_answered_in_time(server: &Binary) {
    let mut stream = TcpStream::connect(server.listen).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut slowest = Duration::ZERO;
    for id in 0..REQUESTS {
        let request = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"echo","params":{id},"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}"#
        );
        let len = u32::try_from(request.len()).expect("small request");
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend_from_slice(request.as_bytes());
        let started = Instant::now();
        stream.write_all(&frame).expect("send");
        let mut prefix = [0u8; 4];
        stream.read_exact(&mut prefix).expect("reply length");
        let mut reply = vec![0; u32::from_be_bytes(prefix) as usize];
        stream.read_exact(&mut reply).expect("reply");
        slowest = slowest.max(started.elapsed());
        let expected = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{id}}}"#);
        assert_eq!(String::from_utf8_lossy(&reply), expected);
        assert!(
            slowest < Duration::from_secs(1),
            "request {id} took {slowest:?}: the exporter blocked a worker"
        );
    }
}

/// `syncnet_trace_spans_dropped_total` rises above zero.
fn drops_are_counted(server: &Binary) {
    wait_until("syncnet_trace_spans_dropped_total > 0", || {
        metric(&server.metrics(), "syncnet_trace_spans_dropped_total") > 0.0
    });
}

#[test]
fn an_endpoint_that_refuses_connections_never_blocks_a_request() {
    // A port nobody listens on: bound, then closed.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let server = rpc_serve(&format!("http://127.0.0.1:{port}"));
    every_request_answered_in_time(&server);
    drops_are_counted(&server);
}

#[test]
fn an_endpoint_that_never_answers_never_blocks_a_request() {
    let receiver = Receiver::start(Mode::Silent);
    let server = rpc_serve(&receiver.endpoint());
    // First get the export thread stuck waiting for an answer...
    let mut stream = TcpStream::connect(server.listen).expect("connect");
    let request = br#"{"jsonrpc":"2.0","id":1,"method":"echo"}"#;
    let mut frame = u32::try_from(request.len())
        .expect("small")
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(request);
    stream.write_all(&frame).expect("send");
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply).expect("reply");
    wait_until("the exporter's first request", || receiver.requests() > 0);
    // ...then load the server while it is.
    every_request_answered_in_time(&server);
    drops_are_counted(&server);
}
