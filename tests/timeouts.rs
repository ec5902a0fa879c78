//! Timeouts: idle, lifetime and write timeouts close connections with the right reason.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

fn closed(reason: &str) -> String {
    format!("syncnet_connections_closed_total{{reason=\"{reason}\"}}")
}

#[test]
fn idle_timeout_closes_a_silent_connection() {
    let server = spawn_echo(builder().idle_timeout(Duration::from_millis(200)));
    let started = Instant::now();
    let mut client = connect(server.local_addr());
    expect_closed_by_server(&mut client);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150),
        "closed after {waited:?}, before the 200 ms idle timeout"
    );
    wait_metric(&server, &closed("idle_timeout"), 1.0);
    assert_eq!(metric(&metrics(&server), &closed("eof")), 0.0);
    server.shutdown();
}

#[test]
fn idle_timeout_spares_a_connection_that_keeps_talking() {
    let server = spawn_echo(builder().idle_timeout(Duration::from_millis(200)));
    let mut client = connect(server.local_addr());
    let started = Instant::now();
    let mut sent = 0u32;
    // A byte every 50 ms for a second: never 200 ms of silence.
    while started.elapsed() < Duration::from_secs(1) && sent < 100 {
        let byte = [b'a' + (sent % 26) as u8];
        assert_eq!(echo_once(&mut client, &byte), byte, "byte {sent}");
        sent += 1;
        // The client's pace (the behaviour under test).
        thread::sleep(Duration::from_millis(50));
    }
    assert!(sent >= 5, "only {sent} round trips in a second");
    let text = metrics(&server);
    assert_eq!(metric(&text, &closed("idle_timeout")), 0.0);
    assert_eq!(metric(&text, "syncnet_connections_active"), 1.0);
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    wait_metric(&server, &closed("eof"), 1.0);
    assert_eq!(metric(&metrics(&server), &closed("idle_timeout")), 0.0);
    server.shutdown();
}

#[test]
fn max_lifetime_closes_a_busy_connection() {
    let server = spawn_echo(builder().max_lifetime(Duration::from_millis(300)));
    let mut client = connect(server.local_addr());
    let started = Instant::now();
    let mut round_trips = 0u32;
    // Busy: a round trip every 10 ms until the server ends it.
    let ended = loop {
        if started.elapsed() > Duration::from_secs(5) {
            break None;
        }
        let mut back = [0u8; 4];
        let ok = client.write_all(b"busy").is_ok() && client.read_exact(&mut back).is_ok();
        if !ok {
            break Some(started.elapsed());
        }
        assert_eq!(&back, b"busy");
        round_trips += 1;
        // The client's pace (the behaviour under test).
        thread::sleep(Duration::from_millis(10));
    };
    let ended = ended.expect("the connection outlived its 300 ms lifetime by seconds");
    assert!(
        ended >= Duration::from_millis(250),
        "closed after {ended:?}, before the 300 ms lifetime"
    );
    assert!(round_trips > 0, "no round trip before the close");
    wait_metric(&server, &closed("lifetime"), 1.0);
    let text = metrics(&server);
    assert_eq!(metric(&text, &closed("eof")), 0.0);
    assert_eq!(metric(&text, &closed("error")), 0.0);
    server.shutdown();
}

/// A client with a small receive buffer, so a peer that writes to it fills
/// the path quickly.
fn connect_small_receive_buffer(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect_timeout(&addr.into(), WAIT).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

#[test]
fn write_timeout_closes_a_connection_that_never_reads() {
    let server = spawn_echo(builder().write_timeout(Duration::from_millis(200)));
    let client = connect_small_receive_buffer(server.local_addr());
    let writer = {
        let mut client = client.try_clone().unwrap();
        thread::spawn(move || {
            // Sends far more than the socket buffers hold and never reads;
            // fails once the server gives up on the connection. A write
            // that times out is not that: the server never closed.
            let chunk = vec![7u8; 64 * 1024];
            let mut sent = 0usize;
            for _ in 0..1024 {
                match client.write(&chunk) {
                    Ok(n) => sent += n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        return (sent, false);
                    }
                    Err(_) => return (sent, true),
                }
            }
            (sent, false)
        })
    };
    wait_metric(&server, &closed("write_timeout"), 1.0);
    let (sent, failed) = writer.join().expect("writer thread");
    assert!(
        failed,
        "the server took all {sent} bytes without closing the connection"
    );
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_connections_active"), 0.0);
    assert_eq!(metric(&text, &closed("idle_timeout")), 0.0);
    assert_eq!(metric(&text, &closed("error")), 0.0);
    drop(client);
    server.shutdown();
}
