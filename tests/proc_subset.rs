//! The `process_*` metrics under the systemd unit's `ProcSubset=pid`: the
//! binary runs in a mount namespace of its own (`unshare -m`) whose `/proc`
//! is mounted `subset=pid` (no `/proc/stat`, no `/proc/uptime`), and its
//! `process_start_time_seconds` is still the moment it started. Needs root
//! and `unshare` (util-linux): skipped without them (a failure when CI=true).

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use binary::{Binary, SERVE_ARGS};
use support::metric;

/// Mounts a `subset=pid` proc on /proc, checks that /proc/stat is gone, then
/// runs its arguments (`sh -c SCRIPT ARG0 ARGS...`).
const IN_PROC_SUBSET: &str =
    "mount -t proc -o subset=pid proc /proc && test ! -e /proc/stat && exec \"$0\" \"$@\"";

/// True when a mount namespace with a `subset=pid` /proc can be made here;
/// otherwise false after saying why (and a failure when CI=true).
fn can_mount_proc_subset() -> bool {
    let probe = Command::new("unshare")
        .args(["-m", "sh", "-c", IN_PROC_SUBSET, "true"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let why = match probe {
        Ok(out) if out.status.success() => return true,
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(e) => format!("unshare: {e}"),
    };
    assert!(
        !support::outside::in_ci(),
        "a mount namespace with /proc mounted subset=pid is required when CI=true (root, util-linux unshare, Linux 5.8+): {why}"
    );
    eprintln!("skipped: cannot mount /proc with subset=pid in a new mount namespace: {why}");
    false
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64()
}

#[test]
fn process_start_time_is_right_without_proc_stat() {
    if !can_mount_proc_subset() {
        return;
    }
    let before = unix_now();
    let mut cmd = Command::new("unshare");
    binary::clean_env(&mut cmd);
    cmd.args(["-m", "sh", "-c", IN_PROC_SUBSET, binary::exe()])
        .args(SERVE_ARGS);
    let server = Binary::start(cmd);
    let text = server.metrics();
    let after = unix_now();

    let start = metric(&text, "process_start_time_seconds");
    assert!(
        start > before - 1.0 && start < after + 1.0,
        "process_start_time_seconds {start}: the process started between {before} and {after}"
    );
    // The rest of the process metrics come from /proc/self, which stays.
    assert!(metric(&text, "process_resident_memory_bytes") > 0.0);
    assert!(metric(&text, "process_open_fds") > 0.0);
    assert!(metric(&text, "process_threads") > 0.0);
}
