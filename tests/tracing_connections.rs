//! `syncnet serve --otlp-endpoint` and `syncnet proxy` (endpoint from
//! `OTEL_EXPORTER_OTLP_ENDPOINT`): one `connection` span per connection,
//! with its bytes and close reason, sent to a receiver written here.

mod support;

#[path = "support/binary.rs"]
mod binary;
#[path = "support/otlp_receiver.rs"]
mod otlp_receiver;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};

use binary::Binary;
use otlp_receiver::{Mode, Receiver};

/// Writes `hello`, reads it back, half-closes and waits for the close.
fn echo_hello(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(b"hello").expect("send");
    let mut reply = [0u8; 5];
    stream.read_exact(&mut reply).expect("echo");
    assert_eq!(&reply, b"hello");
    stream.shutdown(Shutdown::Write).expect("half-close");
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("end of input");
}

#[test]
fn serve_and_proxy_record_one_span_per_connection() {
    let receiver = Receiver::start(Mode::Answer);
    let mut serve = binary::serve_command();
    serve
        .args(["--otlp-endpoint", &receiver.endpoint()])
        .env("OTEL_SERVICE_NAME", "echo");
    let serve = Binary::start(serve);
    let mut proxy = binary::command();
    proxy
        .args(["proxy", "--listen", "127.0.0.1:0", "--admin", "off"])
        .args([
            "--log-format",
            "json",
            "--upstream",
            &serve.listen.to_string(),
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())
        .env("OTEL_SERVICE_NAME", "front");
    let proxy = Binary::start(proxy);

    echo_hello(proxy.listen);
    let spans = receiver.wait_for("a connection span from each", |spans| {
        ["echo", "front"].iter().all(|service| {
            spans
                .iter()
                .any(|s| s.service == *service && s.name == "connection")
        })
    });
    for service in ["echo", "front"] {
        let span = spans
            .iter()
            .find(|s| s.service == service && s.name == "connection")
            .expect("found above");
        assert_eq!(span.kind, 2, "a server span: {span:?}");
        assert_eq!(span.parent_span_id, "", "{span:?}");
        assert_eq!(span.attr("syncnet.bytes_in"), Some("5"), "{span:?}");
        assert_eq!(span.attr("syncnet.bytes_out"), Some("5"), "{span:?}");
        assert_eq!(span.attr("syncnet.close_reason"), Some("eof"), "{span:?}");
        assert_eq!(
            span.attr("network.peer.address"),
            Some("127.0.0.1"),
            "{span:?}"
        );
        assert!(span.attr("syncnet.conn_id").is_some(), "{span:?}");
        assert_ne!(span.status_code, 2, "{span:?}");
    }
}
