//! `syncnet::bench::run` against in-process echo servers: clean runs, wrong
//! echoes, open-loop pacing, hold mode, failed connects and the JSON keys.

mod support;

use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;
use support::{builder, spawn_echo, spawn_with};
use syncnet::Conn;
use syncnet::bench::{BenchOptions, BenchReport, Mode};

/// The keys of every `--json` report (`docs/reference.md`, "Flags",
/// `syncnet bench`); hold mode adds `established` and `establish_secs`.
const REPORT_KEYS: [&str; 12] = [
    "mode",
    "connections",
    "requests",
    "rps",
    "mbps",
    "p50_us",
    "p90_us",
    "p99_us",
    "p999_us",
    "max_us",
    "errors",
    "connect_errors",
];

/// Short runs: 200 ms warm-up, `secs_ms` measured.
fn options(addr: std::net::SocketAddr, mode: Mode, connections: usize, ms: u64) -> BenchOptions {
    BenchOptions {
        connect: addr.to_string(),
        connections,
        duration: Duration::from_millis(ms),
        mode,
        warmup: Duration::from_millis(200),
        ..BenchOptions::default()
    }
}

fn run(opts: &BenchOptions) -> BenchReport {
    syncnet::bench::run(opts).expect("bench runs")
}

/// An echo server that flips the lowest bit of the first byte of every
/// 100th read: wrong, but only now and then.
fn corrupting_handler(conn: &mut Conn) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut reads = 0u64;
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        reads += 1;
        if reads.is_multiple_of(100) {
            buf[0] ^= 1;
        }
        conn.write_all(&buf[..n])?;
    }
}

fn json_keys(report: &BenchReport) -> Vec<String> {
    let value: Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
    let mut keys: Vec<String> = value
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn sorted(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    keys.sort();
    keys
}

#[test]
fn clean_pingpong_run_counts_requests_and_no_errors() {
    let server = spawn_echo(builder());
    let report = run(&options(server.local_addr(), Mode::Pingpong, 4, 700));
    assert_eq!(report.errors, 0, "{report}");
    assert_eq!(report.connect_errors, 0, "{report}");
    assert!(report.requests > 0, "{report}");
    assert!(report.rps > 0.0 && report.mbps > 0.0, "{report}");
    assert!(
        report.p50_us > 0.0 && report.p50_us <= report.max_us,
        "{report}"
    );
    assert_eq!(report.exit_code(), 0);
    server.shutdown();
}

#[test]
fn pipelined_pingpong_run_is_clean() {
    let server = spawn_echo(builder());
    let opts = BenchOptions {
        pipeline: 8,
        size: Some(1000),
        ..options(server.local_addr(), Mode::Pingpong, 3, 700)
    };
    let report = run(&opts);
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.requests > 0, "{report}");
    server.shutdown();
}

#[test]
fn clean_bulk_run_measures_throughput_and_no_errors() {
    let server = spawn_echo(builder());
    let report = run(&options(server.local_addr(), Mode::Bulk, 2, 700));
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.mbps > 0.0, "{report}");
    assert!(report.requests > 0, "{report}");
    assert_eq!(report.exit_code(), 0);
    server.shutdown();
}

#[test]
fn a_corrupted_echo_counts_as_an_error_in_pingpong() {
    let server = spawn_with(builder(), corrupting_handler);
    let report = run(&options(server.local_addr(), Mode::Pingpong, 4, 500));
    assert!(report.errors > 0, "{report}");
    assert_eq!(report.exit_code(), 1);
    server.shutdown();
}

#[test]
fn a_corrupted_echo_counts_as_an_error_in_bulk() {
    let server = spawn_with(builder(), corrupting_handler);
    let report = run(&options(server.local_addr(), Mode::Bulk, 2, 500));
    assert!(report.errors > 0, "{report}");
    assert_eq!(report.exit_code(), 1);
    server.shutdown();
}

#[test]
fn a_pipelined_run_catches_a_corrupted_echo() {
    let server = spawn_with(builder(), corrupting_handler);
    let opts = BenchOptions {
        pipeline: 4,
        ..options(server.local_addr(), Mode::Pingpong, 2, 500)
    };
    assert!(run(&opts).errors > 0);
    server.shutdown();
}

#[test]
fn a_server_that_stops_echoing_half_way_is_an_error_in_bulk() {
    // Echoes the first 100 000 bytes, then reads and drops the rest.
    let server = spawn_with(builder(), |conn: &mut Conn| -> io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        let mut echoed = 0;
        loop {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            let keep = n.min(100_000 - echoed.min(100_000));
            conn.write_all(&buf[..keep])?;
            echoed += keep;
        }
    });
    let report = run(&options(server.local_addr(), Mode::Bulk, 1, 300));
    assert_eq!(report.errors, 1, "{report}");
    server.shutdown();
}

#[test]
fn open_loop_rate_sends_about_the_rate() {
    // Time is the subject here: 1000 requests/s for 2 s.
    let server = spawn_echo(builder());
    let opts = BenchOptions {
        rate: 1000,
        ..options(server.local_addr(), Mode::Pingpong, 10, 2000)
    };
    let report = run(&opts);
    assert_eq!(report.errors, 0, "{report}");
    assert!(
        (1500..=2500).contains(&report.requests),
        "expected about 2000 requests, {report}"
    );
    server.shutdown();
}

