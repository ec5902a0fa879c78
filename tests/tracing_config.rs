//! A bad OTLP endpoint is a configuration error (exit 2, one plain line)
//! that names where it came from: `--otlp-endpoint`, `SYNCNET_OTLP_ENDPOINT`,
//! the `--config` file's `otlp_endpoint`, or `OTEL_EXPORTER_OTLP_ENDPOINT`.
//! A base URL with a trailing slash or a path is accepted.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::process::Command;

use binary::{Binary, Finished, TempFile, run, serve_command};

/// The endpoints that are not OTLP/HTTP base URLs.
const BAD: [&str; 7] = [
    "notaurl",
    "ftp://x",
    "http://",
    "https:///v1",
    "http://a b:4318",
    "http://[::1:4318",
    "http://c:4318/?x=1",
];

/// Expects exit code 2 and a first line `syncnet: error: …` naming `name`
/// and quoting `value` (clap's usage errors, for a flag, add a usage hint).
fn expect_named(out: &Finished, name: &str, value: &str) {
    assert_eq!(out.code(), 2, "{name}={value:?}: {out:?}");
    if !name.starts_with("--") {
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    assert!(
        out.stderr.starts_with("syncnet: error: ") || out.stderr.starts_with("error: "),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(name),
        "{name} not named: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(value),
        "{value:?} not quoted: {}",
        out.stderr
    );
}

/// `syncnet serve` with JSON logs: a configuration error is still one
/// plain line.
fn serve() -> Command {
    serve_command()
}

#[test]
fn a_bad_endpoint_flag_is_named() {
    for value in BAD.iter().chain(&[""]) {
        let mut cmd = serve();
        cmd.args(["--otlp-endpoint", value]);
        let out = run(cmd, b"");
        // clap quotes the value; an empty one is `''`.
        expect_named(&out, "--otlp-endpoint", value);
    }
}

#[test]
fn a_bad_endpoint_from_the_environment_names_the_variable() {
    for var in ["SYNCNET_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"] {
        for value in BAD {
            let mut cmd = serve();
            cmd.env(var, value);
            let out = run(cmd, b"");
            expect_named(&out, var, value);
        }
    }
}

#[test]
fn a_bad_endpoint_in_the_config_file_names_the_key() {
    let file = TempFile::new(".toml", "otlp_endpoint = \"ftp://collector\"\n");
    let mut cmd = serve();
    cmd.arg("--config").arg(file.path());
    let out = run(cmd, b"");
    expect_named(&out, "otlp_endpoint", "ftp://collector");
    assert!(
        out.stderr.contains(&*file.path().to_string_lossy()),
        "{}",
        out.stderr
    );
}

#[test]
fn a_base_url_with_a_slash_or_a_path_is_accepted() {
    for value in ["http://127.0.0.1:9/", "http://127.0.0.1:9/otel/base"] {
        let mut cmd = serve();
        cmd.args(["--otlp-endpoint", value]);
        let server = Binary::start(cmd);
        assert!(server.listen.port() != 0, "{}", server.startup);
    }
}
