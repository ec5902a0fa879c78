//! Metrics: exact counts after a known workload, live gauges, and the
//! exposition format accepted by `promtool check metrics`.

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;
use syncnet::Conn;

/// Sends `n` bytes, half-closes, and reads the echo to EOF: returns bytes read.
fn echo_and_close(addr: std::net::SocketAddr, n: usize) -> usize {
    let mut c = connect(addr);
    c.write_all(&vec![b'x'; n]).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    c.read_to_end(&mut back).unwrap();
    back.len()
}

#[test]
fn counts_are_exact_after_a_known_workload() {
    let server = spawn_echo(builder().workers(1).queue(0));
    let addr = server.local_addr();
    let sizes = [10, 1000, 100_000];
    for n in sizes {
        assert_eq!(echo_and_close(addr, n), n);
    }
    // One overload rejection: the only worker is held, and there is no queue.
    let mut held = connect(addr);
    assert_eq!(echo_once(&mut held, b"hold"), b"hold");
    let mut rejected = connect(addr);
    expect_closed_by_server(&mut rejected);
    drop(held);
    wait_metric(&server, "syncnet_connections_active", 0.0);

    let text = metrics(&server);
    let total: usize = sizes.iter().sum::<usize>() + 4;
    assert_eq!(metric(&text, "syncnet_connections_accepted_total"), 5.0);
    assert_eq!(metric(&text, "syncnet_bytes_received_total"), total as f64);
    assert_eq!(metric(&text, "syncnet_bytes_sent_total"), total as f64);
    assert_eq!(
        metric(&text, "syncnet_connections_closed_total{reason=\"eof\"}"),
        4.0
    );
    assert_eq!(
        metric(
            &text,
            "syncnet_connections_rejected_total{reason=\"overload\"}"
        ),
        1.0
    );
    assert_eq!(metric(&text, "syncnet_connections_queued"), 0.0);
    assert_eq!(
        metric(&text, "syncnet_connection_duration_seconds_count"),
        4.0
    );
    server.shutdown();
}

#[test]
fn gauges_follow_held_connections_and_bytes_are_live() {
    let server = spawn_echo(builder().workers(2).queue(4));
    let addr = server.local_addr();
    let mut a = connect(addr);
    let mut b = connect(addr);
    echo_once(&mut a, b"12345");
    echo_once(&mut b, b"123");
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_connections_active"), 2.0);
    assert_eq!(metric(&text, "syncnet_workers_busy"), 2.0);
    assert_eq!(metric(&text, "syncnet_workers"), 2.0);
    // Bytes of open connections show up at scrape time, before they close.
    assert_eq!(metric(&text, "syncnet_bytes_received_total"), 8.0);

    let mut c = connect(addr);
    c.write_all(b"waits").unwrap();
    wait_metric(&server, "syncnet_connections_queued", 1.0);
    drop(a);
    // The queued connection gets the freed worker.
    let mut back = [0u8; 5];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"waits");
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_connections_queued"), 0.0);
    assert_eq!(metric(&text, "syncnet_connections_active"), 2.0);
    drop((b, c));
    wait_metric(&server, "syncnet_connections_active", 0.0);
    wait_metric(&server, "syncnet_workers_busy", 0.0);
    server.shutdown();
}

#[test]
fn idle_timeout_and_panic_are_counted_by_reason() {
    let server = builder()
        .idle_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
        .spawn(|conn: &mut Conn| -> std::io::Result<()> {
            let mut buf = [0u8; 16];
            let n = conn.read(&mut buf)?;
            if &buf[..n] == b"boom" {
                panic!("asked to panic");
            }
            syncnet::echo(conn)
        })
        .unwrap();
    let addr = server.local_addr();
    let mut silent = connect(addr);
    expect_closed_by_server(&mut silent);
    wait_metric(
        &server,
        "syncnet_connections_closed_total{reason=\"idle_timeout\"}",
        1.0,
    );
    let mut boom = connect(addr);
    boom.write_all(b"boom").unwrap();
    expect_closed_by_server(&mut boom);
    wait_metric(&server, "syncnet_handler_panics_total", 1.0);
    wait_metric(
        &server,
        "syncnet_connections_closed_total{reason=\"panic\"}",
        1.0,
    );
    server.shutdown();
}

#[test]
fn accepted_equals_rejected_plus_closed_plus_active_plus_queued() {
    let server = spawn_echo(builder().workers(2).queue(1));
    let addr = server.local_addr();
    let mut clients: Vec<_> = (0..5).map(|_| connect(addr)).collect();
    for c in clients.iter_mut().take(2) {
        echo_once(c, b"x");
    }
    wait_metric(&server, "syncnet_connections_queued", 1.0);
    let text = metrics(&server);
    let sum_of = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let accepted = metric(&text, "syncnet_connections_accepted_total");
    let accounted = sum_of("syncnet_connections_rejected_total{")
        + sum_of("syncnet_connections_closed_total{")
        + metric(&text, "syncnet_connections_active")
        + metric(&text, "syncnet_connections_queued");
    assert_eq!(accepted, 5.0);
    assert_eq!(accounted, accepted, "{text}");
    drop(clients);
    server.shutdown();
}

/// Needs `promtool` (Debian package `prometheus`); skipped when missing,
/// except under CI=true.
#[test]
fn promtool_accepts_the_exposition() {
    if Command::new("promtool").arg("--version").output().is_err() {
        support::outside::missing("`promtool`", "prometheus");
        return;
    }
    let server = spawn_echo(builder());
    let addr = server.local_addr();
    echo_and_close(addr, 1234);
    let mut held = connect(addr);
    echo_once(&mut held, b"live");
    let text = metrics(&server);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool rejected /metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(held);
    server.shutdown();
}
