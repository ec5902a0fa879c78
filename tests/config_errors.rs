//! Configuration errors of the hardening flags (TLS files, CIDRs, flags that need another flag, the handshake timeout): `syncnet serve` exits 2 with a message naming the file, value or flag at fault.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::path::Path;

use binary::{Finished, run, serve_command};
use support::pki::Pki;

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Runs `syncnet serve` with the test flags plus `extra`.
fn serve(extra: &[&str]) -> Finished {
    let mut cmd = serve_command();
    cmd.args(extra);
    run(cmd, b"")
}

/// Expects exit code 2 and every one of `names` in the message.
fn expect_config_error(out: &Finished, names: &[&str]) {
    assert_eq!(out.code(), 2, "{out:?}");
    for name in names {
        assert!(
            out.stderr.contains(name),
            "{name:?} is not named in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_missing_certificate_file_is_named() {
    let pki = Pki::new();
    let missing = "/nonexistent/syncnet/server.crt";
    let out = serve(&["--tls-cert", missing, "--tls-key", &text(&pki.server.key)]);
    expect_config_error(&out, &["--tls-cert", missing]);
}

#[test]
fn a_directory_as_the_key_file_is_named() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let out = serve(&[
        "--tls-cert",
        &text(&pki.server.cert),
        "--tls-key",
        &text(dir),
    ]);
    expect_config_error(&out, &["--tls-key", &text(dir)]);
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_named() {
    let pki = Pki::new();
    let out = serve(&[
        "--tls-cert",
        &text(&pki.server.cert),
        "--tls-key",
        &text(&pki.allowed.key),
    ]);
    expect_config_error(&out, &["--tls-key", &text(&pki.allowed.key)]);
}

#[test]
fn an_invalid_cidr_is_named() {
    let out = serve(&["--allow", "10.0.0.0/33"]);
    expect_config_error(&out, &["10.0.0.0/33"]);
    let out = serve(&["--deny", "10.0.0.300/8"]);
    expect_config_error(&out, &["10.0.0.300/8"]);
}

#[test]
fn a_tls_key_without_a_certificate_and_the_reverse_are_errors() {
    let pki = Pki::new();
    let out = serve(&["--tls-key", &text(&pki.server.key)]);
    expect_config_error(&out, &["--tls-key", "--tls-cert"]);
    let out = serve(&["--tls-cert", &text(&pki.server.cert)]);
    expect_config_error(&out, &["--tls-cert", "--tls-key"]);
}

#[test]
fn a_client_ca_without_tls_is_an_error() {
    let pki = Pki::new();
    let out = serve(&["--tls-client-ca", &text(&pki.ca)]);
    expect_config_error(&out, &["--tls-client-ca"]);
}

#[test]
fn an_allowed_name_without_a_client_ca_is_an_error() {
    let pki = Pki::new();
    let out = serve(&[
        "--tls-cert",
        &text(&pki.server.cert),
        "--tls-key",
        &text(&pki.server.key),
        "--tls-allow-name",
        "allowed.example",
    ]);
    expect_config_error(&out, &["--tls-allow-name", "--tls-client-ca"]);
    let out = serve(&["--tls-allow-name", "allowed.example"]);
    expect_config_error(&out, &["--tls-allow-name"]);
}

#[test]
fn a_trusted_proxy_without_the_proxy_protocol_is_an_error() {
    let out = serve(&["--trusted-proxy", "127.0.0.1/32"]);
    expect_config_error(&out, &["--trusted-proxy", "--proxy-protocol"]);
}

#[test]
fn a_zero_handshake_timeout_is_an_error() {
    let out = serve(&["--tls-handshake-timeout", "0"]);
    expect_config_error(&out, &["--tls-handshake-timeout"]);
}
