//! The `echo_client` example (`examples/echo_client.rs`) as a process,
//! against in-process servers: its summary, the connections it opens (at
//! most `--connections`), and exit code 1 when an echo differs or the
//! server cannot be reached.

mod support;

#[path = "support/binary.rs"]
mod binary;
#[path = "support/example.rs"]
mod example;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use binary::Finished;
use support::*;
use syncnet::Conn;

/// `echo_client --connect ADDR` with `args`, run to its end.
fn echo_client(addr: SocketAddr, args: &[&str]) -> Finished {
    let mut cmd = Command::new(example::echo_client_exe());
    binary::clean_env(&mut cmd);
    cmd.arg("--connect").arg(addr.to_string()).args(args);
    binary::run(cmd, b"")
}

/// The value after `key: ` on the summary line that starts with it.
fn summary<'a>(out: &'a Finished, key: &str) -> &'a str {
    let stdout = std::str::from_utf8(&out.stdout).expect("UTF-8 stdout");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no `{key}:` line in the summary:\n{stdout}"))
}

#[test]
fn every_message_is_echoed_over_at_most_m_connections() {
    let server = spawn_echo(builder());
    let out = echo_client(
        server.local_addr(),
        &["--messages", "2000", "--connections", "3", "--size", "300"],
    );
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(summary(&out, "messages"), "2000 of 2000 echoed intact");
    assert_eq!(summary(&out, "errors"), "0");
    assert!(summary(&out, "elapsed").ends_with(" s"), "{out:?}");
    let rate: f64 = summary(&out, "messages/s").parse().expect("a rate");
    assert!(rate > 0.0, "{out:?}");
    let created: u32 = summary(&out, "connections created").parse().unwrap();
    assert!((1..=3).contains(&created), "{out:?}");
    let accepted = metric(&metrics(&server), "syncnet_connections_accepted_total");
    assert_eq!(
        accepted,
        f64::from(created),
        "the server saw what the pool made"
    );
    assert!(out.stderr.is_empty(), "{out:?}");
    server.shutdown();
}

#[test]
fn the_defaults_send_1000_messages_of_64_bytes_over_4_connections() {
    let server = spawn_echo(builder());
    let out = echo_client(server.local_addr(), &[]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(summary(&out, "messages"), "1000 of 1000 echoed intact");
    assert!(metric(&metrics(&server), "syncnet_connections_accepted_total") <= 4.0);
    // 1000 messages of 64 bytes.
    wait_metric(&server, "syncnet_bytes_received_total", 64_000.0);
    server.shutdown();
}

#[test]
fn an_echo_that_differs_fails_with_exit_1() {
    // Echoes every byte but changes the 10th of the stream.
    let corrupting = |conn: &mut Conn| -> io::Result<()> {
        let mut seen = 0usize;
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            if (seen..seen + n).contains(&9) {
                buf[9 - seen] ^= 0x20;
            }
            seen += n;
            conn.write_all(&buf[..n])?;
        }
    };
    let server = spawn_with(builder(), corrupting);
    let out = echo_client(server.local_addr(), &["--connections", "1"]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(summary(&out, "messages"), "0 of 1000 echoed intact");
    assert_eq!(summary(&out, "errors"), "1");
    assert!(
        out.stderr
            .starts_with("echo_client: message 0: the echo differs from byte 9 on"),
        "{out:?}"
    );
    server.shutdown();
}

#[test]
fn an_unreachable_server_fails_with_exit_1_and_bad_usage_with_2() {
    // Nobody listens on a port just released.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = echo_client(closed, &["--messages", "10"]);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(summary(&out, "messages").starts_with("0 of 10"), "{out:?}");
    assert!(out.stderr.contains("cannot connect"), "{out:?}");

    for args in [
        &["--connections", "0"][..],
        &["--size", "0"],
        &["--messages", "many"],
    ] {
        let out = echo_client(closed, args);
        assert_eq!(out.code(), 2, "echo_client {args:?}: {out:?}");
    }
}
