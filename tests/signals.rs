//! The binary under signals: SIGTERM drains and exits 0, a second SIGINT during a drain exits 130, and JSON logs stay JSON.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use binary::{Binary, read_retrying, serve_command};
use support::{WAIT, connect, echo_once};

/// True when `line` is a JSON object with `ts` (RFC 3339, milliseconds,
/// UTC), `level`, `target` and `msg`.
fn is_log_object(line: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    for key in ["ts", "level", "target", "msg"] {
        if !value.get(key).is_some_and(Value::is_string) {
            return Err(format!("no string field {key}"));
        }
    }
    let ts = value["ts"].as_str().unwrap_or_default().as_bytes();
    // 2026-01-02T03:04:05.678Z
    let shape_ok = ts.len() == 24
        && ts[4] == b'-'
        && ts[7] == b'-'
        && ts[10] == b'T'
        && ts[13] == b':'
        && ts[16] == b':'
        && ts[19] == b'.'
        && ts[23] == b'Z';
    if !shape_ok {
        return Err(format!(
            "ts {:?} is not RFC 3339 with ms in UTC",
            value["ts"]
        ));
    }
    Ok(value)
}

#[test]
fn sigterm_closes_an_idle_connection_and_exits_zero() {
    let mut server = Binary::serve(&[]);
    let mut client = connect(server.listen);
    // A round trip proves a worker is serving the connection.
    assert_eq!(echo_once(&mut client, b"ping"), b"ping");

    server.signal("TERM");
    let status = server.expect_exit();
    assert_eq!(status.code(), Some(0), "exit status {status}");

    let mut buf = [0u8; 16];
    let n = read_retrying(&mut client, &mut buf).expect("the connection is closed, not left open");
    assert_eq!(n, 0, "expected end of stream");

    let lines = server.drain_lines(WAIT).to_vec();
    let logs: Vec<Value> = lines.iter().filter_map(|l| is_log_object(l).ok()).collect();
    assert!(
        logs.iter().any(|v| v["target"] == "syncnet::shutdown"),
        "no shutdown line in:\n{}",
        lines.join("\n")
    );
    assert!(
        logs.iter()
            .any(|v| v["msg"] == "connection closed" && v["reason"] == "drain"),
        "the idle connection was not logged as closed by the drain:\n{}",
        lines.join("\n")
    );
}

/// Echoes `chunks` chunks of 64 KiB through `stream`, reading and writing
/// at full speed, so that the server's receive buffer grows (Linux autotuning).
fn warm_up(stream: &mut TcpStream, chunks: usize) {
    const CHUNK: usize = 64 * 1024;
    let mut sender = stream.try_clone().expect("clone the stream");
    let writer = std::thread::spawn(move || {
        for _ in 0..chunks {
            sender.write_all(&[b'w'; CHUNK]).expect("warm-up write");
        }
    });
    let mut back = vec![0u8; chunks * CHUNK];
    stream.read_exact(&mut back).expect("warm-up echo");
    writer.join().expect("warm-up writer");
}

#[test]
fn a_second_sigint_during_a_long_drain_exits_130() {
    let mut server = Binary::serve(&["--drain-timeout", "30s"]);
    let mut hog = connect(server.listen);
    // First a bulk echo, so the server's receive buffer grows: then the
    // unread backlog it holds when the drain begins outweighs the slack
    // its send buffer may have, and the echo cannot finish.
    warm_up(&mut hog, 256);
    // Then write without reading: once both directions' buffers fill, the
    // server's echo write blocks and the drain cannot finish. One timed-out
    // write may only mean the server is slow (a loaded machine); several in
    // a row without progress mean it is stuck.
    hog.set_write_timeout(Some(Duration::from_millis(250)))
        .expect("set write timeout");
    let chunk = vec![b'x'; 64 * 1024];
    let mut stalls = 0;
    let mut full = false;
    for _ in 0..4096 {
        match hog.write(&chunk) {
            Ok(_) => stalls = 0,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                stalls += 1;
                if stalls == 4 {
                    full = true;
                    break;
                }
            }
            Err(e) => panic!("write failed: {e}"),
        }
    }
    assert!(full, "the buffers never filled up");

    server.signal("INT");
    server.expect_json("the shutdown started", |v| v["msg"] == "shutdown started");
    assert!(
        server.is_running(),
        "the process exited before the second signal, although a connection was still draining"
    );

    server.signal("INT");
    let status = server.expect_exit();
    let lines = server.drain_lines(WAIT).join("\n");
    assert_eq!(
        status.code(),
        Some(130),
        "exit status {status}; stderr:\n{lines}"
    );
    drop(hog);
}

#[test]
fn with_json_logs_every_stderr_line_is_a_json_object() {
    let mut cmd = serve_command();
    cmd.env("RUST_LOG", "debug");
    let mut server = Binary::start(cmd);
    let mut client = connect(server.listen);
    assert_eq!(echo_once(&mut client, b"hello"), b"hello");
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).expect("read to the end");
    server.expect_json("the close line", |v| v["msg"] == "connection closed");

    server.signal("TERM");
    let status = server.expect_exit();
    assert_eq!(status.code(), Some(0), "exit status {status}");
    let lines = server.drain_lines(WAIT).to_vec();

    assert!(lines.len() >= 4, "too few lines:\n{}", lines.join("\n"));
    let mut logs = Vec::new();
    for line in &lines {
        match is_log_object(line) {
            Ok(value) => logs.push(value),
            Err(why) => panic!("{why}: {line}"),
        }
    }
    let startup = &server.startup;
    for key in ["listen", "admin", "workers", "version"] {
        assert!(
            startup.get(key).is_some(),
            "start-up line lacks {key}: {startup}"
        );
    }
    let closed = logs
        .iter()
        .find(|v| v["msg"] == "connection closed")
        .expect("a close line");
    for key in [
        "conn_id",
        "peer",
        "bytes_in",
        "bytes_out",
        "duration_ms",
        "reason",
    ] {
        assert!(
            closed.get(key).is_some(),
            "close line lacks {key}: {closed}"
        );
    }
    assert_eq!(closed["bytes_in"], 5, "{closed}");
    assert_eq!(closed["reason"], "eof", "{closed}");
    assert!(
        logs.iter()
            .any(|v| v["level"] == "debug" && v["msg"] == "connection opened"),
        "no debug open line:\n{}",
        lines.join("\n")
    );
}
