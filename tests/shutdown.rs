//! Shutdown: drain keeps sent bytes, `/readyz` turns 503, delay, drain deadline, queued rejects.

mod support;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use support::*;
use syncnet::Conn;

fn closed(reason: &str) -> String {
    format!("syncnet_connections_closed_total{{reason=\"{reason}\"}}")
}

/// Echoes until end of input, reports the connection id on `eof`, then keeps
/// the connection open until `release` fires or is dropped.
fn holding_echo(
    eof: Sender<u64>,
    release: Receiver<()>,
) -> impl Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static {
    move |conn: &mut Conn| {
        let mut buf = [0u8; 1024];
        loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                let _ = eof.send(conn.id());
                let _ = release.recv_timeout(WAIT);
                return Ok(());
            }
            conn.write_all(&buf[..n])?;
        }
    }
}

/// Echoes, and on end of input keeps going: writes a `.` every 10 ms until a
/// write fails. Only a forced close ends it.
fn ignore_eof(conn: &mut Conn) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            conn.write_all(b".")?;
            // The misbehaving handler's pace (the behaviour under test).
            thread::sleep(Duration::from_millis(10));
        } else {
            conn.write_all(&buf[..n])?;
        }
    }
}

/// Reads until EOF or an error (bounded); returns the bytes read.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..100_000 {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                assert!(
                    !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ),
                    "the server never closed the connection"
                );
                return got;
            }
        }
    }
    panic!("the server never closed the connection");
}

/// One client writes 1 MiB to a fresh echo server while reading the echo;
/// once the whole 1 MiB is written, the server shuts down. Every byte must
/// come back, then EOF. Returns what went wrong, if anything.
fn shutdown_during_a_transfer() -> Result<(), String> {
    const SIZE: usize = 1 << 20;
    let server = spawn_echo(builder());
    let data = random_bytes(SIZE);
    let mut client = connect(server.local_addr());
    // Being served (not just queued for a worker) before the data goes out.
    assert_eq!(echo_once(&mut client, b"hi"), b"hi");
    let mut writer = client.try_clone().unwrap();
    let (written_tx, written_rx) = bounded(1);
    let (back, error) = thread::scope(|s| {
        s.spawn(|| {
            writer.write_all(&data).expect("client writes 1 MiB");
            written_tx.send(()).unwrap();
        });
        s.spawn(|| {
            written_rx
                .recv_timeout(WAIT)
                .expect("the client wrote its 1 MiB");
            server.shutdown();
        });
        // The client never half-closes: the EOF comes from the drain.
        let mut back = Vec::with_capacity(SIZE);
        let error = client.read_to_end(&mut back).err();
        (back, error)
    });
    match error {
        Some(e) => Err(format!("{e} after {} of {SIZE} bytes", back.len())),
        None if back.len() != SIZE => Err(format!("EOF after {} of {SIZE} bytes", back.len())),
        None if back != data => Err("echoed bytes differ".to_string()),
        None => Ok(()),
    }
}

#[test]
fn bytes_sent_before_shutdown_all_come_back_then_eof() {
    // Bytes in flight at shutdown are a race: try it a few times, in parallel.
    const WAVES: usize = 3;
    const PARALLEL: usize = 6;
    let mut failures = Vec::new();
    for _ in 0..WAVES {
        let wave: Vec<_> = (0..PARALLEL)
            .map(|_| thread::spawn(shutdown_during_a_transfer))
            .collect();
        for round in wave {
            if let Err(e) = round.join().expect("round thread") {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the drain lost bytes sent before shutdown in {} of {} transfers:\n{}",
        failures.len(),
        WAVES * PARALLEL,
        failures.join("\n")
    );
}

#[test]
fn readyz_answers_503_while_draining_and_healthz_stays_200() {
    let (eof_tx, eof_rx) = unbounded();
    let (release_tx, release_rx) = bounded::<()>(0);
    let server = spawn_with(
        builder().drain_timeout(WAIT),
        holding_echo(eof_tx, release_rx),
    );
    let admin = server.admin_addr().expect("admin endpoint");
    let mut client = connect(server.local_addr());
    assert_eq!(echo_once(&mut client, b"x"), b"x");
    assert_eq!(http_get(admin, "/readyz"), (200, "ready\n".to_string()));

    thread::scope(|s| {
        let shutting = s.spawn(|| server.shutdown());
        eof_rx
            .recv_timeout(WAIT)
            .expect("the drain shut the connection's reading side");
        assert_eq!(http_get(admin, "/readyz"), (503, "draining\n".to_string()));
        assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_string()));
        assert_eq!(metric(&metrics(&server), "syncnet_connections_active"), 1.0);
        assert!(!shutting.is_finished(), "shutdown returned mid-drain");
        drop(release_tx);
        shutting.join().expect("shutdown thread");
    });
    assert!(read_until_closed(&mut client).is_empty());
}

