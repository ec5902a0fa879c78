//! The `ingest` example (`examples/ingest`): durable ingestion with group
//! commit.
//!
//! The example's modules are compiled into this test (`#[path]`): the
//! record check, opening the file, and the committer behind a fake store
//! that records the order of appends, syncs and replies
//! (`tests/ingest/units.rs`), and the replies of a served connection
//! (`tests/ingest/served.rs`). The binary runs as processes for crashes and signals: `kill -9`
//! under 8 producers then a restart and a rerun, SIGTERM mid-stream, a torn
//! last line, and `produce`'s exit codes.

mod support;

#[path = "support/binary.rs"]
mod binary;
#[allow(dead_code)]
#[path = "../examples/ingest/committer.rs"]
mod committer;
#[path = "support/example.rs"]
mod example;
#[allow(dead_code)]
#[path = "../examples/ingest/protocol.rs"]
mod protocol;
#[allow(dead_code)]
#[path = "../examples/ingest/record.rs"]
mod record;
#[path = "ingest/served.rs"]
mod served;
#[allow(dead_code)]
#[path = "../examples/ingest/store.rs"]
mod store;
#[path = "ingest/units.rs"]
mod units;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use binary::Binary;
use serde_json::Value;
use support::{WAIT, connect, metric};

/// How long a `produce` run of 100 000 records may take (debug build, two
/// shared cores).
const PRODUCE_WAIT: Duration = Duration::from_secs(40);

/// A directory under the target directory (a disk, not tmpfs), removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ingest-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create the test directory");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Sends `input` and reads `n` reply lines.
fn exchange(stream: &mut TcpStream, input: &[u8], n: usize) -> Vec<String> {
    stream.write_all(input).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    (0..n)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a reply line");
            assert!(line.ends_with('\n'), "a whole line: {line:?}");
            line.trim_end().to_string()
        })
        .collect()
}

// ---------------------------------------------------------- the processes

/// The example's binary with `args`, in a clean environment.
fn ingest(args: &[&str]) -> Command {
    let mut cmd = Command::new(example::ingest_exe());
    binary::clean_env(&mut cmd);
    cmd.args(args);
    cmd
}

/// `ingest serve --file FILE` with JSON logs and `extra` flags, past its
/// start-up line.
fn serve(file: &Path, extra: &[&str]) -> Binary {
    let mut cmd = ingest(&["serve", "--log-format", "json", "--file"]);
    cmd.arg(file).args(extra);
    Binary::start(cmd)
}

/// `ingest produce` against `addr`, started in the background.
fn produce(addr: SocketAddr, acked: &Path, extra: &[&str]) -> Child {
    let mut cmd = ingest(&["produce", "--connect", &addr.to_string(), "--acked-file"]);
    cmd.arg(acked)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("start ingest produce")
}

/// Waits for `produce` to end; its exit code and report.
fn report(mut child: Child) -> (i32, Value) {
    let deadline = Instant::now() + PRODUCE_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("ingest produce did not finish within {PRODUCE_WAIT:?}");
        }
        // The poll interval, under the deadline above.
        thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): stdout {stdout:?}, stderr {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (status.code().expect("an exit code"), report)
}

/// The lines of a file (none when it does not exist).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Polls until `path` has at least `n` lines.
fn wait_lines(path: &Path, n: usize) {
    support::wait_until(&format!("{} has {n} lines", path.display()), || {
        lines(path).len() >= n
    });
}

/// Every line of the records file is a record, and no id is there twice:
/// the set of ids.
fn stored_ids(file: &Path) -> HashSet<String> {
    let mut ids = HashSet::new();
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "whole lines");
    for (n, line) in text.lines().enumerate() {
        let id = record::parse_id(line.as_bytes())
            .unwrap_or_else(|e| panic!("line {}: {e}: {line}", n + 1));
        assert!(ids.insert(id), "line {}: id stored twice: {line}", n + 1);
    }
    ids
}

