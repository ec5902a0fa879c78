//! TLS on the listener (rustls): an intact 1 MiB echo, plain-text clients closed within the handshake timeout and counted, mTLS that serves only trusted and allowed client certificates, interop with `openssl s_client`, and `syncnet client --tls`.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::{Cursor, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::pki::{Pair, Pki};
use support::*;
use syncnet::{Client, ClientTls, ServerHandle, TlsSettings};

const TLS_REJECTED: &str = "syncnet_connections_rejected_total{reason=\"tls\"}";
const DENIED: &str = "syncnet_connections_rejected_total{reason=\"denied\"}";
const HANDSHAKE_FAILURES: &str = "syncnet_tls_handshake_failures_total";

/// The settings these tests build from the PKI's files.
impl Pki {
    /// The listener with the server certificate, without mTLS.
    fn server_settings(&self) -> TlsSettings {
        TlsSettings {
            cert: self.server.cert.clone(),
            key: self.server.key.clone(),
            ..TlsSettings::default()
        }
    }

    /// The listener with mTLS (clients from `ca`) and the allow list `allow`.
    fn mtls_settings(&self, allow: &[&str]) -> TlsSettings {
        TlsSettings {
            client_ca: Some(self.ca.clone()),
            allow_names: allow.iter().map(|s| s.to_string()).collect(),
            ..self.server_settings()
        }
    }

    /// Client settings trusting our CA, presenting `cert` if given.
    fn client(&self, cert: Option<&Pair>) -> ClientTls {
        ClientTls {
            ca: Some(self.ca.clone()),
            cert: cert.map(|p| p.cert.clone()),
            key: cert.map(|p| p.key.clone()),
            server_name: None,
        }
    }
}

fn addr_text(server: &ServerHandle) -> String {
    server.local_addr().to_string()
}

/// A TLS client, or the reason it could not connect.
fn tls_connect(addr: &str, tls: &ClientTls) -> Result<Client, syncnet::Error> {
    Client::connect_tls(addr, WAIT, tls)
}

/// One line over TLS and back.
fn expect_tls_echo(addr: &str, tls: &ClientTls) {
    let mut client = tls_connect(addr, tls).expect("TLS connect");
    client.write_all(b"hello\n").expect("write over TLS");
    let mut back = [0u8; 6];
    client
        .read_exact(&mut back)
        .expect("read the echo over TLS");
    assert_eq!(&back, b"hello\n");
}

/// Expects the server to refuse a TLS client: the handshake fails, or (with
/// TLS 1.3, where the client finishes before the server has checked its
/// certificate) the first read ends without an echo.
fn expect_tls_refused(addr: &str, tls: &ClientTls) {
    let Ok(mut client) = tls_connect(addr, tls) else {
        return;
    };
    let _ = client.write_all(b"hello\n");
    let mut buf = [0u8; 6];
    match client.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("expected a refusal, got {n} bytes back"),
        Err(e) => assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "neither an echo nor a refusal within {WAIT:?}"
        ),
    }
}

/// Reads `stream` until the server closes it (EOF or reset) within
/// `within`; returns what arrived before. Panics on a timeout.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server did not close the connection within {within:?}")
            }
            Err(_) => return got,
        }
    }
}

#[test]
fn a_mebibyte_echoes_intact_over_tls() {
    let pki = Pki::new();
    let server = spawn_echo(builder().tls(pki.server_settings()));
    let client = tls_connect(&addr_text(&server), &pki.client(None)).expect("TLS connect");
    assert!(client.is_tls());
    let data = random_bytes(1024 * 1024);

    // `relay` sends from one thread and receives on another, both at once.
    let (tx, rx) = mpsc::channel();
    let input = data.clone();
    thread::spawn(move || {
        let mut output = Vec::new();
        let result = client.relay(Cursor::new(input), &mut output);
        let _ = tx.send(result.map(|()| output));
    });
    let back = rx
        .recv_timeout(WAIT)
        .expect("the echo finished in time")
        .expect("relay over TLS");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echo differs from what was sent");
}

