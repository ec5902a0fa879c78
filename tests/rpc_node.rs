//! Wire compatibility: a JSON-RPC client written in Node.js with only the
//! `net` module (`tests/node/rpc_client.js`, no npm packages) talks to the
//! `rpc` example and checks its `echo` and `add` replies (and a few errors)
//! byte for byte. Skipped when `node` is not installed, except under
//! `CI=true`, where that is a failure (`.ci/run` installs it).

mod support;

#[path = "support/binary.rs"]
mod binary;
#[path = "support/example.rs"]
mod example;

use std::path::Path;
use std::process::{Command, Stdio};

use binary::Binary;

/// True when `node --version` runs.
fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

#[test]
fn a_node_client_gets_byte_exact_replies() {
    if !node_available() {
        support::outside::missing("`node`", "nodejs");
        return;
    }
    let mut serve = Command::new(example::rpc_exe());
    binary::clean_env(&mut serve);
    serve.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
    let server = Binary::start(serve);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/rpc_client.js");
    let mut node = Command::new("node");
    node.arg(&script).arg(server.listen.to_string());
    let out = binary::run(node, b"");
    let stdout = out.stdout_text();
    assert_eq!(
        out.code(),
        0,
        "node client failed:\n{stdout}\nstderr:\n{}",
        out.stderr
    );
    let ok_lines = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert_eq!(ok_lines, 8, "{stdout}");
    assert_eq!(
        stdout.lines().last(),
        Some("all 8 replies matched"),
        "{stdout}"
    );
}
