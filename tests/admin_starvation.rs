//! The admin endpoint under a trickling attack: 64 clients send their
//! request heads one byte at a time (and reconnect when cut off), and
//! `/healthz`, probed every 250 ms, answers within 1 s every time.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use support::*;

const TRICKLERS: usize = 64;
const ATTACK: Duration = Duration::from_secs(20);
const PROBE_EVERY: Duration = Duration::from_millis(250);
const PROBE_WITHIN: Duration = Duration::from_secs(1);

/// Holds an admin connection open by sending a request head one byte per
/// second, reconnecting whenever the server cuts it off, until `stop`.
fn trickle(admin: SocketAddr, stop: &AtomicBool, cut_off: &AtomicUsize) {
    let head = b"GET /metrics HTTP/1.1\r\nX: ";
    while !stop.load(Ordering::SeqCst) {
        let Ok(mut stream) = TcpStream::connect(admin) else {
            thread::sleep(Duration::from_millis(50)); // the pace of retries
            continue;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(1)));
        for byte in head.iter().cycle().take(10_000) {
            if stop.load(Ordering::SeqCst) || stream.write_all(&[*byte]).is_err() {
                break;
            }
            // A reply or a close means the server cut this client off.
            let mut buf = [0u8; 64];
            match stream.read(&mut buf) {
                Ok(_) => {
                    cut_off.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {
                    cut_off.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
            thread::sleep(Duration::from_secs(1)); // the attack's pace
        }
    }
}

#[test]
fn healthz_answers_within_a_second_while_64_clients_trickle() {
    let server = spawn_echo(builder().admin(Some("127.0.0.1:0")));
    let admin = server.admin_addr().expect("an admin endpoint");
    let stop = Arc::new(AtomicBool::new(false));
    let cut_off = Arc::new(AtomicUsize::new(0));
    let tricklers: Vec<_> = (0..TRICKLERS)
        .map(|_| {
            let (stop, cut_off) = (Arc::clone(&stop), Arc::clone(&cut_off));
            thread::spawn(move || trickle(admin, &stop, &cut_off))
        })
        .collect();

    let started = Instant::now();
    let mut probes = 0;
    let mut slowest = Duration::ZERO;
    while started.elapsed() < ATTACK {
        let asked = Instant::now();
        let (status, body) = http_get(admin, "/healthz");
        let took = asked.elapsed();
        assert_eq!((status, body.as_str()), (200, "ok\n"), "probe {probes}");
        assert!(
            took <= PROBE_WITHIN,
            "probe {probes} took {took:?} while {TRICKLERS} clients trickled"
        );
        slowest = slowest.max(took);
        probes += 1;
        thread::sleep(PROBE_EVERY.saturating_sub(took)); // the probing pace
    }
    stop.store(true, Ordering::SeqCst);
    for trickler in tricklers {
        trickler.join().expect("a trickler does not panic");
    }
    assert!(probes >= 60, "only {probes} probes in {ATTACK:?}");
    assert!(
        cut_off.load(Ordering::SeqCst) >= TRICKLERS,
        "the head deadline cut off {} trickling clients, expected at least {TRICKLERS}",
        cut_off.load(Ordering::SeqCst)
    );
    eprintln!("{probes} probes, slowest {slowest:?}");
    server.shutdown();
}
