//! Logs (SPEC §4): in JSON format every stderr line is one JSON object with
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
use std::time::Duration;

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

/// Lines until one matches `pred` (all of them, that one included).
fn lines_until(
    child: &ChildServer,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    loop {
        let line = child
            .lines
            .recv_timeout(WAIT)
            .expect("the expected log line");
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
        for key in ["ts", "level", "target", "msg"] {
            assert!(value.get(key).is_some(), "no {key} in {line}");
        }
        let done = pred(&value);
        seen.push(value);
        if done {
            return seen;
        }
    }
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

#[test]
fn rejections_are_rate_limited_with_a_suppressed_count() {
    let child = start_child();
    // Hold the only worker; with no queue every other connection is rejected.
    let mut held = connect(child.addr);
    assert_eq!(echo_once(&mut held, b"hold"), b"hold");
    for _ in 0..10 {
        let mut c = connect(child.addr);
        expect_closed_by_server(&mut c);
    }
    let lines = lines_until(&child, |v| v["msg"] == "connection rejected");
    let first = lines.last().unwrap();
    assert_eq!(first["level"], "warn");
    assert_eq!(first["reason"], "overload");
    assert_eq!(first["suppressed"], 0);
    assert!(first["conn_id"].is_u64() && first["peer"].is_string());

    // Within that second the other nine are held back; after it, the next
    // rejection's line says how many were suppressed.
    thread::sleep(Duration::from_millis(1100));
    let mut c = connect(child.addr);
    expect_closed_by_server(&mut c);
    let lines = lines_until(&child, |v| v["msg"] == "connection rejected");
    assert_eq!(lines.last().unwrap()["suppressed"], 9, "{:?}", lines.last());
    let rejected_lines = lines
        .iter()
        .filter(|v| v["msg"] == "connection rejected")
        .count();
    assert_eq!(rejected_lines, 1, "one line per reason per second");
}
