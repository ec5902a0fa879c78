//! systemd socket activation gone wrong: a `LISTEN_FDS` that is not a number
//! or absurdly large is a configuration error (exit 2) naming the variable; a
//! passed descriptor that is closed, a file, a UDP socket or a TCP socket that
//! is not listening is an error (exit 1) naming the descriptor and what it is —
//! never an abort, and never a server that starts and then accepts nothing.
//! `LISTEN_FDS=0`, or `LISTEN_PID` naming another process, binds `--listen` as
//! usual. A small Python helper (`tests/socket_activation/exec_with_fd3.py`)
//! puts the descriptor in place and sets `LISTEN_PID` to its own pid before
//! it execs the binary; skipped without `python3` (a failure when CI=true).

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use binary::{Binary, Finished, run};

fn python() -> Option<PathBuf> {
    support::outside::require_program("python3", "python3")
}

/// `syncnet serve` started through the helper with descriptor 3 being
/// `kind` and `LISTEN_FDS=listen_fds`.
fn activated(python: &Path, kind: &str, listen_fds: &str) -> Command {
    let helper =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/socket_activation/exec_with_fd3.py");
    let mut cmd = Command::new(python);
    binary::clean_env(&mut cmd);
    cmd.arg(helper)
        .arg(kind)
        .arg(binary::exe())
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "off"])
        .env("LISTEN_FDS", listen_fds);
    cmd
}

/// Expects `code`, one `syncnet: error:` line, and each of `names` in it.
fn expect_error(out: &Finished, code: i32, names: &[&str]) {
    assert_eq!(out.code(), code, "{out:?}");
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("error"))
        .unwrap_or_else(|| panic!("no error line: {}", out.stderr));
    for name in names {
        assert!(line.contains(name), "{name:?} is not named in: {line}");
    }
}

#[test]
fn a_listen_fds_that_is_not_a_number_names_the_variable() {
    let Some(python) = python() else { return };
    for value in ["abc", "-1", ""] {
        let out = run(activated(&python, "tcp-listening", value), b"");
        expect_error(&out, 2, &["LISTEN_FDS", &format!("`{value}`")]);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
}

#[test]
fn a_huge_listen_fds_is_a_configuration_error_not_an_abort() {
    let Some(python) = python() else { return };
    for value in ["2147483647", "18446744073709551615", "99999999999999999999"] {
        let out = run(activated(&python, "tcp-listening", value), b"");
        expect_error(&out, 2, &["LISTEN_FDS"]);
    }
}

#[test]
fn descriptors_that_do_not_start_at_3_are_refused() {
    let Some(python) = python() else { return };
    let mut cmd = activated(&python, "tcp-listening", "1");
    cmd.env("LISTEN_FDS_FIRST_FD", "10");
    let out = run(cmd, b"");
    expect_error(&out, 2, &["LISTEN_FDS_FIRST_FD", "`10`"]);
}

#[test]
fn a_passed_descriptor_that_is_not_a_listening_tcp_socket_is_named() {
    let Some(python) = python() else { return };
    for (kind, listen_fds, fd, why) in [
        ("none", "1", "descriptor 3", "not open"),
        ("file", "1", "descriptor 3", "not a socket"),
        ("udp", "1", "descriptor 3", "not a valid tcp socket"),
        ("tcp-not-listening", "1", "descriptor 3", "not listening"),
        // The service's socket is fine; the admin one was never passed.
        ("tcp-listening", "2", "descriptor 4", "not open"),
    ] {
        let out = run(activated(&python, kind, listen_fds), b"");
        expect_error(&out, 1, &[fd, why]);
    }
}

/// A server that came up on a port it bound itself echoes there.
fn expect_serving(server: &Binary) {
    assert_ne!(server.listen.port(), 0, "{}", server.startup);
    let mut conn = support::connect(server.listen);
    conn.write_all(b"ping").expect("write");
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf).expect("echo");
    assert_eq!(&buf, b"ping");
}

#[test]
fn zero_descriptors_or_another_processs_pid_bind_the_listen_address() {
    let Some(python) = python() else { return };
    // LISTEN_FDS=0 for us: nothing passed, --listen is bound.
    let mut cmd = activated(&python, "none", "0");
    cmd.arg("--log-format").arg("json");
    expect_serving(&Binary::start(cmd));
    // Variables meant for another process (pid 1) are left alone, even
    // with a bad descriptor 3 and a bad count.
    let mut cmd = binary::command();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--admin", "off"])
        .args(["--log-format", "json"])
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "abc");
    expect_serving(&Binary::start(cmd));
}