#[test]
fn open_loop_with_a_pipeline_is_clean() {
    let server = spawn_echo(builder());
    let opts = BenchOptions {
        rate: 400,
        pipeline: 4,
        ..options(server.local_addr(), Mode::Pingpong, 2, 500)
    };
    let report = run(&opts);
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.requests > 100, "{report}");
    server.shutdown();
}

#[test]
fn open_loop_catches_a_corrupted_echo() {
    let server = spawn_with(builder(), corrupting_handler);
    let opts = BenchOptions {
        rate: 2000,
        ..options(server.local_addr(), Mode::Pingpong, 2, 500)
    };
    assert!(run(&opts).errors > 0);
    server.shutdown();
}

#[test]
fn open_loop_latency_includes_the_wait_behind_a_stall() {
    // Time is the subject here: the server stalls 300 ms once; requests
    // meant to go out during the stall count their wait (no coordinated
    // omission), so far more than one request is slow.
    let server = spawn_with(builder(), |conn: &mut Conn| -> io::Result<()> {
        let mut buf = [0u8; 64];
        for reads in 1.. {
            let n = conn.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            if reads == 30 {
                // The stall (the behaviour under test).
                std::thread::sleep(Duration::from_millis(300));
            }
            conn.write_all(&buf[..n])?;
        }
        Ok(())
    });
    let opts = BenchOptions {
        rate: 100,
        warmup: Duration::from_millis(100),
        ..options(server.local_addr(), Mode::Pingpong, 1, 1000)
    };
    let report = run(&opts);
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.max_us >= 250_000.0, "{report}");
    assert!(report.p90_us >= 100_000.0, "{report}");
    server.shutdown();
}

#[test]
fn hold_mode_establishes_every_connection() {
    let server = spawn_echo(builder());
    let report = run(&options(server.local_addr(), Mode::Hold, 20, 300));
    assert_eq!(report.established, Some(20), "{report}");
    assert_eq!(report.requests, 20, "one final echo each: {report}");
    assert_eq!(report.errors, 0, "{report}");
    assert!(report.establish_secs.is_some_and(|s| s >= 0.0));
    server.shutdown();
}

#[test]
fn json_has_exactly_the_report_keys() {
    let server = spawn_echo(builder());
    let pingpong = run(&options(server.local_addr(), Mode::Pingpong, 2, 200));
    assert_eq!(json_keys(&pingpong), sorted(&REPORT_KEYS));
    let value: Value = serde_json::from_str(&pingpong.to_json()).unwrap();
    assert_eq!(value["mode"], "pingpong");
    assert_eq!(value["connections"], 2);
    assert_eq!(value["requests"], pingpong.requests);

    let hold = run(&options(server.local_addr(), Mode::Hold, 2, 100));
    let mut hold_keys = REPORT_KEYS.to_vec();
    hold_keys.extend(["established", "establish_secs"]);
    assert_eq!(json_keys(&hold), sorted(&hold_keys));
    server.shutdown();
}

#[test]
fn failed_connects_are_counted_not_fatal() {
    // A port that was free a moment ago: nothing listens there.
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let report = run(&options(addr, Mode::Pingpong, 3, 100));
    assert_eq!(report.connect_errors, 3, "{report}");
    assert_eq!(report.requests, 0);
    assert_eq!(report.exit_code(), 1);
    let text = report.to_string();
    assert!(
        text.contains("first connect error:") && text.to_lowercase().contains("refused"),
        "the summary says why: {text}"
    );
}

#[test]
fn summary_names_the_figures() {
    let server = spawn_echo(builder());
    let report = run(&options(server.local_addr(), Mode::Pingpong, 1, 200));
    let text = report.to_string();
    for word in [
        "requests",
        "requests/s",
        "MB/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "errors",
    ] {
        assert!(text.contains(word), "no {word} in:\n{text}");
    }
    server.shutdown();
}

#[test]
fn bad_options_are_usage_errors() {
    for opts in [
        BenchOptions {
            connections: 0,
            ..BenchOptions::default()
        },
        BenchOptions {
            pipeline: 0,
            ..BenchOptions::default()
        },
        BenchOptions {
            size: Some(0),
            ..BenchOptions::default()
        },
        BenchOptions {
            connect: "not an address".into(),
            ..BenchOptions::default()
        },
    ] {
        let e = syncnet::bench::run(&opts).expect_err("rejected");
        assert_eq!(e.exit_code(), 2, "{e}");
    }
    assert!("sideways".parse::<Mode>().is_err());
    assert_eq!("hold".parse::<Mode>(), Ok(Mode::Hold));
}

/// The binary: `syncnet bench --json` prints one JSON object with the report
/// keys and exits 0 on a clean run, 1 when an echo came back wrong
/// (`docs/reference.md`, "Exit codes").
#[test]
fn the_binary_prints_json_and_exits_1_on_errors() {
    let bench = |addr: std::net::SocketAddr| {
        std::process::Command::new(env!("CARGO_BIN_EXE_syncnet"))
            .args([
                "bench",
                "--connect",
                &addr.to_string(),
                "-c",
                "2",
                "-d",
                "500ms",
            ])
            .args(["--warmup", "0s", "--json"])
            .output()
            .expect("run syncnet bench")
    };
    let clean = spawn_echo(builder());
    let out = bench(clean.local_addr());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(report["mode"], "pingpong");
    assert_eq!(report["connections"], 2);
    assert_eq!(report["errors"], 0);
    assert!(report["requests"].as_u64().unwrap() > 0);

    let corrupting = spawn_with(builder(), corrupting_handler);
    let out = bench(corrupting.local_addr());
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert!(report["errors"].as_u64().unwrap() > 0);
}
