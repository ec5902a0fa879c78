//! The binary's command line: exit codes and messages for bad usage, and the precedence command line > environment > file > default.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::net::TcpListener;

use binary::{Binary, Finished, TempFile, command, read_retrying, run, serve_command};
use support::{connect, metric, wait_until};

/// Runs `syncnet serve` with the test flags plus `extra`, expecting it to fail.
fn serve_fails(extra: &[&str]) -> Finished {
    let mut cmd = serve_command();
    cmd.args(extra);
    run(cmd, b"")
}

#[test]
fn a_workers_value_that_is_not_a_number_is_a_usage_error_naming_the_flag() {
    let out = serve_fails(&["--workers", "abc"]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("--workers"), "{}", out.stderr);
}

#[test]
fn a_bad_value_from_the_environment_names_the_variable() {
    for (subcommand, var, value) in [
        ("serve", "SYNCNET_WORKERS", "abc"),
        ("serve", "SYNCNET_IDLE_TIMEOUT", "soon"),
        ("proxy", "SYNCNET_CONNECT_TIMEOUT", "soon"),
    ] {
        let mut cmd = command();
        cmd.args([subcommand, "--listen", "127.0.0.1:0", "--admin", "off"]);
        if subcommand == "proxy" {
            cmd.args(["--upstream", "127.0.0.1:1"]);
        }
        cmd.env(var, value);
        let out = run(cmd, b"");
        assert_eq!(out.code(), 2, "{var}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.starts_with("syncnet: error: "), "{}", out.stderr);
        assert!(out.stderr.contains(var), "{var} not named: {}", out.stderr);
        assert!(out.stderr.contains(value), "{}", out.stderr);
    }
    // The same variable with the flag on the command line: the flag wins and
    // a bad flag value is clap's usage error naming the flag.
    let mut cmd = serve_command();
    cmd.args(["--workers", "x"]).env("SYNCNET_WORKERS", "abc");
    let out = run(cmd, b"");
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("'x' for '--workers"), "{}", out.stderr);
    assert!(!out.stderr.contains("SYNCNET_WORKERS"), "{}", out.stderr);
}

#[test]
fn a_value_from_the_environment_that_is_not_utf8_names_the_variable() {
    use std::os::unix::ffi::OsStrExt;
    let bytes = std::ffi::OsStr::from_bytes(b"http://collector\xff:4318");
    for var in ["SYNCNET_OTLP_ENDPOINT", "SYNCNET_LISTEN"] {
        let mut cmd = command();
        // A path may hold such bytes: not the culprit.
        cmd.args(["serve", "--admin", "off"])
            .env("SYNCNET_TLS_CLIENT_CA", bytes)
            .env(var, bytes);
        let out = run(cmd, b"");
        assert_eq!(out.code(), 2, "{var}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.starts_with("syncnet: error: "), "{}", out.stderr);
        assert!(out.stderr.contains(var), "{var} not named: {}", out.stderr);
        assert!(out.stderr.contains("UTF-8"), "{}", out.stderr);
    }
}

#[test]
fn zero_workers_is_a_usage_error_naming_the_flag() {
    let out = serve_fails(&["--workers", "0"]); // with --log-format json
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("--workers"), "{}", out.stderr);
    // One plain line, whatever the log format: not a JSON log line.
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("syncnet: error: "), "{}", out.stderr);
}

#[test]
fn huge_workers_or_queue_are_configuration_errors_naming_the_flag_and_the_bound() {
    for (flag, args) in [
        (
            "--workers",
            ["--workers", "18446744073709551615", "--queue", "1"],
        ),
        ("--queue", ["--queue", "1000000000000", "--workers", "4"]),
        ("--workers", ["--workers", "1000001", "--queue", "1"]),
    ] {
        let out = serve_fails(&args);
        assert_eq!(out.code(), 2, "{args:?}: {out:?}");
        assert!(out.stderr.contains(flag), "{}", out.stderr);
        assert!(
            out.stderr.contains("1000000"),
            "names the bound: {}",
            out.stderr
        );
    }
}

#[test]
fn socket_buffers_beyond_a_c_int_are_configuration_errors_naming_the_flag() {
    for (flag, value) in [
        ("--recv-buffer", "4294967295"),
        ("--send-buffer", "2147483648"),
    ] {
        let out = serve_fails(&[flag, value]);
        assert_eq!(out.code(), 2, "{flag} {value}: {out:?}");
        assert!(out.stderr.contains(flag), "{}", out.stderr);
        assert!(
            out.stderr.contains("2147483647"),
            "names the bound: {}",
            out.stderr
        );
    }
    // A negative number is a bad value of the flag, not an unknown flag.
    for (flag, value) in [
        ("--recv-buffer", "-1"),
        ("--workers", "-4"),
        ("--idle-timeout", "-5"),
    ] {
        let out = serve_fails(&[flag, value]);
        assert_eq!(out.code(), 2, "{flag} {value}: {out:?}");
        assert!(
            out.stderr.contains(&format!("'{value}' for '{flag}")),
            "{}",
            out.stderr
        );
    }
    // The largest int is taken (the kernel caps it at net.core.rmem_max).
    let server = Binary::serve(&["--recv-buffer", "2147483647"]);
    let mut conn = connect(server.listen);
    std::io::Write::write_all(&mut conn, b"ok").expect("write");
    let mut buf = [0u8; 2];
    std::io::Read::read_exact(&mut conn, &mut buf).expect("echo");
}

