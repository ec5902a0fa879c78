//! `Builder::reject_reply`: a refused plain-TCP client reads the protocol's
//! own refusal, then end of input; without it, a plain close.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::*;

const OVERLOAD: &str = "syncnet_connections_rejected_total{reason=\"overload\"}";
const REFUSAL: &[u8] = b"-ERR max number of clients reached\r\n";

/// Reads until end of input (bounded by the read timeout): what a refused
/// client receives. A timeout fails the test instead of passing for a close.
fn read_to_close(stream: &mut std::net::TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) => panic!("expected the server to close, got {e} after {got:?}"),
    }
}

#[test]
fn an_overloaded_server_answers_in_the_protocols_words_then_closes() {
    let server = spawn_echo(
        builder()
            .workers(1)
            .queue(0)
            .queue_timeout(Duration::ZERO)
            .reject_reply(REFUSAL),
    );
    let addr = server.local_addr();
    let mut first = connect(addr);
    assert_eq!(echo_once(&mut first, b"held"), b"held");

    // The second client even sends a request first: it still reads exactly
    // the refusal, then end of input.
    let mut second = connect(addr);
    second.write_all(b"PING\r\n").unwrap();
    assert_eq!(read_to_close(&mut second), REFUSAL);
    wait_metric(&server, OVERLOAD, 1.0);

    // The held client is untouched.
    assert_eq!(echo_once(&mut first, b"still"), b"still");
    server.shutdown();
}

#[test]
fn without_a_reject_reply_a_refusal_is_a_plain_close() {
    let server = spawn_echo(builder().workers(1).queue(0).queue_timeout(Duration::ZERO));
    let addr = server.local_addr();
    let mut first = connect(addr);
    assert_eq!(echo_once(&mut first, b"held"), b"held");
    let mut second = connect(addr);
    assert_eq!(read_to_close(&mut second), b"");
    wait_metric(&server, OVERLOAD, 1.0);
    server.shutdown();
}

#[test]
fn denied_clients_get_no_reply() {
    let server = spawn_echo(
        builder()
            .deny("127.0.0.2/32".parse().unwrap())
            .reject_reply(REFUSAL),
    );
    let mut denied = connect_from([127, 0, 0, 2], server.local_addr());
    assert_eq!(
        read_to_close(&mut denied),
        b"",
        "a denied client learns nothing"
    );
    server.shutdown();
}
