//! At start-up the binary raises its soft open-file limit to the hard limit,
//! and warns when even that is below `workers + queue + 64`.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::process::Command;

use binary::{Binary, SERVE_ARGS, clean_env, exe};

/// (soft, hard) "Max open files" of a process, from /proc/PID/limits.
fn open_files_limit(pid: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_string(), fields[4].to_string())
}

/// Starts the server under `sh -c '<ulimit command> && exec syncnet serve ...'`.
fn serve_with_ulimit(ulimit: &str, extra: &[&str]) -> Binary {
    let mut cmd = Command::new("sh");
    clean_env(&mut cmd);
    cmd.arg("-c")
        .arg(format!(r#"{ulimit} && exec "$0" "$@""#))
        .arg(exe())
        .args(SERVE_ARGS)
        .args(extra);
    Binary::start(cmd)
}

#[test]
fn the_soft_limit_is_raised_to_the_hard_limit() {
    let (_, hard) = open_files_limit("self");
    assert_ne!(hard, "256", "this test needs a hard limit above 256");
    let server = serve_with_ulimit("ulimit -S -n 256", &[]);
    let (soft_now, hard_now) = open_files_limit(&server.pid().to_string());
    assert_eq!(hard_now, hard);
    assert_eq!(
        soft_now, hard,
        "the soft limit was not raised to the hard limit"
    );
}

#[test]
fn a_hard_limit_below_what_the_workers_need_is_warned_about() {
    // workers 512 + queue 128 + 64 = 704 descriptors wanted; only 100 allowed.
    let mut server = serve_with_ulimit("ulimit -n 100", &[]);
    let warned = server.seen.iter().any(|line| {
        serde_json::from_str::<serde_json::Value>(line)
            .is_ok_and(|v| v["level"] == "warn" && v["fd_limit"] == 100 && v["wanted"] == 704)
    });
    assert!(
        warned,
        "no warning about the open-file limit in:\n{}",
        server.seen.join("\n")
    );
    // Enough room: no such warning.
    let quiet = serve_with_ulimit("ulimit -n 1000", &["--workers", "16", "--queue", "8"]);
    assert!(
        !quiet.seen.iter().any(|l| l.contains("open-file limit")),
        "{}",
        quiet.seen.join("\n")
    );
    let _ = server.is_running();
}
