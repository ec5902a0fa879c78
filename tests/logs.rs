//! Logs (`docs/reference.md`, "Logs"): in JSON format every stderr line is one JSON object with
//! `ts`, `level`, `target`, `msg`; connection events carry `conn_id` and
//! `peer`; the close line's byte counts are exact; a handler panic is one
//! JSON line too; rejections are rate-limited with a count of the suppressed.
//!
//! The server runs in a child process (this test binary re-run with
//! `--ignored --exact log_child`), so its whole stderr can be inspected.

mod support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncnet::Conn;

/// The child: a JSON-logging server whose handler panics on `boom`, with one
/// worker and no queue (so overload rejections are easy to cause). It exits
/// when its stdin closes.
#[test]
#[ignore = "run by the other tests of this file as a child process"]
fn log_child() {
    syncnet::init_logging(syncnet::LogFormat::Json);
    let server = syncnet::Server::builder()
        .listen("127.0.0.1:0")
        .admin(Some("127.0.0.1:0"))
        .workers(1)
        .queue(0)
        .build()
        .unwrap()
        .spawn(|conn: &mut Conn| -> std::io::Result<()> {
            let mut first = [0u8; 4];
            let n = conn.read(&mut first)?;
            if &first[..n] == b"boom" {
                panic!("handler asked to panic");
            }
            conn.write_all(&first[..n])?;
            syncnet::echo(conn)
        })
        .unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    server.shutdown();
}

