//! The `line_counter` example (`examples/line_counter.rs`), a line protocol
//! written from the crate docs, run as a process: its commands and replies
//! (pipelined, `\r\n` too), `ERR` for malformed requests on a connection
//! that stays open, an over-long line closing only its own connection, the
//! request metrics, and a graceful exit on SIGTERM.

mod support;

#[path = "support/binary.rs"]
mod binary;
#[path = "support/example.rs"]
mod example;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use binary::Binary;
use support::*;

/// `line_counter` on 127.0.0.1:0 with its admin endpoint on 127.0.0.1:0,
/// past its start-up line.
fn start() -> Binary {
    let mut cmd = Command::new(example::line_counter_exe());
    binary::clean_env(&mut cmd);
    cmd.args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"]);
    Binary::start(cmd)
}

/// A client: the stream to write to and a line reader on the same socket.
struct LineClient {
    stream: TcpStream,
    lines: BufReader<TcpStream>,
}

impl LineClient {
    fn connect(server: &Binary) -> LineClient {
        let stream = connect(server.listen);
        let lines = BufReader::new(stream.try_clone().expect("clone the stream"));
        LineClient { stream, lines }
    }

    /// Sends `bytes` as they are (one write).
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write the request");
    }

    /// The next reply line, without its `\n`.
    fn reply(&mut self) -> String {
        let mut line = String::new();
        let n = self.lines.read_line(&mut line).expect("read a reply");
        assert!(
            n > 0,
            "the server closed the connection instead of replying"
        );
        assert!(
            line.ends_with('\n'),
            "a reply without its newline: {line:?}"
        );
        line.pop();
        line
    }

    /// Sends one request line and returns its reply.
    fn call(&mut self, request: &str) -> String {
        self.send(format!("{request}\n").as_bytes());
        self.reply()
    }
}

/// Polls the example's `/metrics` until `sample` reads `value`.
fn wait_sample(server: &Binary, sample: &str, value: f64) {
    wait_until(&format!("{sample} == {value}"), || {
        metric(&server.metrics(), sample) == value
    });
}

#[test]
fn commands_are_answered_in_order_also_when_pipelined() {
    let server = start();
    let mut client = LineClient::connect(&server);
    assert_eq!(client.call("GET visits"), "0");
    assert_eq!(client.call("INCR visits"), "1");
    // Four requests in one write, `\r\n` and `\n` mixed: four replies in order.
    client.send(b"INCR visits\r\nINCR other\nGET visits\r\nTIME\n");
    assert_eq!(client.reply(), "2");
    assert_eq!(client.reply(), "1");
    assert_eq!(client.reply(), "2");
    let time: f64 = client.reply().parse().expect("TIME answers a number");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!((time - now).abs() < 60.0, "TIME {time}, now {now}");
    // The counters are shared by every connection.
    let mut other = LineClient::connect(&server);
    assert_eq!(other.call("GET visits"), "2");
    wait_sample(&server, "syncnet_requests_total", 7.0);
}

#[test]
fn malformed_requests_get_err_and_the_connection_stays_open() {
    let server = start();
    let mut client = LineClient::connect(&server);
    assert_eq!(client.call("INCR a"), "1");
    let usage = "ERR usage: INCR <key> | GET <key> | TIME";
    for bad in ["FOO", "INCR", "GET a b", "", "incr a", "TIME now"] {
        assert_eq!(client.call(bad), usage, "request {bad:?}");
    }
    client.send(b"GET \xff\xfe\n");
    assert_eq!(client.reply(), "ERR request is not UTF-8");
    // Still the same connection, still served, nothing was counted twice.
    assert_eq!(client.call("INCR a"), "2");
    wait_sample(
        &server,
        r#"syncnet_request_errors_total{kind="malformed"}"#,
        7.0,
    );
}

#[test]
fn an_over_long_line_closes_only_its_own_connection() {
    let server = start();
    let mut steady = LineClient::connect(&server);
    assert_eq!(steady.call("INCR k"), "1");

    // 257 bytes and a newline: one over the 256-byte limit.
    let key = "x".repeat(252);
    let mut long = LineClient::connect(&server);
    long.send(format!("INCR {key}\n").as_bytes());
    assert_eq!(long.reply(), "ERR line too long (max 256 bytes)");
    expect_closed_by_server(&mut long.stream);

    // A peer that never sends a newline is cut off at the limit too.
    let mut endless = LineClient::connect(&server);
    endless.send(&[b'y'; 1000]);
    assert_eq!(endless.reply(), "ERR line too long (max 256 bytes)");
    expect_closed_by_server(&mut endless.stream);

    // Everyone else is served as before.
    assert_eq!(steady.call("INCR k"), "2");
    let mut fresh = LineClient::connect(&server);
    assert_eq!(fresh.call("GET k"), "2");
    assert_eq!(
        fresh.call(&format!("GET {key}")),
        "0",
        "the long line incremented nothing"
    );
    wait_sample(
        &server,
        r#"syncnet_request_errors_total{kind="frame_too_large"}"#,
        2.0,
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut server = start();
    let mut client = LineClient::connect(&server);
    assert_eq!(client.call("INCR a"), "1");
    server.signal("TERM");
    // The drain ends the idle connection: the client sees end of input.
    expect_closed_by_server(&mut client.stream);
    let status = server.expect_exit();
    assert!(status.success(), "exit status {status}");
    server.expect_json("the shutdown's last line", |line| {
        line["msg"] == "shutdown complete"
    });
}
