//! The shutdown exports what is queued: spans finished just before a
//! SIGTERM reach the receiver before the process exits, and an endpoint
//! that never answers holds the exit back no longer than the drain timeout
//! (plus the usual margin).

mod support;

#[path = "support/binary.rs"]
mod binary;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use binary::Binary;
use otlp_receiver::{Mode, Receiver};

/// One echoed connection, closed by the client.
fn one_connection(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(b"hi").expect("send");
    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply).expect("echo");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("end of input");
}

#[test]
fn spans_queued_at_shutdown_are_exported_before_the_exit() {
    let receiver = Receiver::start(Mode::Answer);
    let mut server = Binary::serve(&["--otlp-endpoint", &receiver.endpoint()]);
    one_connection(server.listen);
    server.expect_json("the close line", |v| v["msg"] == "connection closed");
    // At once: the export thread's 500 ms interval has not passed yet.
    server.signal("TERM");
    assert!(server.expect_exit().success());
    let spans = receiver.spans();
    assert!(
        spans.iter().any(|s| s.name == "connection"),
        "the connection span was exported before the exit: {spans:#?}"
    );
}

#[test]
fn an_endpoint_that_never_answers_delays_the_exit_by_at_most_the_drain_timeout() {
    let receiver = Receiver::start(Mode::Silent);
    let mut server = Binary::serve(&[
        "--otlp-endpoint",
        &receiver.endpoint(),
        "--drain-timeout",
        "1s",
    ]);
    one_connection(server.listen);
    server.expect_json("the close line", |v| v["msg"] == "connection closed");
    let started = Instant::now();
    server.signal("TERM");
    assert!(server.expect_exit().success());
    // The drain timeout, and the shutdown's fixed margin (docs/reference.md).
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "exit took {:?}",
        started.elapsed()
    );
}
