//! Outside programs the tests run for real (HAProxy, Prometheus, Redis,
//! PostgreSQL, Node.js, openssl, systemd's tools…): found on the `PATH`, or
//! the test is skipped with a message saying what is missing — except under
//! `CI=true`, where a missing program is a failure (`.ci/run` installs them
//! all from Debian packages).

use std::path::PathBuf;

/// True when `CI=true`: every outside program must then be there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The executable `name` on the `PATH` (or in `/usr/sbin`,
/// `/usr/local/sbin`, where Debian puts daemons), if installed.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// The executable `name` (from the Debian package `package`), or `None`
/// after saying the test is skipped; a failure under `CI=true`.
pub fn require_program(name: &str, package: &str) -> Option<PathBuf> {
    let found = find_program(name);
    if found.is_none() {
        missing(&format!("`{name}`"), package);
    }
    found
}

/// Says that `what` (from the Debian package `package`) is missing and the
/// test is skipped; panics instead under `CI=true`.
pub fn missing(what: &str, package: &str) {
    assert!(
        !in_ci(),
        "{what} is required when CI=true (.ci/run installs the Debian package {package})"
    );
    eprintln!(
        "skipped: {what} is not installed (Debian package {package}; CI=true makes this a failure)"
    );
}
