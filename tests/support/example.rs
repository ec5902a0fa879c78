//! The examples' binaries (`rpc`, `echo_client`, `ingest`, `kv`,
//! `proxy_by_name`, `line_counter`), for tests that run them as processes.
//!
//! Cargo builds examples for `cargo test` but not for a targeted
//! `cargo test --test NAME`, so the first call builds it (with the cargo
//! that builds the tests, in the same profile and target directory: a
//! no-op when it is up to date). Declare it with
//! `#[path = "support/example.rs"] mod example;`.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Path of the built `rpc` example, built on the first call.
pub fn rpc_exe() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_example("rpc"))
}

/// Path of the built `echo_client` example, built on the first call.
pub fn echo_client_exe() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_example("echo_client"))
}

/// Path of the built `ingest` example, built on the first call.
pub fn ingest_exe() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_example("ingest"))
}

/// Path of the built `kv` example, built on the first call.
pub fn kv_exe() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_example("kv"))
}

/// Builds example `name` and returns the path of its binary.
fn build_example(name: &str) -> PathBuf {
    // This test binary is target/<profile dir>/deps/<name>-<hash>.
    let me = std::env::current_exe().expect("the test binary's path");
    let profile_dir = me
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => "dev",
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--quiet", "--example", name, "--profile", profile])
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null());
    // The variables cargo sets for the crate it runs (this test): a build
    // script that tracks one (ring tracks CARGO_MANIFEST_DIR) would see it
    // change, and every build after this one would recompile it.
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
            "CARGO_TARGET_TMPDIR",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_RUSTC_CURRENT_DIR",
        ]
        .iter()
        .any(|prefix| key_text.starts_with(prefix))
        {
            cargo.env_remove(&key);
        }
    }
    let output = cargo.output().expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let exe = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(exe.exists(), "no example binary at {}", exe.display());
    exe
}

/// Path of the built `proxy_by_name` example, built on the first call.
pub fn proxy_by_name_exe() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_example("proxy_by_name"))
}

/// Path of the built `line_counter` example, built on the first call.
pub fn line_counter_exe() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build_example("line_counter"))
}