#[test]
fn shutdown_delay_keeps_serving_then_the_listener_closes() {
    let delay = Duration::from_millis(500);
    let server = spawn_echo(builder().shutdown_delay(delay));
    let addr = server.local_addr();
    let admin = server.admin_addr().expect("admin endpoint");
    let started = Instant::now();
    thread::scope(|s| {
        let shutting = s.spawn(|| server.shutdown());
        wait_until("/readyz answers 503", || {
            http_get(admin, "/readyz").0 == 503
        });
        // Within the delay a new connection is still served.
        let mut late = connect(addr);
        assert_eq!(echo_once(&mut late, b"late"), b"late");
        late.shutdown(Shutdown::Write).unwrap();
        assert!(read_until_closed(&mut late).is_empty());
        shutting.join().expect("shutdown thread");
    });
    assert!(
        started.elapsed() >= delay - Duration::from_millis(50),
        "shutdown returned after {:?}, before its {delay:?} delay",
        started.elapsed()
    );
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "still accepting after shutdown returned"
    );
}

#[test]
fn drain_timeout_forces_the_close_and_bounds_shutdown() {
    let drain = Duration::from_secs(1);
    let server = spawn_with(builder().drain_timeout(drain), ignore_eof);
    let mut client = connect(server.local_addr());
    assert_eq!(echo_once(&mut client, b"x"), b"x");
    let started = Instant::now();
    let (dots, closed_at) = thread::scope(|s| {
        let reader = s.spawn(|| {
            let got = read_until_closed(&mut client);
            (got, started.elapsed())
        });
        server.shutdown();
        let took = started.elapsed();
        assert!(
            took >= drain - Duration::from_millis(100),
            "shutdown returned after {took:?}, before the {drain:?} drain timeout"
        );
        assert!(
            took <= drain + Duration::from_secs(1),
            "shutdown took {took:?} with a {drain:?} drain timeout"
        );
        reader.join().expect("reader thread")
    });
    assert!(
        !dots.is_empty() && dots.iter().all(|&b| b == b'.'),
        "the handler kept running during the drain"
    );
    assert!(
        closed_at >= drain - Duration::from_millis(100),
        "closed after {closed_at:?}, before the drain timeout"
    );
}

#[test]
fn connections_closed_at_the_drain_deadline_count_as_drain() {
    // `f`: ignores end of input, so only the drain deadline ends it.
    // `s`: stuck outside any socket call until released; while it is held,
    // shutdown (and with it the admin endpoint) has not finished.
    let (release_tx, release_rx) = bounded::<()>(0);
    let handler = move |conn: &mut Conn| -> io::Result<()> {
        let mut first = [0u8; 1];
        conn.read_exact(&mut first)?;
        conn.write_all(&first)?;
        if first[0] == b's' {
            let _ = release_rx.recv_timeout(WAIT);
            return Ok(());
        }
        ignore_eof(conn)
    };
    let drain = Duration::from_secs(1);
    let server = spawn_with(builder().workers(4).drain_timeout(drain), handler);
    let mut forced = connect(server.local_addr());
    assert_eq!(echo_once(&mut forced, b"f"), b"f");
    let mut stuck = connect(server.local_addr());
    assert_eq!(echo_once(&mut stuck, b"s"), b"s");

    let started = Instant::now();
    thread::scope(|s| {
        let shutting = s.spawn(|| server.shutdown());
        wait_until("the forced close is counted as drain", || {
            metric(&metrics(&server), &closed("drain")) == 1.0
        });
        let at = started.elapsed();
        assert!(
            at >= drain - Duration::from_millis(100),
            "closed after {at:?}, before the {drain:?} drain timeout"
        );
        let text = metrics(&server);
        assert_eq!(metric(&text, "syncnet_connections_active"), 1.0);
        assert_eq!(metric(&text, &closed("error")), 0.0);
        assert_eq!(metric(&text, &closed("eof")), 0.0);
        drop(release_tx);
        shutting.join().expect("shutdown thread");
    });
    assert!(read_until_closed(&mut forced).iter().all(|&b| b == b'.'));
    assert!(read_until_closed(&mut stuck).is_empty());
}

