//! Overload: a full pool queues, a full queue closes at once, and a queued connection times out.

mod support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use support::*;

const OVERLOAD: &str = "syncnet_connections_rejected_total{reason=\"overload\"}";

#[test]
fn full_pool_queues_then_full_queue_rejects_then_queued_one_is_served() {
    let server = spawn_echo(builder().workers(2).queue(1).queue_timeout(Duration::ZERO));
    let addr = server.local_addr();

    // Two idle connections hold both workers: each is being served.
    let mut first = connect(addr);
    let mut second = connect(addr);
    assert_eq!(echo_once(&mut first, b"one"), b"one");
    assert_eq!(echo_once(&mut second, b"two"), b"two");

    // The third waits in the queue: its echo does not come.
    let mut third = connect(addr);
    third.write_all(b"three").unwrap();
    wait_metric(&server, "syncnet_connections_queued", 1.0);
    expect_silent(&mut third, Duration::from_millis(300));
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_connections_active"), 2.0);
    assert_eq!(metric(&text, "syncnet_connections_queued"), 1.0);
    assert_eq!(metric(&text, "syncnet_workers_busy"), 2.0);
    assert_eq!(metric(&text, OVERLOAD), 0.0);

    // The fourth finds workers and queue full: closed at once, nothing served.
    let mut fourth = connect(addr);
    expect_closed_by_server(&mut fourth);
    wait_metric(&server, OVERLOAD, 1.0);

    // Freeing a worker serves the queued connection.
    drop(first);
    let mut back = [0u8; 5];
    third
        .read_exact(&mut back)
        .expect("queued connection is served");
    assert_eq!(&back, b"three");
    assert_eq!(echo_once(&mut third, b"more"), b"more");
    assert_eq!(echo_once(&mut second, b"still"), b"still");
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_connections_queued"), 0.0);
    assert_eq!(metric(&text, "syncnet_connections_accepted_total"), 4.0);
    assert_eq!(metric(&text, OVERLOAD), 1.0);
    server.shutdown();
}

#[test]
fn queued_connection_is_closed_after_the_queue_timeout() {
    let queue_timeout = Duration::from_millis(300);
    let server = spawn_echo(builder().workers(1).queue(1).queue_timeout(queue_timeout));
    let addr = server.local_addr();

    let mut held = connect(addr);
    assert_eq!(echo_once(&mut held, b"held"), b"held");

    let started = Instant::now();
    let mut queued = connect(addr);
    expect_closed_by_server(&mut queued);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}, before the 300 ms queue timeout"
    );
    assert!(
        waited < Duration::from_secs(3),
        "closed only after {waited:?} (queue timeout 300 ms)"
    );
    wait_metric(&server, OVERLOAD, 1.0);
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_connections_queued"), 0.0);
    assert_eq!(metric(&text, "syncnet_connections_active"), 1.0);

    // The held connection was never disturbed.
    assert_eq!(echo_once(&mut held, b"again"), b"again");
    server.shutdown();
}
