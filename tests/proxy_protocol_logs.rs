//! Once a PROXY header has been read, every event of the connection names
//! the header's client as `peer` and the balancer as `proxy_peer` — also a
//! rejection of that client.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::Write;
use std::net::TcpStream;

use binary::Binary;

#[test]
fn a_client_denied_by_its_proxy_header_address_is_logged_with_that_address() {
    let mut server = Binary::serve(&["--proxy-protocol", "--deny", "127.0.0.66/32"]);
    let mut balancer = TcpStream::connect(server.listen).expect("connect");
    let balancer_addr = balancer.local_addr().expect("local address").to_string();
    balancer
        .write_all(b"PROXY TCP4 127.0.0.66 127.0.0.1 5000 3000\r\n")
        .expect("send the PROXY header");
    let line = server.expect_json("the rejection line", |v| v["msg"] == "connection rejected");
    assert_eq!(line["reason"], "denied", "{line}");
    assert_eq!(
        line["peer"], "127.0.0.66:5000",
        "the header's client: {line}"
    );
    assert_eq!(
        line["proxy_peer"],
        balancer_addr.as_str(),
        "the balancer: {line}"
    );
}
