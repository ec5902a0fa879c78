//! Isolation: two servers in one process keep separate metrics.

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;

use support::*;
use syncnet::ServerHandle;

/// Echoes `msg` over `count` connections, each closed cleanly.
fn traffic(server: &ServerHandle, count: usize, msg: &[u8]) {
    for _ in 0..count {
        let mut client = connect(server.local_addr());
        assert_eq!(echo_once(&mut client, msg), msg);
        client.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
}

fn counts(server: &ServerHandle) -> [f64; 4] {
    let text = metrics(server);
    [
        "syncnet_connections_accepted_total",
        "syncnet_connections_closed_total{reason=\"eof\"}",
        "syncnet_bytes_received_total",
        "syncnet_bytes_sent_total",
    ]
    .map(|sample| metric(&text, sample))
}

#[test]
fn two_servers_in_one_process_keep_separate_counts() {
    let a = spawn_echo(builder());
    let b = spawn_echo(builder());
    assert_ne!(a.admin_addr(), b.admin_addr());

    traffic(&a, 3, &[1u8; 1000]);
    wait_metric(&a, "syncnet_connections_closed_total{reason=\"eof\"}", 3.0);
    assert_eq!(counts(&a), [3.0, 3.0, 3000.0, 3000.0]);
    assert_eq!(counts(&b), [0.0; 4], "traffic to A moved B's counts");

    traffic(&b, 1, b"0123456789");
    wait_metric(&b, "syncnet_connections_closed_total{reason=\"eof\"}", 1.0);
    assert_eq!(counts(&b), [1.0, 1.0, 10.0, 10.0]);
    assert_eq!(
        counts(&a),
        [3.0, 3.0, 3000.0, 3000.0],
        "traffic to B moved A's counts"
    );

    // A live connection on A shows up in A's gauges only.
    let mut open = connect(a.local_addr());
    open.write_all(b"x").unwrap();
    let mut back = [0u8; 1];
    open.read_exact(&mut back).unwrap();
    assert_eq!(metric(&metrics(&a), "syncnet_connections_active"), 1.0);
    assert_eq!(metric(&metrics(&b), "syncnet_connections_active"), 0.0);
    drop(open);

    a.shutdown();
    b.shutdown();
}
