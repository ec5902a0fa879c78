//! Helpers for tests that run the built `syncnet` binary: start it, read its stderr, signal it, and never leave it running.
//!
//! Declare it next to `mod support;` with
//! `#[path = "support/binary.rs"] mod binary;`.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any single wait on the binary may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// The flags every test server gets: ports chosen by the kernel, JSON logs.
pub const SERVE_ARGS: [&str; 7] = [
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--admin",
    "127.0.0.1:0",
    "--log-format",
    "json",
];

/// Path of the binary under test.
pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_syncnet")
}

/// A command for the binary with a clean environment: no `SYNCNET_*`
/// variable leaks in from the test's environment, and the log level is `info`.
pub fn command() -> Command {
    let mut cmd = Command::new(exe());
    clean_env(&mut cmd);
    cmd
}

/// `syncnet serve` on 127.0.0.1:0 with the admin endpoint on 127.0.0.1:0 and JSON logs.
pub fn serve_command() -> Command {
    let mut cmd = command();
    cmd.args(SERVE_ARGS);
    cmd
}

/// Removes every `SYNCNET_*` and `OTEL_*` variable and sets `RUST_LOG=info`.
pub fn clean_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if key_text.starts_with("SYNCNET_") || key_text.starts_with("OTEL_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info");
}

/// Sends `signal` (e.g. `TERM`, `INT`) to `pid` with the `kill` command.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// A running `syncnet` process. Killed (SIGKILL) and reaped on drop, so a
/// failing test leaves no process behind.
pub struct Binary {
    child: Child,
    lines: Receiver<String>,
    /// Every stderr line received so far, in order.
    pub seen: Vec<String>,
    /// The start-up line, parsed.
    pub startup: Value,
    /// The address the server accepts on.
    pub listen: SocketAddr,
    /// The admin endpoint, if it is on.
    pub admin: Option<SocketAddr>,
}

impl Binary {
    /// Starts `syncnet serve` with [`SERVE_ARGS`] plus `extra`.
    pub fn serve(extra: &[&str]) -> Binary {
        let mut cmd = serve_command();
        cmd.args(extra);
        Binary::start(cmd)
    }

    /// Starts `syncnet serve --listen LISTEN` (e.g. `10.0.0.1:0`) with the
    /// admin endpoint on 127.0.0.1:0, JSON logs, and `extra`.
    pub fn serve_on(listen: &str, extra: &[&str]) -> Binary {
        let mut cmd = command();
        cmd.args(["serve", "--listen", listen])
            .args(&SERVE_ARGS[3..])
            .args(extra);
        Binary::start(cmd)
    }

    /// Starts `cmd` (which must run a server with `--log-format json`) and
    /// waits for its start-up line. Panics with everything it printed if the
    /// process exits first or [`WAIT`] passes.
    pub fn start(mut cmd: Command) -> Binary {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start the syncnet binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut binary = Binary {
            child,
            lines,
            seen: Vec::new(),
            startup: Value::Null,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
        };
        let startup = binary
            .wait_json("the start-up line", |v| v.get("listen").is_some())
            .unwrap_or_else(|| {
                panic!(
                    "no start-up line; stderr so far:\n{}",
                    binary.seen.join("\n")
                )
            });
        binary.listen = startup["listen"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad listen field in {startup}"));
        binary.admin = startup["admin"].as_str().and_then(|s| s.parse().ok());
        binary.startup = startup;
        binary
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `TERM`, `INT`) to the process.
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// The admin endpoint's address; panics when it is off.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin.expect("admin endpoint on")
    }

    /// The next stderr line, waiting at most until `deadline`.
    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Reads stderr lines until one parses as JSON and satisfies `want`
    /// (lines seen before this call are not looked at again). `None` after
    /// [`WAIT`] or when stderr closes.
    pub fn wait_json(&mut self, what: &str, mut want: impl FnMut(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + WAIT;
        while let Some(line) = self.next_line(deadline) {
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && want(&value)
            {
                return Some(value);
            }
        }
        eprintln!("gave up waiting for {what}");
        None
    }

    /// Like [`wait_json`](Self::wait_json) but panics, with the stderr seen, on failure.
    pub fn expect_json(&mut self, what: &str, want: impl FnMut(&Value) -> bool) -> Value {
        match self.wait_json(what, want) {
            Some(value) => value,
            None => panic!(
                "no stderr line showing {what}; stderr so far:\n{}",
                self.seen.join("\n")
            ),
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // The poll interval, under the deadline above.
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to [`WAIT`] for the exit; panics with the stderr seen if it does not come.
    pub fn expect_exit(&mut self) -> ExitStatus {
        match self.wait_exit(WAIT) {
            Some(status) => status,
            None => {
                self.drain_lines(Duration::from_millis(100));
                panic!(
                    "the process did not exit; stderr so far:\n{}",
                    self.seen.join("\n")
                )
            }
        }
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Collects the remaining stderr lines until stderr closes (after the
    /// exit) or `timeout` passes; returns every line seen since the start.
    pub fn drain_lines(&mut self, timeout: Duration) -> &[String] {
        let deadline = Instant::now() + timeout;
        while self.next_line(deadline).is_some() {}
        &self.seen
    }

    /// `GET /metrics` from the admin endpoint.
    pub fn metrics(&self) -> String {
        let (status, body) = crate::support::http_get(self.admin_addr(), "/metrics");
        assert_eq!(status, 200, "GET /metrics");
        body
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What a finished run printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    /// The exit code; panics if the process was killed by a signal.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {self:?}"))
    }

    /// Stdout as text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `cmd` to the end with `stdin` as its input, for at most [`WAIT`]
/// (then it is killed and the test fails).
pub fn run(mut cmd: Command, stdin: &[u8]) -> Finished {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the syncnet binary");
    let mut input = child.stdin.take().expect("piped stdin");
    let input_data = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&input_data);
        // Dropping `input` closes the pipe: end of input.
    });
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = out_of(err);
            panic!("{cmd:?} did not finish within {WAIT:?}; stderr:\n{stderr}");
        }
        // The poll interval, under the deadline above.
        thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: out_of(err),
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn out_of(handle: thread::JoinHandle<Vec<u8>>) -> String {
    String::from_utf8_lossy(&handle.join().unwrap_or_default()).into_owned()
}

/// A file in the temporary directory with a unique name, removed on drop.
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Writes `contents` to a new file whose name ends with `suffix`.
    pub fn new(suffix: &str, contents: &str) -> TempFile {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("syncnet-test-{}-{n}{suffix}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        TempFile { path }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One `read`, retried when it fails with `Interrupted`.
///
/// A socket read with a timeout (`SO_RCVTIMEO`) is not restarted after a
/// signal, and this test process gets `SIGCHLD` whenever a child it spawned
/// exits: a bare `read` here can fail with `EINTR` for no fault of the server.
pub fn read_retrying(stream: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}
