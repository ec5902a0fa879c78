//! Real Redis clients against the `kv` example's binary: `redis-cli`
//! (commands, and `--pipe` of 100 000 commands), `redis-benchmark` (with
//! and without pipelining) and redis-py (`tests/python/kv_client.py`: a
//! connection pool, a transactional and a non-transactional pipeline).
//!
//! Each test is skipped, saying so, when its client is not installed,
//! except under `CI=true`, where that is a failure (`.ci/run` installs the
//! Debian packages `redis-tools` and `python3-redis`).

mod support;

#[path = "support/binary.rs"]
mod binary;
#[path = "support/example.rs"]
mod example;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use binary::{Binary, Finished};

/// How long one client run may take: redis-benchmark sends 240 000
/// requests to a debug build, on a shared machine.
const CLIENT_WAIT: Duration = Duration::from_secs(180);

/// True when `program args...` runs and exits 0.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// False, after saying the test is skipped, when `what` is missing; a
/// failure instead under `CI=true`.
fn available(what: &str, present: bool, package: &str) -> bool {
    if !present {
        support::outside::missing(what, package);
    }
    present
}

/// The example's binary on 127.0.0.1:0, past its start-up line.
fn kv_serve() -> Binary {
    let mut cmd = Command::new(example::kv_exe());
    binary::clean_env(&mut cmd);
    cmd.args(["--listen", "127.0.0.1:0", "--log-format", "json"]);
    Binary::start(cmd)
}

/// Runs `cmd` with `stdin` as its input, for at most [`CLIENT_WAIT`].
fn run(mut cmd: Command, stdin: Vec<u8>) -> Finished {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start the client");
    let mut input = child.stdin.take().expect("piped stdin");
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    // Waits on another thread, so the deadline below can kill the client.
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let deadline = Instant::now() + CLIENT_WAIT;
    let output = match finished.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(output) => output.expect("wait for the client"),
        Err(_) => {
            binary::send_signal(pid, "KILL");
            panic!("{cmd:?} did not finish within {CLIENT_WAIT:?}");
        }
    };
    let _ = writer.join();
    Finished {
        status: output.status,
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `redis-cli -p PORT args...`: its output (raw replies, stdout not a terminal).
fn redis_cli(server: &Binary, args: &[&str]) -> String {
    let mut cmd = Command::new("redis-cli");
    cmd.arg("-p")
        .arg(server.listen.port().to_string())
        .args(args);
    let out = run(cmd, Vec::new());
    assert_eq!(out.code(), 0, "redis-cli {args:?}: {}", out.stderr);
    out.stdout_text()
}

#[test]
fn redis_cli_round_trips_every_kind_of_reply() {
    if !available(
        "redis-cli",
        runs("redis-cli", &["--version"]),
        "redis-tools",
    ) {
        return;
    }
    let server = kv_serve();
    let cases: &[(&[&str], &str)] = &[
        (&["SET", "greeting", "hello world"], "OK\n"),
        (&["GET", "greeting"], "hello world\n"),
        (&["GET", "missing"], "\n"),
        (&["INCR", "visits"], "1\n"),
        (&["INCRBY", "visits", "41"], "42\n"),
        (&["EXPIRE", "visits", "100"], "1\n"),
        (&["TTL", "visits"], "100\n"),
        (&["TTL", "greeting"], "-1\n"),
        (
            &["MGET", "greeting", "visits", "missing"],
            "hello world\n42\n\n",
        ),
        (&["DEL", "greeting", "missing"], "1\n"),
        (&["TTL", "greeting"], "-2\n"),
        (&["INCR", "greeting2"], "1\n"),
        (&["DBSIZE"], "2\n"),
    ];
    for (args, want) in cases {
        assert_eq!(redis_cli(&server, args), *want, "{args:?}");
    }
    // An error reply (redis-cli adds an empty line after one), and the
    // server still serves.
    let error = redis_cli(&server, &["SET", "k", "v", "EX", "0"]);
    assert_eq!(error, "ERR invalid expire time in 'set' command\n\n");
    assert_eq!(redis_cli(&server, &["PING"]), "PONG\n");
}

#[test]
fn redis_cli_pipe_sends_100_000_commands_without_an_error() {
    if !available(
        "redis-cli",
        runs("redis-cli", &["--version"]),
        "redis-tools",
    ) {
        return;
    }
    let server = kv_serve();
    let mut input = Vec::new();
    for i in 0..100_000 {
        let (key, value) = (format!("key:{i}"), i.to_string());
        let request = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        );
        input.extend_from_slice(request.as_bytes());
    }
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-p", &server.listen.port().to_string(), "--pipe"]);
    let out = run(cmd, input);
    let stdout = out.stdout_text();
    assert_eq!(out.code(), 0, "{stdout}{}", out.stderr);
    assert!(
        stdout.contains("errors: 0, replies: 100000"),
        "{stdout}{}",
        out.stderr
    );
    assert_eq!(redis_cli(&server, &["DBSIZE"]), "100000\n");
    assert_eq!(redis_cli(&server, &["GET", "key:99999"]), "99999\n");
}