#[test]
fn an_address_in_use_is_a_runtime_failure_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port to occupy");
    let addr = taken.local_addr().expect("local addr").to_string();
    let mut cmd = command();
    cmd.args([
        "serve",
        "--listen",
        &addr,
        "--admin",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]);
    let out = run(cmd, b"");
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stderr.contains(&addr), "{addr} not in:\n{}", out.stderr);
}

#[test]
fn an_admin_port_in_use_says_it_is_the_admin_endpoint_and_how_to_move_it() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port to occupy");
    let addr = taken.local_addr().expect("local addr").to_string();
    let mut cmd = command();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--admin", &addr]);
    let out = run(cmd, b"");
    assert_eq!(out.code(), 1, "{out:?}");
    for part in [addr.as_str(), "admin endpoint", "--admin", "off"] {
        assert!(out.stderr.contains(part), "{part} not in:\n{}", out.stderr);
    }
}

#[test]
fn serve_flags_work_without_the_subcommand() {
    // An invalid value, so the process exits at once: the flag was taken as serve's.
    let mut cmd = command();
    cmd.args(["--workers", "0"]);
    let out = run(cmd, b"");
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("--workers"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("unexpected argument"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_value_in_the_config_file_names_the_line_and_the_key() {
    let file = TempFile::new(".toml", "backlog = 16\nworkers = \"lots\"\n");
    let out = serve_fails(&["--config", &file.path().to_string_lossy()]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.contains("line 2") && out.stderr.contains("workers"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_missing_config_file_is_a_usage_error_naming_the_path() {
    let path = "/nonexistent/dir/x.toml";
    let out = serve_fails(&["--config", path]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains(path), "{}", out.stderr);
}

#[test]
fn an_unknown_key_in_the_config_file_is_a_usage_error_naming_the_key() {
    let file = TempFile::new(".toml", "workers = 4\nwrokers_typo = 4\n");
    let out = serve_fails(&["--config", &file.path().to_string_lossy()]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stderr.contains("wrokers_typo"), "{}", out.stderr);
}

/// The `workers` setting a running server reports, in its start-up line
/// and as `syncnet_workers` on `/metrics` (checked to agree).
fn workers_of(server: &Binary) -> f64 {
    let from_line = server.startup["workers"]
        .as_f64()
        .unwrap_or_else(|| panic!("no workers field in {}", server.startup));
    let from_metrics = metric(&server.metrics(), "syncnet_workers");
    assert_eq!(
        from_line, from_metrics,
        "start-up line and /metrics disagree"
    );
    from_metrics
}

fn workers_file() -> TempFile {
    TempFile::new(".toml", "workers = 7\n")
}

#[test]
fn without_any_setting_workers_is_the_default() {
    let server = Binary::serve(&[]);
    assert_eq!(workers_of(&server), 512.0);
}

#[test]
fn the_config_file_sets_workers() {
    let file = workers_file();
    let server = Binary::serve(&["--config", &file.path().to_string_lossy()]);
    assert_eq!(workers_of(&server), 7.0);
}

#[test]
fn the_environment_wins_over_the_config_file() {
    let file = workers_file();
    let mut cmd = serve_command();
    cmd.args(["--config", &file.path().to_string_lossy()])
        .env("SYNCNET_WORKERS", "5");
    let server = Binary::start(cmd);
    assert_eq!(workers_of(&server), 5.0);
}

#[test]
fn the_command_line_wins_over_environment_and_file() {
    let file = workers_file();
    let mut cmd = serve_command();
    cmd.args(["--config", &file.path().to_string_lossy(), "--workers", "3"])
        .env("SYNCNET_WORKERS", "5");
    let server = Binary::start(cmd);
    assert_eq!(workers_of(&server), 3.0);
}

#[test]
fn a_duration_from_the_config_file_takes_effect() {
    let file = TempFile::new(".toml", "idle_timeout = \"200ms\"\n");
    let server = Binary::serve(&["--config", &file.path().to_string_lossy()]);
    let mut silent = connect(server.listen);
    let mut buf = [0u8; 16];
    // The client's read timeout is support::WAIT (10 s), far below the 5 min default.
    let n = read_retrying(&mut silent, &mut buf)
        .expect("the server closes the silent connection before the client's read timeout");
    assert_eq!(n, 0, "expected end of stream");
    wait_until("the close is counted as idle_timeout", || {
        metric(
            &server.metrics(),
            "syncnet_connections_closed_total{reason=\"idle_timeout\"}",
        ) == 1.0
    });
}

#[test]
fn version_prints_the_version() {
    let mut cmd = command();
    cmd.arg("--version");
    let out = run(cmd, b"");
    assert_eq!(out.code(), 0, "{out:?}");
    let text = out.stdout_text();
    assert!(
        text.contains(env!("CARGO_PKG_VERSION")),
        "version not in {text:?}"
    );
}

#[test]
fn help_lists_the_subcommands() {
    let mut cmd = command();
    cmd.arg("--help");
    let out = run(cmd, b"");
    assert_eq!(out.code(), 0, "{out:?}");
    let text = out.stdout_text();
    for sub in ["serve", "client"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(sub)),
            "subcommand {sub} not listed in:\n{text}"
        );
    }
}