fn assert_all_acked_stored(acked: &[String], stored: &HashSet<String>) {
    let missing: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records missing, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_record_and_stores_none_twice() {
    let dir = TempDir::new("kill9");
    let file = dir.path().join("records.jsonl");
    let (acked_1, acked_2) = (dir.path().join("acked-1"), dir.path().join("acked-2"));
    let mut server = serve(&file, &["--listen", "127.0.0.1:0"]);
    let addr = server.listen;
    let producers = produce(addr, &acked_1, &["--retry-for", "20s"]);
    wait_lines(&acked_1, 5_000);
    server.signal("KILL");
    server.expect_exit();
    let acked_before_restart = lines(&acked_1).len();

    // The same port and file: the producers reconnect and resend.
    let mut server = serve(&file, &["--listen", &addr.to_string()]);
    let opened = server.seen.iter().find(|l| l.contains("opened")).cloned();
    assert!(opened.is_some(), "an `opened` line: {:?}", server.seen);
    let (code, first) = report(producers);
    eprintln!("{acked_before_restart} acknowledged before the restart; {first}; {opened:?}");
    assert_eq!(code, 0, "the producers finish after the restart: {first}");
    assert_eq!(
        first["acked"].as_u64().unwrap() + first["dups"].as_u64().unwrap(),
        100_000
    );

    // A rerun with the same ids stores nothing new.
    let (code, rerun) = report(produce(addr, &acked_2, &[]));
    assert_eq!(code, 0, "{rerun}");
    assert_eq!(
        (rerun["acked"].as_u64(), rerun["dups"].as_u64()),
        (Some(0), Some(100_000))
    );
    server.signal("TERM");
    assert!(server.expect_exit().success());

    let stored = stored_ids(&file);
    assert_eq!(stored.len(), 100_000);
    let acked = lines(&acked_1);
    assert!(acked.len() >= acked_before_restart);
    assert_all_acked_stored(&acked, &stored);
}

#[test]
fn sigterm_mid_stream_acknowledges_only_stored_records_and_exits_0() {
    let dir = TempDir::new("sigterm");
    let file = dir.path().join("records.jsonl");
    let acked = dir.path().join("acked");
    let mut server = serve(&file, &["--listen", "127.0.0.1:0"]);
    let producers = produce(server.listen, &acked, &["--retry-for", "1s"]);
    wait_lines(&acked, 5_000);
    server.signal("TERM");
    let status = server.expect_exit();
    assert!(status.success(), "{status}: {:?}", server.seen);
    let (code, report) = report(producers);
    eprintln!("after SIGTERM: {report}");
    if code == 0 {
        eprintln!("the producers finished before the drain: {report}");
    } else {
        assert_eq!(code, 1, "{report}");
    }
    let logs = server.drain_lines(Duration::from_millis(100)).join("\n");
    assert!(logs.contains("committer stopped"), "{logs}");

    let stored = stored_ids(&file);
    let acked = lines(&acked);
    let done = report["acked"].as_u64().unwrap() + report["dups"].as_u64().unwrap();
    assert_eq!(acked.len() as u64, done);
    assert_all_acked_stored(&acked, &stored);
}

#[test]
fn a_torn_last_line_is_dropped_and_logged_and_the_rest_is_served() {
    let dir = TempDir::new("torn");
    let file = dir.path().join("records.jsonl");
    let complete = "{\"id\":\"r1\"}\n{\"id\":\"r2\",\"v\":2}\n";
    std::fs::write(&file, format!("{complete}{{\"id\":\"r3\",\"pa")).unwrap();
    let mut server = serve(
        &file,
        &["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"],
    );
    let dropped = server
        .seen
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| {
            v["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("dropped a torn last line"))
        })
        .unwrap_or_else(|| panic!("no torn-line warning: {:?}", server.seen));
    assert_eq!(dropped["level"], "warn");
    assert_eq!(dropped["offset"], complete.len());
    assert_eq!(dropped["dropped_bytes"], 14);
    assert_eq!(dropped["dropped"], "{\"id\":\"r3\",\"pa");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), complete);

    let mut stream = connect(server.listen);
    let replies = exchange(&mut stream, b"{\"id\":\"r2\"}\n{\"id\":\"r3\"}\n", 2);
    assert_eq!(replies, ["dup r2", "ok r3"]);
    let text = server.metrics();
    assert_eq!(metric(&text, "syncnet_ingest_records_total"), 1.0);
    assert_eq!(metric(&text, "syncnet_ingest_duplicates_total"), 1.0);
    assert_eq!(metric(&text, "syncnet_ingest_fsyncs_total"), 1.0);
    assert_eq!(metric(&text, "syncnet_ingest_records_per_fsync_sum"), 1.0);
    drop(stream);
    server.signal("TERM");
    assert!(server.expect_exit().success());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        format!("{complete}{{\"id\":\"r3\"}}\n")
    );
}

#[test]
fn serve_refuses_a_file_with_a_line_that_is_not_a_record() {
    let dir = TempDir::new("not-records");
    let file = dir.path().join("records.jsonl");
    std::fs::write(&file, "{\"id\":\"r1\"}\nhello\n").unwrap();
    let mut cmd = ingest(&[
        "serve",
        "--log-format",
        "json",
        "--listen",
        "127.0.0.1:0",
        "--file",
    ]);
    cmd.arg(&file);
    let finished = binary::run(cmd, b"");
    assert_eq!(finished.code(), 1, "{}", finished.stderr);
    assert!(
        finished
            .stderr
            .contains("line 2 (byte 12) is not a record (err invalid json)"),
        "{}",
        finished.stderr
    );
}

#[test]
fn produce_exits_1_when_it_cannot_deliver_and_2_on_bad_usage() {
    let dir = TempDir::new("produce");
    let acked = dir.path().join("acked");
    // Nothing listens on port 1.
    let child = produce(
        SocketAddr::from(([127, 0, 0, 1], 1)),
        &acked,
        &["--records", "10", "--retry-for", "200ms"],
    );
    let (code, report) = report(child);
    assert_eq!(code, 1);
    assert_eq!(
        (report["records"].as_u64(), report["acked"].as_u64()),
        (Some(10), Some(0))
    );
    for bad in [
        &["--window", "0"][..],
        &["--id-prefix", "a b"],
        &["--records", "x"],
    ] {
        let finished = binary::run(ingest(&[&["produce"][..], bad].concat()), b"");
        assert_eq!(finished.code(), 2, "{bad:?}: {}", finished.stderr);
    }
}
