//! The proxy's close reasons: the idle timeout counts both directions, so a
//! client read that timed out while the upstream was talking is not what
//! ended the connection; an upstream that then resets it closes it with
//! reason `error`, and a connection silent both ways with `idle_timeout`.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;

use support::{builder, connect, wait_metric};
use syncnet::ServerHandle;
use syncnet::proxy::Proxy;

/// The proxy's idle timeout in these tests.
const IDLE: Duration = Duration::from_millis(400);

fn spawn_proxy(upstream: SocketAddr) -> ServerHandle {
    let server = builder().idle_timeout(IDLE).build().expect("server builds");
    let proxy = Proxy::builder()
        .upstream(upstream.to_string())
        .metrics(&server.metrics_registry())
        .build()
        .expect("proxy builds");
    server.spawn(proxy).expect("server starts")
}

/// An upstream (one connection) that writes a byte every 150 ms for three
/// idle timeouts, so the silent client's reads time out several times while
/// the connection is busy, then resets the connection (SO_LINGER 0).
fn talking_then_resetting_upstream() -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
    let addr = listener.local_addr().expect("upstream address");
    let thread = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("the proxy connects");
        for _ in 0..8 {
            stream.write_all(b"x").expect("write to the proxy");
            // Pacing, not synchronisation: 8 × 150 ms spans 3 idle timeouts.
            thread::sleep(Duration::from_millis(150));
        }
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(stream); // RST
    });
    (addr, thread)
}

#[test]
fn an_upstream_reset_after_client_read_timeouts_is_an_error_not_an_idle_timeout() {
    let (upstream, talker) = talking_then_resetting_upstream();
    let proxy = spawn_proxy(upstream);
    let mut client = connect(proxy.local_addr());
    let mut got = Vec::new();
    // The bytes, then the end of the connection (EOF or a reset).
    let _ = client.read_to_end(&mut got);
    assert_eq!(got, b"xxxxxxxx", "every byte before the reset");
    talker.join().expect("the upstream thread");
    wait_metric(
        &proxy,
        "syncnet_connections_closed_total{reason=\"error\"}",
        1.0,
    );
    wait_metric(
        &proxy,
        "syncnet_connections_closed_total{reason=\"idle_timeout\"}",
        0.0,
    );
    proxy.shutdown();
}

#[test]
fn a_connection_silent_both_ways_closes_with_idle_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
    let proxy = spawn_proxy(listener.local_addr().expect("upstream address"));
    let mut client = connect(proxy.local_addr());
    let (mut upstream_side, _) = listener.accept().expect("the proxy connects");
    let mut got = Vec::new();
    let _ = client.read_to_end(&mut got); // closed by the proxy after IDLE
    assert!(got.is_empty());
    wait_metric(
        &proxy,
        "syncnet_connections_closed_total{reason=\"idle_timeout\"}",
        1.0,
    );
    // The upstream's connection was closed too.
    upstream_side
        .set_read_timeout(Some(support::WAIT))
        .expect("read timeout");
    let mut rest = Vec::new();
    let _ = upstream_side.read_to_end(&mut rest);
    proxy.shutdown();
}