struct ChildServer {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_child() -> ChildServer {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "log_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = lines.recv_timeout(WAIT).expect("start-up line");
    let start: serde_json::Value = serde_json::from_str(&first).expect("start-up line is JSON");
    let addr = start["listen"]
        .as_str()
        .expect("listen field")
        .parse()
        .unwrap();
    assert!(start["admin"].as_str().is_some(), "{first}");
    assert!(start["workers"].is_number(), "{first}");
    assert!(start["version"].is_string(), "{first}");
    ChildServer { child, lines, addr }
}

/// Most lines [`lines_until`] reads before it gives up.
const MAX_LINES: usize = 10_000;

/// The child's next stderr line (checked to be JSON with `ts`, `level`,
/// `target` and `msg`), or `None` when none arrives within `within`.
fn next_line(child: &ChildServer, within: Duration) -> Option<serde_json::Value> {
    let line = match child.lines.recv_timeout(within) {
        Ok(line) => line,
        Err(mpsc::RecvTimeoutError::Timeout) => return None,
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the child's stderr closed"),
    };
    let value: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
    for key in ["ts", "level", "target", "msg"] {
        assert!(value.get(key).is_some(), "no {key} in {line}");
    }
    Some(value)
}

/// Lines until one matches `pred` (all of them, that one included), within
/// [`WAIT`] in all.
fn lines_until(
    child: &ChildServer,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while seen.len() < MAX_LINES {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(value) = next_line(child, left) else {
            panic!("the expected log line did not come within {WAIT:?}; seen: {seen:?}");
        };
        let done = pred(&value);
        seen.push(value);
        if done {
            return seen;
        }
    }
    panic!("the expected log line was not among the first {MAX_LINES}");
}

fn is_close(v: &serde_json::Value) -> bool {
    v["msg"] == "connection closed"
        || v["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("handler panicked"))
}

#[test]
fn json_lines_carry_exact_connection_fields_and_panics_stay_json() {
    let child = start_child();
    let mut ids = HashSet::new();

    // Three echo connections with known byte counts.
    for n in [5usize, 700, 70_000] {
        let mut c = connect(child.addr);
        let writer = {
            let mut c = c.try_clone().unwrap();
            thread::spawn(move || {
                c.write_all(&vec![b'a'; n]).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
            })
        };
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert_eq!(back.len(), n);
        let lines = lines_until(&child, is_close);
        let close = lines.last().unwrap();
        assert_eq!(close["level"], "info");
        assert_eq!(close["bytes_in"], n as u64, "{close}");
        assert_eq!(close["bytes_out"], n as u64, "{close}");
        assert_eq!(close["reason"], "eof");
        assert!(close["duration_ms"].is_u64());
        assert_eq!(close["peer"], c.local_addr().unwrap().to_string());
        let open = lines
            .iter()
            .find(|l| l["msg"] == "connection opened")
            .expect("debug open line");
        assert_eq!(open["conn_id"], close["conn_id"]);
        assert!(
            ids.insert(close["conn_id"].as_u64().unwrap()),
            "conn_id reused"
        );
    }

    // A panicking handler: one JSON line at error with conn_id and the message.
    let mut boom = connect(child.addr);
    boom.write_all(b"boom").unwrap();
    expect_closed_by_server(&mut boom);
    let lines = lines_until(&child, is_close);
    let panic_line = lines.last().unwrap();
    assert_eq!(panic_line["level"], "error", "{panic_line}");
    assert_eq!(panic_line["panic"], "handler asked to panic");
    assert_eq!(panic_line["reason"], "panic");
    assert!(ids.insert(panic_line["conn_id"].as_u64().unwrap()));
    assert!(panic_line["peer"].is_string());

    // The worker survived: another echo works.
    let mut after = connect(child.addr);
    assert_eq!(echo_once(&mut after, b"still here"), b"still here");
}

/// Connects and expects an overload rejection; returns the client's
/// address (the `peer` of the server's log line).
fn rejected_client(addr: SocketAddr) -> String {
    let mut c = connect(addr);
    let peer = c.local_addr().unwrap().to_string();
    expect_closed_by_server(&mut c);
    peer
}

#[test]
fn rejections_are_rate_limited_with_a_suppressed_count() {
    let is_rejected = |v: &serde_json::Value| v["msg"] == "connection rejected";
    let child = start_child();
    // Hold the only worker; with no queue every other connection is rejected.
    let mut held = connect(child.addr);
    assert_eq!(echo_once(&mut held, b"hold"), b"hold");
    // Every rejected client, in the order the (single) accept thread saw them.
    let mut rejected: Vec<String> = (0..10).map(|_| rejected_client(child.addr)).collect();
    let lines = lines_until(&child, is_rejected);
    let first = lines.last().unwrap();
    assert_eq!(first["level"], "warn");
    assert_eq!(first["reason"], "overload");
    assert_eq!(first["suppressed"], 0);
    assert_eq!(first["peer"], rejected[0].as_str(), "{first}");
    assert!(first["conn_id"].is_u64() && first["peer"].is_string());

    // Within that second the rejections are held back; the first one after
    // it is logged with the count of those. Keep rejecting until that line
    // comes (about a second), bounded in count and time.
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let second = loop {
        assert!(
            Instant::now() < deadline && rejected.len() < 1000,
            "no second rejection line after {} rejections in {WAIT:?}; seen: {seen:?}",
            rejected.len()
        );
        rejected.push(rejected_client(child.addr));
        // Every line that has come, waiting a little for the next one.
        let mut found = None;
        while let Some(line) = next_line(&child, Duration::from_millis(20)) {
            let hit = is_rejected(&line);
            seen.push(line.clone());
            if hit {
                found = Some(line);
                break;
            }
        }
        if let Some(line) = found {
            break line;
        }
    };
    let rejected_lines = seen.iter().filter(|v| is_rejected(v)).count();
    assert_eq!(
        rejected_lines, 1,
        "one line per reason per second: {seen:?}"
    );
    // Its peer says which rejection was logged: every one between the two
    // logged ones was suppressed, and counted.
    let logged = rejected
        .iter()
        .position(|peer| second["peer"] == peer.as_str())
        .unwrap_or_else(|| panic!("{second} is not one of the rejected clients"));
    assert!(logged >= 1, "{second}");
    assert_eq!(second["suppressed"], logged as u64 - 1, "{second}");
    assert_eq!(second["reason"], "overload", "{second}");
}
