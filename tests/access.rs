//! `--allow` / `--deny`: clients outside the allowed networks, or inside a denied one, are closed before any byte is echoed (reason `denied`); deny wins over allow.

mod support;

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};

use support::*;
use syncnet::Cidr;

const DENIED: &str = "syncnet_connections_rejected_total{reason=\"denied\"}";

fn cidr(text: &str) -> Cidr {
    text.parse().expect("a valid CIDR")
}

/// Sends a line on `stream` and expects the server to close it without
/// echoing anything back.
fn expect_refused(mut stream: TcpStream) {
    // The server may have closed already, so the write may fail: fine.
    let _ = stream.write_all(b"hello\n");
    expect_closed_by_server(&mut stream);
}

/// Expects a line to come back on `stream`.
fn expect_served(stream: &mut TcpStream) {
    assert_eq!(echo_once(stream, b"hello\n"), b"hello\n");
}

#[test]
fn a_denied_network_is_closed_before_any_echo() {
    let server = spawn_echo(builder().deny(cidr("127.0.0.0/8")));
    let addr = server.local_addr();

    expect_refused(connect(addr));
    expect_refused(connect_from(Ipv4Addr::new(127, 0, 0, 2), addr));

    wait_metric(&server, DENIED, 2.0);
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_connections_accepted_total"), 2.0);
    assert_eq!(
        metric(&text, "syncnet_connections_closed_total{reason=\"eof\"}"),
        0.0,
        "a denied connection reached the handler"
    );
    assert_eq!(metric(&text, "syncnet_bytes_received_total"), 0.0);
}

#[test]
fn an_allow_list_serves_only_its_networks() {
    let server = spawn_echo(builder().allow(cidr("127.0.0.2/32")));
    let addr = server.local_addr();

    let mut allowed = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr);
    expect_served(&mut allowed);

    expect_refused(connect_from(Ipv4Addr::LOCALHOST, addr));
    expect_refused(connect_from(Ipv4Addr::new(127, 0, 0, 3), addr));
    wait_metric(&server, DENIED, 2.0);

    // The allowed client was not disturbed by the refusals.
    expect_served(&mut allowed);
}

#[test]
fn deny_wins_over_allow() {
    let server = spawn_echo(
        builder()
            .allow(cidr("127.0.0.0/8"))
            .deny(cidr("127.0.0.2/32")),
    );
    let addr = server.local_addr();

    expect_refused(connect_from(Ipv4Addr::new(127, 0, 0, 2), addr));
    wait_metric(&server, DENIED, 1.0);

    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 3), addr);
    expect_served(&mut other);
    assert_eq!(metric(&metrics(&server), DENIED), 1.0);
}