#[test]
fn queued_connections_are_rejected_with_reason_shutdown() {
    let (eof_tx, eof_rx) = unbounded();
    let (release_tx, release_rx) = bounded::<()>(0);
    let server = spawn_with(
        builder()
            .workers(1)
            .queue(4)
            .queue_timeout(Duration::ZERO)
            .drain_timeout(WAIT),
        holding_echo(eof_tx, release_rx),
    );
    let mut held = connect(server.local_addr());
    assert_eq!(echo_once(&mut held, b"held"), b"held");
    let mut queued = connect(server.local_addr());
    queued.write_all(b"queued").unwrap();
    wait_metric(&server, "syncnet_connections_queued", 1.0);

    thread::scope(|s| {
        let shutting = s.spawn(|| server.shutdown());
        expect_closed_by_server(&mut queued);
        eof_rx
            .recv_timeout(WAIT)
            .expect("the drain reached the held connection");
        // The held connection keeps shutdown (and the admin endpoint) going.
        let text = metrics(&server);
        assert_eq!(
            metric(
                &text,
                "syncnet_connections_rejected_total{reason=\"shutdown\"}"
            ),
            1.0
        );
        assert_eq!(
            metric(
                &text,
                "syncnet_connections_rejected_total{reason=\"overload\"}"
            ),
            0.0
        );
        assert_eq!(metric(&text, "syncnet_connections_queued"), 0.0);
        assert_eq!(metric(&text, "syncnet_connections_active"), 1.0);
        drop(release_tx);
        shutting.join().expect("shutdown thread");
    });
    assert!(read_until_closed(&mut held).is_empty());
}

#[test]
fn a_client_that_never_pauses_sees_end_of_input_soon_after_the_signal() {
    let server = spawn_echo(builder().drain_timeout(Duration::from_secs(8)));
    let stream = connect(server.local_addr());
    let mut reader = stream.try_clone().unwrap();
    reader.set_read_timeout(Some(WAIT)).unwrap();
    let sent_before_signal = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (signal_tx, signal_rx) = bounded::<Instant>(1);

    // Sends 1 KiB every 100 ms until the server closes its side.
    let counter = std::sync::Arc::clone(&sent_before_signal);
    let sender = thread::spawn(move || {
        let mut writer = stream;
        let mut sent = 0usize;
        let mut signalled = false;
        for i in 0..200u32 {
            if !signalled && signal_rx.try_recv().is_ok() {
                counter.store(sent, std::sync::atomic::Ordering::SeqCst);
                signalled = true;
            }
            let chunk = [(i % 251) as u8; 1024];
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
            thread::sleep(Duration::from_millis(100)); // the client's pace
        }
        sent
    });

    // Let some traffic flow, then shut down while the client keeps sending.
    let mut echoed = Vec::new();
    let mut buf = [0u8; 4096];
    while echoed.len() < 5 * 1024 {
        let n = reader.read(&mut buf).expect("echo before the signal");
        assert!(n > 0, "the server closed before the signal");
        echoed.extend_from_slice(&buf[..n]);
    }
    let signalled_at = Instant::now();
    signal_tx.send(signalled_at).unwrap();
    let shutdown = thread::spawn(move || server.shutdown());
    let eof_at = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Instant::now(),
            Ok(n) => echoed.extend_from_slice(&buf[..n]),
            Err(e) => panic!("expected end of input, got {e}"),
        }
    };
    let waited = eof_at - signalled_at;
    assert!(
        waited <= Duration::from_millis(1500),
        "end of input came {waited:?} after the signal"
    );
    shutdown.join().unwrap();
    let _ = sender.join().unwrap();
    let before = sent_before_signal.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        echoed.len() >= before,
        "{} bytes came back of the {before} sent before the signal",
        echoed.len()
    );
    for (i, chunk) in echoed.chunks(1024).enumerate() {
        assert!(
            chunk.iter().all(|&b| b == (i as u32 % 251) as u8),
            "chunk {i} came back altered"
        );
    }
}
