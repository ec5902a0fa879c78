//! `syncnet client` against in-process servers: message mode, a short reply, and stdin/stdout copy mode.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::{Read, Write};

use binary::{Finished, command, run};
use support::{builder, spawn_echo};
use syncnet::Conn;

const HELLO: &str = "Hello, server!";

fn client(addr: std::net::SocketAddr, extra: &[&str], stdin: &[u8]) -> Finished {
    let mut cmd = command();
    cmd.args(["client", "--connect", &addr.to_string()])
        .args(extra);
    run(cmd, stdin)
}

#[test]
fn message_mode_prints_exactly_the_echo() {
    let server = spawn_echo(builder());
    let out = client(server.local_addr(), &["--message", HELLO], b"");
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout_text(), HELLO);
    server.shutdown();
}

#[test]
fn a_short_reply_fails_and_says_how_many_bytes_came_back() {
    // Reads the whole message, answers with its first 3 bytes, and closes.
    let server = builder()
        .build()
        .expect("server builds")
        .spawn(|conn: &mut Conn| -> std::io::Result<()> {
            let mut message = [0u8; HELLO.len()];
            conn.read_exact(&mut message)?;
            conn.write_all(&message[..3])?;
            conn.flush()
        })
        .expect("server starts");
    let out = client(server.local_addr(), &["--message", HELLO], b"");
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(out.stdout_text(), "Hel");
    let words: Vec<&str> = out
        .stderr
        .split(|c: char| !c.is_ascii_alphanumeric())
        .collect();
    assert!(
        words.contains(&"3") && out.stderr.contains("bytes"),
        "stderr does not say that 3 bytes came back: {}",
        out.stderr
    );
    server.shutdown();
}

#[test]
fn a_reply_of_the_right_length_but_other_bytes_fails_naming_the_mismatch() {
    // Like a TLS server's alert to a plain client: bytes come back, but not ours.
    let server = builder()
        .build()
        .expect("server builds")
        .spawn(|conn: &mut Conn| -> std::io::Result<()> {
            let mut message = [0u8; HELLO.len()];
            conn.read_exact(&mut message)?;
            message[5] = b'#';
            conn.write_all(&message)?;
            conn.flush()
        })
        .expect("server starts");
    let out = client(server.local_addr(), &["--message", HELLO], b"");
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stderr.contains("differs") && out.stderr.contains("byte 5"),
        "stderr does not name the mismatch: {}",
        out.stderr
    );
    server.shutdown();
}

#[test]
fn without_a_message_stdin_goes_to_the_server_and_the_reply_to_stdout() {
    let server = spawn_echo(builder());
    let input = b"line one\nline two\n";
    let out = client(server.local_addr(), &[], input);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, input, "stdout: {:?}", out.stdout_text());
    server.shutdown();
}

#[test]
fn help_describes_the_client_flags() {
    let mut cmd = command();
    cmd.args(["client", "--help"]);
    let out = run(cmd, b"");
    assert_eq!(out.code(), 0, "{out:?}");
    let text = out.stdout_text();
    for flag in ["--connect", "--message", "--timeout"] {
        assert!(text.contains(flag), "{flag} not in:\n{text}");
    }
}
