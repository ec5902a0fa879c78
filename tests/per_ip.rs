//! Per-client-IP limits: `--max-conns-per-ip` closes connections beyond the cap (reason `per_ip_limit`) and frees a slot when one closes; `--conn-rate-per-ip` rejects bursts beyond the bucket (reason `rate_limit`); both leave other addresses alone, and the cap keeps a slowloris on one address from starving everyone else.

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const PER_IP_LIMIT: &str = "syncnet_connections_rejected_total{reason=\"per_ip_limit\"}";
const RATE_LIMIT: &str = "syncnet_connections_rejected_total{reason=\"rate_limit\"}";
const ACCEPTED: &str = "syncnet_connections_accepted_total";

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

/// True when a line sent on `stream` comes back; false when the server
/// closes it instead.
fn is_served(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"hello\n").is_err() {
        return false;
    }
    let mut back = [0u8; 6];
    match stream.read_exact(&mut back) {
        Ok(()) => {
            assert_eq!(&back, b"hello\n");
            true
        }
        Err(e) => {
            assert!(
                !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "neither an echo nor a close within {WAIT:?}"
            );
            false
        }
    }
}

#[test]
fn the_connection_over_the_cap_is_closed_and_a_closed_one_frees_its_slot() {
    let server = spawn_echo(builder().max_conns_per_ip(2));
    let addr = server.local_addr();

    let mut first = connect(addr);
    expect_served(&mut first);
    let mut second = connect(addr);
    expect_served(&mut second);

    expect_refused(connect(addr));
    wait_metric(&server, PER_IP_LIMIT, 1.0);

    // Another address has its own count.
    let mut elsewhere = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr);
    expect_served(&mut elsewhere);

    // Closing one of the two gives its slot back once the server has seen
    // the close (the slot is released before the close is counted).
    drop(first);
    wait_metric(
        &server,
        "syncnet_connections_closed_total{reason=\"eof\"}",
        1.0,
    );
    let mut third = connect(addr);
    expect_served(&mut third);
    expect_served(&mut second);
    assert_eq!(metric(&metrics(&server), PER_IP_LIMIT), 1.0);
}

#[test]
fn a_burst_beyond_the_rate_is_rejected_and_other_addresses_are_not() {
    let server = spawn_echo(builder().conn_rate_per_ip(5));
    let addr = server.local_addr();

    // 30 at once: a bucket of 5 that refills 5 a second admits 5 plus what
    // refills while they are accepted, far below 10.
    let mut burst: Vec<TcpStream> = (0..30).map(|_| connect(addr)).collect();
    wait_metric(&server, ACCEPTED, 30.0);

    let served = burst.iter_mut().map(is_served).filter(|&ok| ok).count();
    assert!(
        (5..=10).contains(&served),
        "{served} of 30 connections were served"
    );
    let text = metrics(&server);
    let rejected = metric(&text, RATE_LIMIT);
    assert!(rejected >= 20.0, "only {rejected} rate_limit rejections");
    assert_eq!(rejected as usize, 30 - served, "{text}");

    let mut elsewhere = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr);
    expect_served(&mut elsewhere);
    assert_eq!(metric(&metrics(&server), RATE_LIMIT), rejected);
}

/// How many connections the slowloris opens, all from 127.0.0.3.
const SLOWLORIS_CONNS: usize = 200;
/// How long the victim keeps testing, and the longest round trip it accepts.
const VICTIM_WINDOW: Duration = Duration::from_secs(2);
const VICTIM_PATIENCE: Duration = Duration::from_secs(1);

/// What the slowloris scenario saw.
struct Outcome {
    /// Every round trip of the victim completed within [`VICTIM_PATIENCE`].
    victim_served_in_time: bool,
    /// The server's metrics at the end.
    metrics: String,
}

/// Sends one byte on each of `streams` every 500 ms until `stop` is set
/// (or 10 s pass). Streams the server closed are dropped.
fn trickle(mut streams: Vec<TcpStream>, stop: Arc<AtomicBool>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        streams.retain_mut(|s| s.write(b"x").is_ok());
        // The slowloris's pace (the behaviour under test).
        thread::sleep(Duration::from_millis(500));
    }
}

/// A server with 64 workers and the default queue (128), and
/// `max_conns_per_ip`; 200 connections from 127.0.0.3 that send one byte
/// every 500 ms; then a victim on 127.0.0.1 that does an echo round trip
/// every 100 ms for 2 s.
///
/// Without a per-IP cap the outcome is certain: once the server has
/// accepted all 200, 64 hold every worker and 128 fill the queue (where
/// they may wait 30 s), so the victim is closed at once as `overload` (or,
/// should a slot free up, waits in the queue far longer than 1 s).
fn slowloris(max_conns_per_ip: u32) -> Outcome {
    let server = spawn_echo(
        builder()
            .workers(64)
            .queue_timeout(Duration::from_secs(30))
            .max_conns_per_ip(max_conns_per_ip),
    );
    let addr = server.local_addr();

    let attackers: Vec<TcpStream> = (0..SLOWLORIS_CONNS)
        .map(|_| {
            let stream = connect_from(Ipv4Addr::new(127, 0, 0, 3), addr);
            stream
                .set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            stream
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut groups: Vec<Vec<TcpStream>> = (0..4).map(|_| Vec::new()).collect();
    for (i, stream) in attackers.into_iter().enumerate() {
        groups[i % 4].push(stream);
    }
    let tricklers: Vec<_> = groups
        .into_iter()
        .map(|group| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || trickle(group, stop))
        })
        .collect();
    wait_metric(&server, ACCEPTED, SLOWLORIS_CONNS as f64);

    let victim_served_in_time = victim(connect(server.local_addr()));

    stop.store(true, Ordering::SeqCst);
    for t in tricklers {
        t.join().expect("trickle thread");
    }
    let metrics = metrics(&server);
    Outcome {
        victim_served_in_time,
        metrics,
    }
}

/// Round trips on `stream` for [`VICTIM_WINDOW`]: true when each one
/// completed within [`VICTIM_PATIENCE`].
fn victim(mut stream: TcpStream) -> bool {
    stream
        .set_read_timeout(Some(VICTIM_PATIENCE + Duration::from_millis(500)))
        .unwrap();
    let window = Instant::now() + VICTIM_WINDOW;
    while Instant::now() < window {
        let start = Instant::now();
        let mut back = [0u8; 5];
        let round_trip = stream
            .write_all(b"ping\n")
            .and_then(|()| stream.read_exact(&mut back));
        if round_trip.is_err() || start.elapsed() > VICTIM_PATIENCE {
            return false;
        }
        assert_eq!(&back, b"ping\n");
        // The victim's pace: a round trip every 100 ms (the behaviour under test).
        thread::sleep(Duration::from_millis(100));
    }
    true
}

#[test]
fn a_per_ip_cap_keeps_a_slowloris_from_starving_other_clients() {
    let outcome = slowloris(20);
    assert!(
        outcome.victim_served_in_time,
        "the victim was starved despite the per-IP cap:\n{}",
        outcome.metrics
    );
    assert_eq!(
        metric(&outcome.metrics, PER_IP_LIMIT),
        (SLOWLORIS_CONNS - 20) as f64,
        "{}",
        outcome.metrics
    );
}

#[test]
fn without_a_per_ip_cap_a_slowloris_starves_other_clients() {
    let outcome = slowloris(0);
    assert!(
        !outcome.victim_served_in_time,
        "the victim was served in time without a per-IP cap:\n{}",
        outcome.metrics
    );
    assert_eq!(metric(&outcome.metrics, PER_IP_LIMIT), 0.0);
}