#[test]
fn plain_text_clients_are_closed_within_the_handshake_timeout_and_counted() {
    let pki = Pki::new();
    let timeout = Duration::from_millis(500);
    let server = spawn_echo(
        builder()
            .tls(pki.server_settings())
            .handshake_timeout(timeout),
    );
    let addr = server.local_addr();

    // Silent: the handshake timeout closes it (well before the 10 s default).
    let mut silent = connect(addr);
    let got = read_until_closed(&mut silent, Duration::from_secs(3));
    assert!(got.is_empty(), "a silent client got {got:?}");

    // Plain text: not a TLS record. At most a TLS alert (content type 21)
    // comes back, never the text.
    let mut talker = connect(addr);
    talker.write_all(b"hello\n").expect("write plain text");
    let got = read_until_closed(&mut talker, Duration::from_secs(3));
    assert!(
        got.is_empty() || got[0] == 21,
        "a plain-text client got something other than an alert: {got:?}"
    );

    wait_metric(&server, HANDSHAKE_FAILURES, 2.0);
    assert_eq!(metric(&metrics(&server), TLS_REJECTED), 2.0);

    // The server goes on serving TLS clients.
    expect_tls_echo(&addr_text(&server), &pki.client(None));
}

#[test]
fn mtls_refuses_clients_without_a_certificate_from_its_ca() {
    let pki = Pki::new();
    let server = spawn_echo(builder().tls(pki.mtls_settings(&[])));
    let addr = addr_text(&server);

    expect_tls_refused(&addr, &pki.client(None));
    wait_metric(&server, TLS_REJECTED, 1.0);

    expect_tls_refused(&addr, &pki.client(Some(&pki.stranger)));
    wait_metric(&server, TLS_REJECTED, 2.0);

    // Any name is fine without an allow list.
    expect_tls_echo(&addr, &pki.client(Some(&pki.other)));
    let text = metrics(&server);
    assert_eq!(metric(&text, TLS_REJECTED), 2.0);
    assert_eq!(metric(&text, HANDSHAKE_FAILURES), 2.0);
}

#[test]
fn mtls_with_an_allow_list_serves_only_the_names_on_it() {
    let pki = Pki::new();
    let server = spawn_echo(builder().tls(pki.mtls_settings(&["allowed.example"])));
    let addr = addr_text(&server);

    expect_tls_refused(&addr, &pki.client(Some(&pki.other)));
    wait_metric(&server, DENIED, 1.0);

    // The right name from the wrong CA fails the handshake itself.
    expect_tls_refused(&addr, &pki.client(Some(&pki.stranger)));
    wait_metric(&server, TLS_REJECTED, 1.0);

    expect_tls_echo(&addr, &pki.client(Some(&pki.allowed)));
    let text = metrics(&server);
    assert_eq!(metric(&text, DENIED), 1.0);
    assert_eq!(metric(&text, TLS_REJECTED), 1.0);
    assert_eq!(
        metric(&text, HANDSHAKE_FAILURES),
        1.0,
        "a name check is not a handshake failure"
    );
}

#[test]
fn a_certificate_with_dns_sans_is_not_allowed_by_its_common_name() {
    let pki = Pki::new();
    let server = spawn_echo(builder().tls(pki.mtls_settings(&["reporter.internal"])));
    let addr = addr_text(&server);
    // SAN intruder.internal, CN reporter.internal, from the trusted CA.
    let intruder = pki.leaf("intruder", &["intruder.internal"], "reporter.internal");
    expect_tls_refused(&addr, &pki.client(Some(&intruder)));
    wait_metric(&server, DENIED, 1.0);
    // A certificate without SANs is known by its CN.
    let reporter = pki.leaf("reporter", &[], "reporter.internal");
    expect_tls_echo(&addr, &pki.client(Some(&reporter)));
}

