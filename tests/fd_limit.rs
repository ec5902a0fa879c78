//! The binary out of file descriptors: the accept loop backs off instead of spinning, survives, and recovers once fds are free.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use binary::{Binary, SERVE_ARGS, clean_env, exe};
use support::{connect, echo_once, metric};

/// Clock ticks per second, as `/proc/<pid>/stat` counts CPU time.
fn clock_ticks() -> f64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("run getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK is a number")
}

/// User + system CPU seconds the process has used so far.
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    // Fields after the command name, which is in parentheses and may hold spaces:
    // index 0 is field 3 (state), so utime (14) is 11 and stime (15) is 12.
    let (_, rest) = stat.rsplit_once(')').expect("stat has a command name");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields[11].parse().expect("utime");
    let stime: f64 = fields[12].parse().expect("stime");
    (utime + stime) / ticks
}

#[test]
fn out_of_fds_the_server_backs_off_survives_and_recovers() {
    // sh sets the limit (soft and hard) and then becomes the server: same pid.
    let mut cmd = Command::new("sh");
    clean_env(&mut cmd);
    cmd.arg("-c")
        .arg(r#"ulimit -n 64 && exec "$0" "$@""#)
        .arg(exe())
        .args(SERVE_ARGS);
    let mut server = Binary::start(cmd);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid()))
        .expect("read /proc/pid/limits");
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("64")),
        "the limit was not applied:\n{limits}"
    );

    // More clients than the server has descriptors: the rest wait in the backlog.
    let clients: Vec<TcpStream> = (0..100).map(|_| connect(server.listen)).collect();
    server.expect_json("an accept failure of kind fd_limit", |v| {
        v["msg"] == "accept failed" && v["kind"] == "fd_limit"
    });

    // A test about time: let 2 s pass while the server is stuck at the limit.
    let ticks = clock_ticks();
    let before = cpu_seconds(server.pid(), ticks);
    std::thread::sleep(Duration::from_secs(2));
    let after = cpu_seconds(server.pid(), ticks);
    assert!(
        after - before < 0.5,
        "the server burned {:.2} s of CPU in 2 s at the fd limit",
        after - before
    );
    assert!(server.is_running(), "the server died at the fd limit");

    drop(clients);
    let mut fresh = connect(server.listen);
    assert_eq!(
        echo_once(&mut fresh, b"after the storm"),
        b"after the storm"
    );
    drop(fresh);

    let fd_errors = metric(
        &server.metrics(),
        "syncnet_accept_errors_total{kind=\"fd_limit\"}",
    );
    assert!(fd_errors > 0.0, "no fd_limit accept error counted");
    assert!(server.is_running());
}
