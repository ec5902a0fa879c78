//! Unit tests of the pool against plain `std` listeners: limits, reuse,
//! stale connections, broken leases, metrics registration.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::shared::{bounded, peer_still_open};
use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// A listener on 127.0.0.1:0 whose accepted connections are sent to the
/// returned channel (so the test decides when each one closes).
fn listener() -> (String, mpsc::Receiver<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            if tx.send(stream.unwrap()).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

fn pool() -> ClientPoolBuilder {
    ClientPool::builder().checkout_timeout(WAIT)
}

/// Polls `check` until it holds, for at most [`WAIT`].
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn zero_total_is_refused_and_idle_is_capped_by_total() {
    let e = ClientPool::builder()
        .max_total_per_addr(0)
        .build()
        .unwrap_err();
    assert!(matches!(&e, Error::Config { setting, .. } if setting.contains("max_total_per_addr")));
    let options = Options {
        max_idle_per_addr: 8,
        max_total_per_addr: 2,
        ..Options::default()
    };
    assert_eq!(options.idle_limit(), 2);
}

#[test]
fn a_returned_connection_is_lent_again() {
    let (addr, accepted) = listener();
    let pool = pool().build().unwrap();
    let first = pool.get(&addr).unwrap();
    let _server_side = accepted.recv_timeout(WAIT).unwrap();
    let local = first.stream().local_addr().unwrap();
    assert_eq!(pool.stats().in_use, 1);
    drop(first);
    assert_eq!((pool.stats().idle, pool.stats().in_use), (1, 0));
    let again = pool.get(&addr).unwrap();
    assert_eq!(
        again.stream().local_addr().unwrap(),
        local,
        "the same socket"
    );
    assert_eq!(again.addr(), addr);
    let stats = pool.stats();
    assert_eq!((stats.created, stats.reused, stats.replaced), (1, 1, 0));
}

#[test]
fn an_idle_connection_the_server_closed_is_replaced() {
    let (addr, accepted) = listener();
    let pool = pool().build().unwrap();
    let lease = pool.get(&addr).unwrap();
    drop(accepted.recv_timeout(WAIT).unwrap()); // the server closes it
    wait_until("the FIN arrives", || !peer_still_open(lease.stream()));
    drop(lease); // nothing was read through it: back to the idle list
    assert_eq!(pool.stats().idle, 1);

    let fresh = pool.get(&addr).unwrap();
    assert!(peer_still_open(fresh.stream()));
    let stats = pool.stats();
    assert_eq!((stats.created, stats.reused, stats.replaced), (2, 0, 1));
    assert_eq!((stats.idle, stats.in_use), (0, 1));
}

#[test]
fn end_of_input_or_discard_closes_the_connection_instead() {
    let (addr, accepted) = listener();
    let pool = pool().build().unwrap();
    let mut lease = pool.get(&addr).unwrap();
    drop(accepted.recv_timeout(WAIT).unwrap());
    let mut buf = [0u8; 8];
    assert_eq!(lease.read(&mut buf).unwrap(), 0);
    assert!(lease.is_broken());
    drop(lease);
    assert_eq!((pool.stats().idle, pool.stats().in_use), (0, 0));

    pool.get(&addr).unwrap().discard();
    assert_eq!((pool.stats().idle, pool.stats().in_use), (0, 0));
    assert_eq!(pool.stats().created, 2);
}

#[test]
fn max_idle_zero_keeps_nothing_open() {
    let (addr, _accepted) = listener();
    let pool = pool().max_idle_per_addr(0).build().unwrap();
    drop(pool.get(&addr).unwrap());
    drop(pool.get(&addr).unwrap());
    let stats = pool.stats();
    assert_eq!((stats.idle, stats.created, stats.reused), (0, 2, 0));
}

#[test]
fn a_full_pool_makes_the_next_checkout_wait_then_fail() {
    let (addr, _accepted) = listener();
    let timeout = Duration::from_millis(100);
    let pool = pool()
        .max_total_per_addr(1)
        .checkout_timeout(timeout)
        .build()
        .unwrap();
    let _held = pool.get(&addr).unwrap();
    let started = Instant::now();
    let e = pool.get(&addr).unwrap_err();
    assert!(started.elapsed() >= timeout);
    match &e {
        Error::PoolExhausted {
            addr: a,
            limit,
            waited,
        } => {
            assert_eq!((a.as_str(), *limit), (addr.as_str(), 1));
            assert!(*waited >= timeout);
        }
        other => panic!("expected PoolExhausted, got {other:?}"),
    }
    assert_eq!(pool.stats().checkout_timeouts, 1);
    // Another address has its own limit.
    let (other, _accepted_other) = listener();
    drop(pool.get(&other).unwrap());
}

#[test]
fn a_waiting_checkout_gets_the_connection_given_back() {
    let (addr, _accepted) = listener();
    let pool = pool().max_total_per_addr(1).build().unwrap();
    let held = pool.get(&addr).unwrap();
    let waiter = {
        let (pool, addr) = (pool.clone(), addr.clone());
        thread::spawn(move || {
            pool.get(&addr)
                .map(|lease| lease.stream().local_addr().unwrap())
        })
    };
    let local = held.stream().local_addr().unwrap();
    drop(held);
    let got = waiter.join().unwrap().unwrap();
    assert_eq!(got, local);
    assert_eq!(pool.stats().created, 1);
}

#[test]
fn a_connect_failure_names_the_address_and_frees_the_slot() {
    // A port nobody listens on: bind one, note it, close it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let pool = pool().max_total_per_addr(1).build().unwrap();
    for _ in 0..2 {
        let e = pool.get(&addr).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert!(e.to_string().contains(&addr), "{e}");
    }
    assert_eq!(pool.stats(), PoolStats::default());
    let e = pool.get("not an address").unwrap_err();
    assert!(e.to_string().contains("ClientPool address"), "{e}");
}

#[test]
fn metrics_register_once_per_registry() {
    let registry = prometheus::Registry::new();
    let first = pool().metrics(&registry).build().unwrap();
    let e = pool().metrics(&registry).build().unwrap_err();
    assert!(e.to_string().contains("syncnet_client_pool"), "{e}");
    // The failed pool left nothing behind; the first one's metrics are there.
    let names: Vec<String> = registry
        .gather()
        .iter()
        .map(|family| family.name().to_string())
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("syncnet_client_pool_")));
    drop(first);
}

#[test]
fn timeouts_are_lowered_to_the_deadline_and_never_zero() {
    let second = Duration::from_secs(1);
    assert_eq!(bounded(second, None), Some(second));
    assert_eq!(bounded(Duration::ZERO, None), None);
    let soon = Instant::now() + Duration::from_millis(200);
    let lowered = bounded(second, Some(soon)).unwrap();
    assert!(lowered <= Duration::from_millis(200) && lowered > Duration::ZERO);
    assert!(bounded(Duration::ZERO, Some(soon)).is_some());
    let past = Instant::now();
    assert_eq!(bounded(second, Some(past)), Some(Duration::from_millis(1)));
}