/// Runs `redis-benchmark -t ping,set,get,incr,mset -n 20000 -q` plus
/// `extra`, and checks that every test finished (redis-benchmark 7 exits
/// at the first error reply).
fn benchmark(server: &Binary, extra: &[&str]) {
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-p", &server.listen.port().to_string()])
        .args(["-t", "ping,set,get,incr,mset", "-n", "20000", "-q"])
        .args(extra);
    let out = run(cmd, Vec::new());
    let stdout = out.stdout_text();
    assert_eq!(out.code(), 0, "{stdout}{}", out.stderr);
    // Each test ends with `NAME: N requests per second, ...` after the
    // progress lines (which end with `\r`).
    let results: Vec<&str> = stdout
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|line| line.contains(" requests per second"))
        .collect();
    let names: Vec<&str> = results
        .iter()
        .filter_map(|line| line.split(':').next())
        .collect();
    assert_eq!(
        names,
        [
            "PING_INLINE",
            "PING_MBULK",
            "SET",
            "GET",
            "INCR",
            "MSET (10 keys)"
        ],
        "{stdout}"
    );
    let all = format!("{stdout}{}", out.stderr);
    assert!(!all.contains("Error") && !all.contains("ERR"), "{all}");
}

#[test]
fn redis_benchmark_completes_without_errors() {
    if !available(
        "redis-benchmark",
        runs("redis-benchmark", &["--version"]),
        "redis-tools",
    ) {
        return;
    }
    let server = kv_serve();
    benchmark(&server, &[]);
    benchmark(&server, &["-P", "16"]);
    // INCR counted every request: 20 000 per run.
    let mut cmd = Command::new("redis-cli");
    cmd.args([
        "-p",
        &server.listen.port().to_string(),
        "GET",
        "counter:__rand_int__",
    ]);
    assert_eq!(run(cmd, Vec::new()).stdout_text(), "40000\n");
}

/// The first of `python3` and `/usr/bin/python3` that can import redis.
fn python_with_redis() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|python| runs(python, &["-c", "import redis"]))
}

#[test]
fn redis_py_pool_and_pipelines() {
    let python = python_with_redis();
    if !available("python3 with redis-py", python.is_some(), "python3-redis") {
        return;
    }
    let server = kv_serve();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/kv_client.py");
    let mut cmd = Command::new(python.unwrap_or("python3"));
    cmd.arg(&script)
        .arg("127.0.0.1")
        .arg(server.listen.port().to_string());
    let out = run(cmd, Vec::new());
    let stdout = out.stdout_text();
    assert_eq!(out.code(), 0, "{stdout}\nstderr:\n{}", out.stderr);
    assert_eq!(
        stdout.lines().last(),
        Some("all 33 checks passed"),
        "{stdout}"
    );
}
