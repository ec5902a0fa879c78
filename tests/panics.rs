//! Panics: a panicking handler closes only its own connection and never costs a worker.

mod support;

use std::io::{self, Read, Write};

use support::*;
use syncnet::Conn;

/// Echoes, but panics when a read contains `boom`.
fn fragile_echo(conn: &mut Conn) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if buf[..n].windows(4).any(|w| w == b"boom") {
            panic!("the input said boom");
        }
        conn.write_all(&buf[..n])?;
    }
}

#[test]
fn a_panic_closes_its_connection_and_every_worker_survives() {
    const WORKERS: usize = 2;
    let server = spawn_with(builder().workers(WORKERS).queue(1), fragile_echo);
    let addr = server.local_addr();

    // A bystander holds one worker for the whole test.
    let mut bystander = connect(addr);
    assert_eq!(echo_once(&mut bystander, b"hello"), b"hello");

    let panics = WORKERS + 1;
    for i in 0..panics {
        let mut victim = connect(addr);
        assert_eq!(echo_once(&mut victim, b"fine"), b"fine", "panic {i}");
        victim.write_all(b"boom").unwrap();
        expect_closed_by_server(&mut victim);
        assert_eq!(
            echo_once(&mut bystander, b"still here"),
            b"still here",
            "bystander after panic {i}"
        );
    }

    // Counted once each (the count may land just after the close).
    wait_metric(&server, "syncnet_handler_panics_total", panics as f64);

    // A normal echo still works.
    let mut normal = connect(addr);
    assert_eq!(echo_once(&mut normal, b"normal"), b"normal");
    drop(normal);
    drop(bystander);
    wait_metric(&server, "syncnet_connections_active", 0.0);

    // Both workers serve at once: two held connections both get echoes.
    let mut a = connect(addr);
    let mut b = connect(addr);
    a.write_all(b"a").unwrap();
    b.write_all(b"b").unwrap();
    let mut back = [0u8; 1];
    a.read_exact(&mut back)
        .expect("first held connection served");
    assert_eq!(&back, b"a");
    b.read_exact(&mut back)
        .expect("second held connection served");
    assert_eq!(&back, b"b");
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_connections_active"), 2.0);
    assert_eq!(metric(&text, "syncnet_workers_busy"), 2.0);
    assert_eq!(
        metric(&text, "syncnet_connections_closed_total{reason=\"panic\"}"),
        panics as f64
    );
    assert_eq!(
        metric(
            &text,
            "syncnet_connections_rejected_total{reason=\"overload\"}"
        ),
        0.0
    );
    server.shutdown();
}
