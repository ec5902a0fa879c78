//! Helpers shared by the integration tests: start servers, talk to them,
//! read their metrics. Every wait is bounded.
#![allow(dead_code)] // each test binary uses a different subset

pub mod outside; // outside programs: found, or the test is skipped (a failure when CI=true)
pub mod pki; // the test CAs and certificates; the unit tests of src/tls include it too

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use syncnet::{Builder, Conn, Error, Server, ServerHandle};

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A builder on 127.0.0.1:0 with the admin endpoint on 127.0.0.1:0.
pub fn builder() -> Builder {
    Server::builder()
        .listen("127.0.0.1:0")
        .admin(Some("127.0.0.1:0"))
}

/// Starts an echo server from `builder`.
pub fn spawn_echo(builder: Builder) -> ServerHandle {
    builder
        .build()
        .expect("server builds")
        .spawn(|conn: &mut Conn| syncnet::echo(conn))
        .expect("server starts")
}

/// A client connected to `addr` with read and write timeouts of [`WAIT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Sends `msg` and reads exactly as many bytes back.
pub fn echo_once(stream: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    stream.write_all(msg).expect("write");
    let mut back = vec![0u8; msg.len()];
    stream.read_exact(&mut back).expect("read echo");
    back
}

/// GET `path` from an admin endpoint: (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = connect(addr);
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read http reply");
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The `/metrics` text of a server.
pub fn metrics(handle: &ServerHandle) -> String {
    let admin = handle.admin_addr().expect("admin endpoint on");
    let (status, body) = http_get(admin, "/metrics");
    assert_eq!(status, 200);
    body
}

/// The value of one sample, e.g. `syncnet_connections_active` or
/// `syncnet_connections_rejected_total{reason="overload"}`.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(sample)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or_else(|| panic!("no sample {sample} in:\n{text}"))
}

/// Polls `check` until it returns true or [`WAIT`] passes.
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        // The poll interval, under the deadline above.
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting until {what}");
}

/// Polls the metrics until `sample` has `value`.
pub fn wait_metric(handle: &ServerHandle, sample: &str, value: f64) {
    wait_until(&format!("{sample} == {value}"), || {
        metric(&metrics(handle), sample) == value
    });
}

/// Starts a server from `builder` with a custom handler.
pub fn spawn_with(builder: Builder, handler: impl syncnet::Handler) -> ServerHandle {
    builder
        .build()
        .expect("server builds")
        .spawn(handler)
        .expect("server starts")
}

/// Starts a server on `addr` (e.g. the address of one just shut down,
/// to restart it), with the admin endpoint on 127.0.0.1:0. Retries the
/// bind for up to 5 s while the port is still in use.
pub fn spawn_on(addr: SocketAddr, handler: impl syncnet::Handler) -> ServerHandle {
    for _ in 0..100 {
        let bound = Server::builder()
            .listen(addr.to_string())
            .admin(Some("127.0.0.1:0"))
            .build();
        match bound {
            Ok(server) => return server.spawn(handler).expect("server starts"),
            Err(Error::Bind { .. }) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("cannot build a server on {addr}: {e}"),
        }
    }
    panic!("{addr} stayed in use");
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngExt;
    let mut data = vec![0u8; n];
    rand::rng().fill(&mut data[..]);
    data
}

/// How the server ended a connection, as seen by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// An orderly close: the read returned end of input.
    Eof,
    /// The connection was reset (or aborted) by the server.
    Reset,
}

/// Panics unless the server closes `stream` within [`WAIT`] without sending
/// anything first. A close is end of input or a connection reset; a read
/// that times out is not one: the server did not close, and the test fails
/// saying so. Returns which of the two closes it was.
pub fn expect_closed_by_server(stream: &mut TcpStream) -> Closed {
    expect_closed_within(stream, WAIT)
}

/// [`expect_closed_by_server`] with a wait of `within` instead of [`WAIT`].
/// Restores the read timeout to [`WAIT`] afterwards.
pub fn expect_closed_within(stream: &mut TcpStream, within: Duration) -> Closed {
    use std::io::ErrorKind;
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64];
    // A read with a timeout is not restarted after a signal (the test
    // process gets SIGCHLD from the children some tests spawn): read again
    // for what is left of the wait.
    let mut got = Err(ErrorKind::TimedOut.into());
    for _ in 0..1000 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        got = stream.read(&mut buf);
        if !matches!(&got, Err(e) if e.kind() == ErrorKind::Interrupted) {
            break;
        }
    }
    stream.set_read_timeout(Some(WAIT)).unwrap();
    match got {
        Ok(0) => Closed::Eof,
        Ok(n) => panic!("expected the server to close the connection, got {n} bytes first"),
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
            ) =>
        {
            Closed::Reset
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => panic!(
            "the server did not close the connection within {} s",
            within.as_secs_f64()
        ),
        Err(e) => panic!("expected the server to close the connection (EOF or reset), got {e}"),
    }
}

/// Panics if anything (data or EOF) arrives on `stream` within `quiet`.
/// Restores the read timeout to [`WAIT`] afterwards.
pub fn expect_silent(stream: &mut TcpStream, quiet: Duration) {
    stream.set_read_timeout(Some(quiet)).unwrap();
    let mut buf = [0u8; 64];
    let got = stream.read(&mut buf);
    stream.set_read_timeout(Some(WAIT)).unwrap();
    match got {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        Ok(0) => panic!("expected silence, but the server closed the connection"),
        Ok(n) => panic!("expected silence, got {n} bytes"),
        Err(e) => panic!("expected silence, got {e}"),
    }
}

/// A client connected to `addr` from the local address `local_ip` (e.g.
/// 127.0.0.2: every 127/8 address is loopback on Linux), with read and write
/// timeouts of [`WAIT`]. Binds before connecting, so the server sees that
/// address as the peer.
pub fn connect_from(local_ip: impl Into<std::net::IpAddr>, addr: SocketAddr) -> TcpStream {
    let local = SocketAddr::new(local_ip.into(), 0);
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .expect("create a client socket");
    socket
        .bind(&local.into())
        .unwrap_or_else(|e| panic!("bind the client socket to {local}: {e}"));
    socket
        .connect_timeout(&addr.into(), WAIT)
        .unwrap_or_else(|e| panic!("connect from {local} to {addr}: {e}"));
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}