#[test]
fn a_handler_reads_the_client_certificate_names() {
    let pki = Pki::new();
    let server = spawn_with(
        builder().tls(pki.mtls_settings(&[])),
        |conn: &mut syncnet::Conn| -> std::io::Result<()> {
            let names = format!("{}\n", conn.peer_names().join(","));
            conn.write_all(names.as_bytes())?;
            conn.flush()
        },
    );
    let addr = addr_text(&server);
    for (pair, expected) in [
        (
            pki.leaf("two", &["a.internal", "b.internal"], "cn.internal"),
            "a.internal,b.internal\n",
        ),
        (pki.leaf("cn-only", &[], "cn.internal"), "cn.internal\n"),
    ] {
        let mut client = tls_connect(&addr, &pki.client(Some(&pair))).expect("TLS connect");
        let mut got = String::new();
        client.read_to_string(&mut got).expect("read the names");
        assert_eq!(got, expected);
    }
}

/// The path of `program` when it is installed; `None` (after saying why)
/// when it is not and CI is not set; a panic when it is not and CI=true.
fn require(program: &str) -> Option<PathBuf> {
    support::outside::require_program(program, "openssl")
}

/// A child process, killed and reaped on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn openssl_s_client_gets_its_line_back_over_tls_1_3() {
    let Some(openssl) = require("openssl") else {
        return;
    };
    let pki = Pki::new();
    let server = spawn_echo(builder().tls(pki.server_settings()));
    let mut child = Killed(
        Command::new(openssl)
            .arg("s_client")
            .arg("-connect")
            .arg(addr_text(&server))
            .arg("-CAfile")
            .arg(&pki.ca)
            .args(["-quiet", "-verify_return_error", "-tls1_3"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start openssl s_client"),
    );
    let stdout = child.0.stdout.take().expect("piped stdout");
    let mut stderr = child.0.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    // With -quiet, s_client ignores the end of its input: keep stdin open
    // until the line is back, then kill it.
    let mut stdin = child.0.stdin.take().expect("piped stdin");
    stdin
        .write_all(b"hello from openssl\n")
        .expect("write to s_client");
    let line = rx.recv_timeout(WAIT).unwrap_or_default();
    drop(child);
    let mut errors = String::new();
    let _ = stderr.read_to_string(&mut errors);
    assert_eq!(line, "hello from openssl\n", "s_client stderr:\n{errors}");
    drop(stdin);
}

#[test]
fn the_binary_client_speaks_tls() {
    let pki = Pki::new();
    let server = spawn_echo(builder().tls(pki.server_settings()));
    let mut cmd = binary::command();
    cmd.args(["client", "--tls", "--tls-ca"])
        .arg(&pki.ca)
        .args(["--connect", &addr_text(&server), "--message", "hi"]);
    let out = binary::run(cmd, b"");
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout_text(), "hi");
}

/// `syncnet bench` over TLS: a clean pingpong run verifies every echo and
/// counts no error; TLS with another mode is refused as a usage error.
#[test]
#[cfg(feature = "bench")]
fn bench_runs_pingpong_over_tls() {
    use syncnet::bench::{BenchOptions, Mode, run};
    let pki = Pki::new();
    let server = spawn_echo(builder().tls(pki.server_settings()));
    let opts = BenchOptions {
        connect: addr_text(&server),
        connections: 2,
        duration: Duration::from_millis(500),
        warmup: Duration::ZERO,
        tls: Some(pki.client(None)),
        ..BenchOptions::default()
    };
    let report = run(&opts).expect("bench runs");
    assert_eq!(report.errors, 0);
    assert_eq!(report.connect_errors, 0);
    assert!(report.requests > 0);
    let text = metrics(&server);
    assert_eq!(metric(&text, "syncnet_tls_handshake_failures_total"), 0.0);
    assert!(metric(&text, "syncnet_connections_accepted_total") >= 2.0);

    let bulk = BenchOptions {
        mode: Mode::Bulk,
        ..opts
    };
    let err = run(&bulk).expect_err("TLS bulk is not supported");
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--tls"), "{err}");
}
