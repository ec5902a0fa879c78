//! `--max-bytes-per-sec`: a client writing as fast as it can gets no more than the bucket allows back, and the connection stays open (throttled, never closed); a shutdown lifts the throttle, so the drain returns every byte and does not hang.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// Writes to `stream` as fast as it can until `until`.
fn flood(mut stream: TcpStream, until: Instant) {
    stream
        .set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let chunk = vec![b'x'; 16 * 1024];
    while Instant::now() < until {
        match stream.write(&chunk) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
}

#[test]
fn a_fast_writer_is_throttled_and_stays_connected() {
    const RATE: u64 = 50_000;
    let server = spawn_echo(builder().max_bytes_per_sec(RATE));
    let mut client = connect(server.local_addr());
    let window = Instant::now() + Duration::from_secs(2);
    let writer = {
        let stream = client.try_clone().unwrap();
        thread::spawn(move || flood(stream, window))
    };

    // A full bucket (one second of tokens) plus two seconds of refill.
    client
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut received: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < window {
        let got = client.read(&mut buf);
        if Instant::now() > window {
            // Returned after the window (the read may wait 100 ms): not counted.
            break;
        }
        match got {
            Ok(0) => panic!("the server closed the throttled connection"),
            Ok(n) => received += n as u64,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading the echo: {e}"),
        }
    }
    writer.join().expect("writer thread");
    assert!(
        received <= 3 * RATE,
        "{received} bytes came back within 2 s at {RATE} bytes/s"
    );
    assert!(
        received >= RATE,
        "only {received} bytes came back within 2 s (the first second's worth is a burst)"
    );

    // Still open: more data, or nothing yet, but not end of input.
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    match client.read(&mut buf) {
        Ok(0) => panic!("the server closed the throttled connection"),
        Ok(_) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Err(e) => panic!("the throttled connection failed: {e}"),
    }
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_connections_active"), 1.0, "{text}");
}

#[test]
fn a_shutdown_lifts_the_throttle_and_the_drain_returns_every_byte() {
    // 64 KiB at 1000 bytes/s would take a minute; the drain must not wait
    // for the throttle.
    const RATE: u64 = 1_000;
    const DRAIN: Duration = Duration::from_secs(3);
    let server = spawn_echo(builder().max_bytes_per_sec(RATE).drain_timeout(DRAIN));
    let mut client = connect(server.local_addr());
    let data = random_bytes(64 * 1024);

    let writer = {
        let mut stream = client.try_clone().unwrap();
        let data = data.clone();
        thread::spawn(move || stream.write_all(&data))
    };
    // Wait until the server is throttling: it has read its first second.
    wait_until("the server read its burst", || {
        metric(&metrics(&server), "syncnet_bytes_received_total") >= RATE as f64
    });
    writer
        .join()
        .expect("writer thread")
        .expect("write the data");

    let (done_tx, done_rx) = mpsc::channel();
    let started = Instant::now();
    thread::scope(|scope| {
        scope.spawn(|| {
            server.shutdown();
            let _ = done_tx.send(started.elapsed());
        });
        let mut back = Vec::new();
        client
            .read_to_end(&mut back)
            .expect("read the echo until end of input");
        assert_eq!(back.len(), data.len(), "bytes lost in the drain");
        assert!(back == data, "the echo differs from what was sent");
        let took = done_rx
            .recv_timeout(DRAIN + Duration::from_secs(3))
            .expect("shutdown returned");
        assert!(
            took < DRAIN + Duration::from_secs(2),
            "shutdown took {took:?}"
        );
    });
    let _ = client.shutdown(Shutdown::Both);
}
