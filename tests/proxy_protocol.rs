//! `--proxy-protocol`: a v1 or v2 header names the client (in logs as `peer`, the balancer as `proxy_peer`) and is never echoed; a malformed header closes the connection (reason `protocol`), an untrusted balancer is refused (`denied`), allow/deny apply to the named client, and a v2 LOCAL header is served as the socket peer.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpStream};

use binary::Binary;
use support::*;
use syncnet::{Builder, Cidr, Conn};

const PROTOCOL: &str = "syncnet_connections_rejected_total{reason=\"protocol\"}";
const DENIED: &str = "syncnet_connections_rejected_total{reason=\"denied\"}";

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

fn cidr(text: &str) -> Cidr {
    text.parse().expect("a valid CIDR")
}

/// A v2 PROXY header for TCP over IPv4 from `src` to `dst`: the 16-byte
/// fixed part, then the 12-byte address block.
fn v2_header(src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(0x21); // version 2, command PROXY
    header.push(0x11); // TCP over IPv4
    header.extend_from_slice(&12u16.to_be_bytes());
    header.extend_from_slice(&src.ip().octets());
    header.extend_from_slice(&dst.ip().octets());
    header.extend_from_slice(&src.port().to_be_bytes());
    header.extend_from_slice(&dst.port().to_be_bytes());
    header
}

/// A v2 LOCAL header (a balancer's health check): no addresses.
fn v2_local_header() -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(0x20); // version 2, command LOCAL
    header.push(0x00); // UNSPEC
    header.extend_from_slice(&0u16.to_be_bytes());
    header
}

/// A v1 header from `ip:port` to 10.0.0.1:3000.
fn v1_header(ip: &str, port: u16) -> Vec<u8> {
    format!("PROXY TCP4 {ip} 10.0.0.1 {port} 3000\r\n").into_bytes()
}

/// A builder that expects PROXY headers from 127.0.0.1 only.
fn proxied_builder() -> Builder {
    builder()
        .proxy_protocol(true)
        .trusted_proxy(cidr("127.0.0.1/32"))
}

/// Sends `header` then `hello\n` on `stream`; expects only `hello\n` back.
fn expect_served_after(stream: &mut TcpStream, header: &[u8]) {
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(b"hello\n");
    stream.write_all(&bytes).expect("write header and data");
    let mut back = [0u8; 6];
    stream.read_exact(&mut back).expect("read the echo");
    assert_eq!(&back, b"hello\n");
}

/// Sends `bytes` on `stream` and expects the server to close it without
/// echoing anything back.
fn expect_refused(mut stream: TcpStream, bytes: &[u8]) {
    // The server may have closed already, so the write may fail: fine.
    let _ = stream.write_all(bytes);
    expect_closed_by_server(&mut stream);
}

/// Runs the binary, sends `header` + a line through it, and returns the
/// close log line and the client socket's own address.
fn close_line_after(header: &[u8]) -> (serde_json::Value, String) {
    let mut server = Binary::serve(&["--proxy-protocol", "--trusted-proxy", "127.0.0.1/32"]);
    let mut stream = connect(server.listen);
    let local = stream.local_addr().expect("local addr").to_string();
    expect_served_after(&mut stream, header);
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("read until the server closes");
    assert!(rest.is_empty(), "more than the data came back: {rest:?}");
    let line = server.expect_json("the close line", |v| v["msg"] == "connection closed");
    (line, local)
}

#[test]
fn a_v1_header_names_the_client_and_is_not_echoed() {
    let (line, local) = close_line_after(&v1_header("10.9.8.7", 5555));
    assert_eq!(line["peer"], "10.9.8.7:5555", "{line}");
    assert_eq!(line["proxy_peer"], local.as_str(), "{line}");
    assert_eq!(line["bytes_in"], 6, "the header was counted: {line}");
    assert_eq!(line["reason"], "eof", "{line}");
}

#[test]
fn a_v2_header_names_the_client_and_is_not_echoed() {
    let header = v2_header(
        SocketAddrV4::new(Ipv4Addr::new(10, 9, 8, 7), 5555),
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 3000),
    );
    let (line, local) = close_line_after(&header);
    assert_eq!(line["peer"], "10.9.8.7:5555", "{line}");
    assert_eq!(line["proxy_peer"], local.as_str(), "{line}");
    assert_eq!(line["bytes_in"], 6, "the header was counted: {line}");
}

#[test]
fn a_malformed_header_closes_the_connection() {
    let server = spawn_echo(proxied_builder());
    let addr = server.local_addr();

    expect_refused(connect(addr), b"GET / HTTP/1.0\r\n\r\n");
    wait_metric(&server, PROTOCOL, 1.0);
    expect_refused(
        connect(addr),
        b"PROXY TCP4 10.9.8.777 10.0.0.1 5555 3000\r\nhello\n",
    );
    wait_metric(&server, PROTOCOL, 2.0);

    // A good header still works.
    expect_served_after(&mut connect(addr), &v1_header("10.9.8.7", 5555));
}

#[test]
fn a_peer_that_is_not_a_trusted_proxy_is_refused() {
    let server = spawn_echo(
        builder()
            .proxy_protocol(true)
            .trusted_proxy(cidr("127.0.0.2/32")),
    );
    let addr = server.local_addr();

    let mut bytes = v1_header("10.9.8.7", 5555);
    bytes.extend_from_slice(b"hello\n");
    expect_refused(connect_from(Ipv4Addr::LOCALHOST, addr), &bytes);
    wait_metric(&server, DENIED, 1.0);

    let mut trusted = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr);
    expect_served_after(&mut trusted, &v1_header("10.9.8.7", 5555));
    assert_eq!(metric(&metrics(&server), DENIED), 1.0);
}

#[test]
fn deny_applies_to_the_client_the_header_names() {
    let server = spawn_echo(proxied_builder().deny(cidr("10.9.8.0/24")));
    let addr = server.local_addr();

    let mut bytes = v1_header("10.9.8.7", 5555);
    bytes.extend_from_slice(b"hello\n");
    expect_refused(connect(addr), &bytes);
    wait_metric(&server, DENIED, 1.0);

    // The same balancer relaying another client is served.
    expect_served_after(&mut connect(addr), &v1_header("10.9.9.7", 5555));
    assert_eq!(metric(&metrics(&server), DENIED), 1.0);
}

#[test]
fn a_v2_local_header_is_served_as_the_socket_peer() {
    // Says who the server thinks the client is, then echoes.
    let server = spawn_with(proxied_builder(), |conn: &mut Conn| {
        writeln!(conn, "{} {:?}", conn.peer(), conn.proxy_peer())?;
        syncnet::echo(conn)
    });
    let mut stream = connect(server.local_addr());
    let local = stream.local_addr().expect("local addr");
    stream.write_all(&v2_local_header()).expect("write header");

    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    reader.read_line(&mut line).expect("read who I am");
    assert_eq!(line, format!("{local} None\n"));
    assert_eq!(echo_once(&mut stream, b"hello\n"), b"hello\n");
}
