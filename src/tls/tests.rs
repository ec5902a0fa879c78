//! Unit tests of the TLS module: configuration errors, handshakes both ways,
//! mTLS and handshake failures. The certificates come from the test PKI the
//! integration tests use too (`tests/support/pki.rs`).

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, ProtocolVersion, ServerConfig, SideData,
    StreamOwned, SupportedProtocolVersion,
};

use super::client::client_config_for;
use super::handshake::HandshakeError;
use super::names::client_names;
use super::server::server_config;
use super::settings::TlsConfigError;
use super::{
    ClientTls, TlsSettings, accept, client_config, connect, name_allowed, tls_flush, tls_read,
    tls_write,
};

#[path = "../../tests/support/pki.rs"]
mod pki;

use pki::{Pair, Pki, new_ca, new_leaf};

/// Bounds every blocking call in these tests, so a bug fails instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

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
            allow_names: allow.iter().map(|s| (*s).to_owned()).collect(),
            ..self.server_settings()
        }
    }

    /// A client trusting `ca`, presenting `cert` when given.
    fn client_settings(&self, cert: Option<&Pair>) -> ClientTls {
        ClientTls {
            ca: Some(self.ca.clone()),
            cert: cert.map(|p| p.cert.clone()),
            key: cert.map(|p| p.key.clone()),
            server_name: None,
        }
    }
}

/// The message of the error `server_config` gives for `settings`.
fn server_error(settings: &TlsSettings) -> String {
    server_config(settings).unwrap_err().to_string()
}

/// The message of the error `client_config` gives for `settings`.
fn client_error(settings: &ClientTls) -> String {
    client_config(settings).unwrap_err().to_string()
}

/// Panics unless `message` contains every one of `expected`.
fn assert_names(message: &str, expected: &[&str]) {
    for part in expected {
        assert!(
            message.contains(part),
            "{message:?} should mention {part:?}"
        );
    }
}

/// Runs `serve` on the next connection to a fresh loopback listener, in
/// a thread; its result arrives on the channel.
fn serve<T: Send + 'static>(
    serve: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> (SocketAddr, mpsc::Receiver<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        let _ = tx.send(serve(tcp));
    });
    (addr, rx)
}

/// What the server thread reports, within twice [`IO_TIMEOUT`].
fn outcome<T>(rx: &mpsc::Receiver<T>) -> T {
    rx.recv_timeout(IO_TIMEOUT * 2)
        .expect("the server thread reports within the timeout")
}

/// A plain TCP connection to `addr`, its timeouts at [`IO_TIMEOUT`].
fn tcp_client(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp
}

/// A TLS connection to `addr` with `config`, checking the name `localhost`.
fn tls_client(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> Result<StreamOwned<ClientConnection, TcpStream>, HandshakeError> {
    connect(tcp_client(addr), config, "localhost", IO_TIMEOUT)
}

/// Reads until `n` bytes or end of input.
fn read_n<C, S>(conn: &mut C, tcp: &TcpStream, n: usize) -> io::Result<Vec<u8>>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    let mut data = vec![0; n];
    let mut got = 0;
    while got < n {
        match tls_read(conn, tcp, &mut data[got..])? {
            0 => break,
            k => got += k,
        }
    }
    data.truncate(got);
    Ok(data)
}

/// The negotiated version and what the server read after the echo.
type Echoed = Result<(ProtocolVersion, Vec<u8>), String>;

/// A server that completes the handshake, then echoes one message of
/// `len` bytes back in one `tls_write`, then reads to end of input.
/// Reports the negotiated version and what it read after the echo.
fn echo_server(config: Arc<ServerConfig>, len: usize) -> (SocketAddr, mpsc::Receiver<Echoed>) {
    serve(move |tcp| {
        let mut conn = accept(&tcp, config, IO_TIMEOUT).map_err(|e| e.to_string())?;
        let version = conn.protocol_version().ok_or("no version")?;
        let message = read_n(&mut conn, &tcp, len).map_err(|e| e.to_string())?;
        let n = tls_write(&mut conn, &tcp, &message).map_err(|e| e.to_string())?;
        assert_eq!(n, message.len(), "one tls_write sends it all");
        let rest = read_n(&mut conn, &tcp, 1 << 20).map_err(|e| e.to_string())?;
        Ok((version, rest))
    })
}

// ---- configuration errors ----------------------------------------

#[test]
fn valid_settings_build_server_and_client_configs() {
    let pki = Pki::new();
    server_config(&pki.server_settings()).unwrap();
    server_config(&pki.mtls_settings(&["allowed.example"])).unwrap();
    client_config(&pki.client_settings(None)).unwrap();
    client_config(&pki.client_settings(Some(&pki.allowed))).unwrap();
}

#[test]
fn missing_or_unreadable_files_name_the_flag_and_path() {
    let pki = Pki::new();
    let dangling = pki.dir.path().join("no-such-file.pem");
    let directory = pki.dir.path().to_path_buf();

    let mut settings = pki.server_settings();
    settings.cert = dangling.clone();
    let message = server_error(&settings);
    assert_names(&message, &["`tls.cert`", &dangling.display().to_string()]);

    let mut settings = pki.server_settings();
    settings.key = directory.clone();
    let message = server_error(&settings);
    assert_names(&message, &["`tls.key`", &directory.display().to_string()]);

    let mut settings = pki.mtls_settings(&[]);
    settings.client_ca = Some(dangling.clone());
    let message = server_error(&settings);
    assert_names(
        &message,
        &["`tls.client_ca`", &dangling.display().to_string()],
    );

    let mut client = pki.client_settings(None);
    client.ca = Some(directory.clone());
    let message = client_error(&client);
    assert_names(&message, &["`tls.ca`", &directory.display().to_string()]);
}

#[test]
fn a_file_without_the_expected_block_is_named() {
    let pki = Pki::new();
    let empty = pki.dir.write("empty.pem", "");

    let mut settings = pki.server_settings();
    settings.cert = pki.server.key.clone();
    let message = server_error(&settings);
    assert_names(&message, &["`tls.cert`", "no certificate", "server.key"]);

    let mut settings = pki.server_settings();
    settings.key = pki.server.cert.clone();
    let message = server_error(&settings);
    assert_names(&message, &["`tls.key`", "no private key", "server.crt"]);

    let mut settings = pki.server_settings();
    settings.key = empty.clone();
    assert_names(&server_error(&settings), &["`tls.key`", "no private key"]);
}

#[test]
fn malformed_pem_is_named() {
    let pki = Pki::new();
    let truncated = pki
        .dir
        .write("truncated.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    let mut settings = pki.server_settings();
    settings.cert = truncated;
    assert_names(
        &server_error(&settings),
        &["`tls.cert`", "truncated.crt", "PEM"],
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused() {
    let pki = Pki::new();
    let mut settings = pki.server_settings();
    settings.key = pki.allowed.key.clone();
    let error = server_config(&settings).unwrap_err();
    assert!(
        matches!(error, TlsConfigError::KeyMismatch { .. }),
        "{error:?}"
    );
    assert_eq!(error.flag(), "tls.key");
    assert_names(
        &error.to_string(),
        &[
            "`tls.key`",
            "allowed.key",
            "does not match",
            "`tls.cert`",
            "server.crt",
        ],
    );

    // A chain in the wrong order (CA first) is the same mistake.
    let mut chain = std::fs::read_to_string(&pki.ca).unwrap();
    chain.push_str(&std::fs::read_to_string(&pki.server.cert).unwrap());
    let mut settings = pki.server_settings();
    settings.cert = pki.dir.write("reversed.crt", chain);
    assert_names(
        &server_error(&settings),
        &["does not match", "reversed.crt"],
    );

    // The client certificate is checked the same way.
    let mut client = pki.client_settings(Some(&pki.allowed));
    client.key = Some(pki.other.key.clone());
    assert_names(
        &client_error(&client),
        &["`tls.key`", "other.key", "does not match"],
    );
}

#[test]
fn a_chain_with_the_right_order_loads() {
    let pki = Pki::new();
    let mut chain = std::fs::read_to_string(&pki.server.cert).unwrap();
    chain.push_str(&std::fs::read_to_string(&pki.ca).unwrap());
    let mut settings = pki.server_settings();
    settings.cert = pki.dir.write("chain.crt", chain);
    server_config(&settings).unwrap();
}

#[test]
fn a_ca_bundle_without_a_usable_certificate_is_named() {
    let pki = Pki::new();
    let mut settings = pki.mtls_settings(&[]);
    settings.client_ca = Some(pki.server.key.clone());
    let error = server_config(&settings).unwrap_err();
    assert!(
        matches!(error, TlsConfigError::NoUsableCa { .. }),
        "{error:?}"
    );
    assert_names(
        &error.to_string(),
        &["`tls.client_ca`", "server.key", "no CA certificate"],
    );

    // A well-formed PEM block whose contents are not a certificate.
    let garbage = pki.dir.write(
        "garbage-ca.crt",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    settings.client_ca = Some(garbage.clone());
    assert_names(
        &server_error(&settings),
        &[
            "`tls.client_ca`",
            "garbage-ca.crt",
            "no usable CA certificate",
            "1 found",
        ],
    );

    let mut client = pki.client_settings(None);
    client.ca = Some(garbage);
    assert_names(&client_error(&client), &["`tls.ca`", "garbage-ca.crt"]);
}

#[test]
fn allow_names_need_mtls() {
    let pki = Pki::new();
    let mut settings = pki.server_settings();
    settings.allow_names = vec!["allowed.example".into()];
    let error = server_config(&settings).unwrap_err();
    assert_eq!(error.flag(), "tls.allow_names");
    assert_names(
        &error.to_string(),
        &["`tls.allow_names`", "`tls.client_ca`"],
    );
}

#[test]
fn client_flag_combinations_are_checked() {
    let pki = Pki::new();
    let mut client = pki.client_settings(None);
    client.ca = None;
    assert_names(
        &client_error(&client),
        &["`tls`", "`tls.ca` FILE", "no trust store"],
    );

    let mut client = pki.client_settings(Some(&pki.allowed));
    client.key = None;
    assert_names(&client_error(&client), &["`tls.cert` needs `tls.key`"]);

    let mut client = pki.client_settings(Some(&pki.allowed));
    client.cert = None;
    assert_names(&client_error(&client), &["`tls.key` needs `tls.cert`"]);

    let mut client = pki.client_settings(None);
    client.server_name = Some("not a name!".into());
    let error = client_config(&client).unwrap_err();
    assert_eq!(error.flag(), "tls.server_name");
    assert_names(&error.to_string(), &["`tls.server_name`", "not a name!"]);

    client.server_name = Some("db.internal".into());
    assert_eq!(client.server_name("127.0.0.1"), "db.internal");
    client.server_name = None;
    assert_eq!(client.server_name("127.0.0.1"), "127.0.0.1");
}

/// Runs `openssl` with `args`; `None` (and a note) when it is missing,
/// unless CI=true.
fn openssl(args: &[&str]) -> Option<()> {
    match std::process::Command::new("openssl").args(args).output() {
        Ok(out) if out.status.success() => Some(()),
        Ok(out) => panic!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("openssl is needed for this test on CI: {e}")
        }
        Err(e) => {
            eprintln!("skipping: openssl not available ({e})");
            None
        }
    }
}

#[test]
fn pkcs1_rsa_and_sec1_ec_keys_load() {
    let pki = Pki::new();
    let path = |name: &str| pki.dir.path().join(name).display().to_string();
    let (rsa_key, rsa_cert) = (path("rsa.key"), path("rsa.crt"));
    let (ec_key, ec_cert) = (path("ec.key"), path("ec.crt"));
    if openssl(&["genrsa", "-traditional", "-out", &rsa_key, "2048"]).is_none() {
        return;
    }
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &ec_key,
    ]);
    for (key, cert, header) in [
        (&rsa_key, &rsa_cert, "BEGIN RSA PRIVATE KEY"),
        (&ec_key, &ec_cert, "BEGIN EC PRIVATE KEY"),
    ] {
        let key_pem = std::fs::read_to_string(key).unwrap();
        assert!(
            key_pem.contains(header),
            "{key} is not in the expected format"
        );
        openssl(&[
            "req",
            "-new",
            "-x509",
            "-key",
            key,
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
            "-out",
            cert,
        ]);
        let settings = TlsSettings {
            cert: cert.into(),
            key: key.into(),
            ..TlsSettings::default()
        };
        server_config(&settings).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    // A PKCS#1 key is still checked against the certificate.
    let settings = TlsSettings {
        cert: ec_cert.into(),
        key: rsa_key.into(),
        ..TlsSettings::default()
    };
    assert!(matches!(
        server_config(&settings),
        Err(TlsConfigError::KeyMismatch { .. })
    ));
}

// ---- names ---------------------------------------------------------

#[test]
fn client_names_are_the_dns_sans_or_else_the_common_name() {
    let (_, ca) = new_ca("names CA");
    let (pem, _) = new_leaf(
        &ca,
        &["a.example", "B.Example", "10.0.0.1"],
        "cn.example",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    assert_eq!(
        client_names(&der),
        ["a.example", "B.Example"],
        "with DNS SANs the CN does not count (RFC 6125)"
    );
    // Made by the shared fixture's own leaf maker, as the integration tests do.
    let pki = Pki::new();
    let der_of = |pair: &Pair| {
        let pem = std::fs::read(&pair.cert).unwrap();
        CertificateDer::from_pem_slice(&pem).unwrap()
    };
    let cn_only = pki.leaf("cn-only", &[], "cn.example");
    assert_eq!(
        client_names(&der_of(&cn_only)),
        ["cn.example"],
        "without SANs the CN counts"
    );
    let ip_only = pki.leaf("ip-only", &["10.0.0.1"], "cn.example");
    assert_eq!(
        client_names(&der_of(&ip_only)),
        ["cn.example"],
        "an IP SAN is not a DNS SAN"
    );
    assert!(client_names(b"not a certificate").is_empty());
}

// ---- handshakes ----------------------------------------------------

/// Echoes a 200 kB message over `versions`; expects `expected` negotiated
/// and close_notify to read as end of input after the data.
fn echo_both_ways(versions: &[&'static SupportedProtocolVersion], expected: ProtocolVersion) {
    let pki = Pki::new();
    let config = server_config(&pki.server_settings()).unwrap().config;
    // Larger than rustls' 64 KiB send buffer, so tls_write loops.
    let message: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (addr, rx) = echo_server(config, message.len());

    let client_config = client_config_for(&pki.client_settings(None), versions).unwrap();
    let mut client = tls_client(addr, client_config).unwrap();
    assert_eq!(client.conn.protocol_version(), Some(expected));
    assert_eq!(
        tls_write(&mut client.conn, &client.sock, &message).unwrap(),
        message.len()
    );
    let echoed = read_n(&mut client.conn, &client.sock, message.len()).unwrap();
    assert!(echoed == message, "the echo differs from what was sent");
    tls_write(&mut client.conn, &client.sock, b"bye").unwrap();
    client.conn.send_close_notify();
    tls_flush(&mut client.conn, &client.sock).unwrap();

    let (version, rest) = outcome(&rx).unwrap();
    assert_eq!(version, expected);
    assert_eq!(rest, b"bye", "close_notify is end of input after the data");
}

#[test]
fn echoes_both_ways_over_tls13() {
    echo_both_ways(&[&rustls::version::TLS13], ProtocolVersion::TLSv1_3);
}

#[test]
fn echoes_both_ways_over_tls12() {
    echo_both_ways(&[&rustls::version::TLS12], ProtocolVersion::TLSv1_2);
}

#[test]
fn accept_restores_the_socket_timeouts() {
    let pki = Pki::new();
    let config = server_config(&pki.server_settings()).unwrap().config;
    let (addr, rx) = serve(move |tcp| {
        tcp.set_read_timeout(Some(Duration::from_secs(7))).unwrap();
        tcp.set_write_timeout(None).unwrap();
        let handshake = accept(&tcp, config, IO_TIMEOUT).map(|_| ());
        (
            handshake.map_err(|e| e.to_string()),
            tcp.read_timeout().unwrap(),
            tcp.write_timeout().unwrap(),
        )
    });
    let client_config = client_config(&pki.client_settings(None)).unwrap();
    let _client = tls_client(addr, client_config).unwrap();
    let (handshake, read_timeout, write_timeout) = outcome(&rx);
    handshake.unwrap();
    assert_eq!(read_timeout, Some(Duration::from_secs(7)));
    assert_eq!(write_timeout, None);
}

#[test]
fn the_client_checks_the_server_name() {
    let pki = Pki::new();
    let config = server_config(&pki.server_settings()).unwrap().config;
    let client_config = client_config(&pki.client_settings(None)).unwrap();

    // The certificate is for localhost and 127.0.0.1.
    let (addr, rx) = serve({
        let config = Arc::clone(&config);
        move |tcp| accept(&tcp, config, IO_TIMEOUT).map(|_| ())
    });
    connect(
        tcp_client(addr),
        Arc::clone(&client_config),
        "127.0.0.1",
        IO_TIMEOUT,
    )
    .unwrap();
    outcome(&rx).unwrap();

    let (addr, rx) = serve({
        let config = Arc::clone(&config);
        move |tcp| accept(&tcp, config, IO_TIMEOUT).map(|_| ())
    });
    let error = connect(
        tcp_client(addr),
        Arc::clone(&client_config),
        "db.example",
        IO_TIMEOUT,
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            HandshakeError::Tls(rustls::Error::InvalidCertificate(_))
        ),
        "{error:?}"
    );
    assert!(outcome(&rx).is_err(), "the server sees the client's alert");

    // A client trusting another CA refuses the server.
    let mut untrusting = pki.client_settings(None);
    untrusting.ca = Some(pki.other_ca.clone());
    let (addr, rx) = serve(move |tcp| accept(&tcp, config, IO_TIMEOUT).map(|_| ()));
    let error = tls_client(addr, super::client_config(&untrusting).unwrap()).unwrap_err();
    assert!(
        matches!(
            error,
            HandshakeError::Tls(rustls::Error::InvalidCertificate(_))
        ),
        "{error:?}"
    );
    assert!(outcome(&rx).is_err(), "the server sees the client's alert");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = tcp_client(listener.local_addr().unwrap());
    let error = connect(tcp, client_config, "not a name!", IO_TIMEOUT).unwrap_err();
    assert!(matches!(error, HandshakeError::ServerName(_)), "{error:?}");
}

#[test]
fn a_client_closing_without_close_notify_reads_as_end_of_input() {
    let pki = Pki::new();
    let config = server_config(&pki.server_settings()).unwrap().config;
    for version in BOTH {
        // Echoes each chunk; reports everything read before end of input.
        let (addr, rx) = serve({
            let config = Arc::clone(&config);
            move |tcp| {
                let mut conn = accept(&tcp, config, IO_TIMEOUT).map_err(|e| e.to_string())?;
                let mut buf = [0u8; 64];
                let mut got = Vec::new();
                for _ in 0..100 {
                    let n = match tls_read(&mut conn, &tcp, &mut buf) {
                        Ok(0) => return Ok(got),
                        Ok(n) => n,
                        Err(e) => return Err(format!("{:?}: {e}", e.kind())),
                    };
                    got.extend_from_slice(&buf[..n]);
                    tls_write(&mut conn, &tcp, &buf[..n]).map_err(|e| e.to_string())?;
                }
                Err("no end of input".to_string())
            }
        });
        let client_config = client_config_for(&pki.client_settings(None), &[version]).unwrap();
        let mut client = tls_client(addr, client_config).unwrap();
        tls_write(&mut client.conn, &client.sock, b"last words").unwrap();
        // Reading the reply also consumes the TLS 1.3 session tickets:
        // a socket closed with unread data sends RST instead of FIN.
        let reply = read_n(&mut client.conn, &client.sock, 10).unwrap();
        assert_eq!(reply, b"last words");
        drop(client); // TCP FIN, no close_notify
        assert_eq!(outcome(&rx).unwrap(), b"last words", "{version:?}");
    }
}

#[test]
fn the_servers_read_side_shut_down_reads_as_end_of_input() {
    // What the drain does: shutdown(Read) on the server's socket.
    let pki = Pki::new();
    let config = server_config(&pki.server_settings()).unwrap().config;
    let (addr, rx) = serve(move |tcp| {
        let mut conn = accept(&tcp, config, IO_TIMEOUT).map_err(|e| e.to_string())?;
        tcp.shutdown(std::net::Shutdown::Read)
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 16];
        tls_read(&mut conn, &tcp, &mut buf).map_err(|e| e.to_string())
    });
    let client_config = client_config(&pki.client_settings(None)).unwrap();
    let _client = tls_client(addr, client_config).unwrap();
    assert_eq!(outcome(&rx), Ok(0));
}

// ---- mTLS ------------------------------------------------------------

/// A server that requires client certificates and reports the handshake
/// result and the name check.
fn mtls_server(
    pki: &Pki,
    allow: &[&str],
) -> (SocketAddr, mpsc::Receiver<Result<bool, HandshakeError>>) {
    let settings = pki.mtls_settings(allow);
    let config = server_config(&settings).unwrap().config;
    serve(move |tcp| {
        let mut conn = accept(&tcp, config, IO_TIMEOUT)?;
        let allowed = name_allowed(&conn, &settings.allow_names);
        // Reply so the client knows the server is done.
        let _ = tls_write(&mut conn, &tcp, b"ok");
        Ok(allowed)
    })
}

/// Connects with `cert` (or none) and returns whether the server's reply
/// came through.
fn mtls_client(
    pki: &Pki,
    addr: SocketAddr,
    cert: Option<&Pair>,
    version: &'static SupportedProtocolVersion,
) -> bool {
    let config = client_config_for(&pki.client_settings(cert), &[version]).unwrap();
    let Ok(mut client) = tls_client(addr, config) else {
        return false;
    };
    // With TLS 1.3 the client finishes first; a refusal comes as an alert.
    matches!(
        read_n(&mut client.conn, &client.sock, 2).as_deref(),
        Ok(b"ok")
    )
}

/// TLS 1.3 and 1.2, for the tests that run over both.
const BOTH: [&SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];

#[test]
fn mtls_checks_the_allowed_names() {
    let pki = Pki::new();
    for version in BOTH {
        let (addr, rx) = mtls_server(&pki, &["ALLOWED.example", "third.example"]);
        assert!(mtls_client(&pki, addr, Some(&pki.allowed), version));
        assert!(
            outcome(&rx).unwrap(),
            "allowed.example is allowed ({version:?})"
        );

        let (addr, rx) = mtls_server(&pki, &["allowed.example"]);
        assert!(mtls_client(&pki, addr, Some(&pki.other), version));
        assert!(
            !outcome(&rx).unwrap(),
            "other.example is refused ({version:?})"
        );

        let (addr, rx) = mtls_server(&pki, &[]);
        assert!(mtls_client(&pki, addr, Some(&pki.other), version));
        assert!(
            outcome(&rx).unwrap(),
            "no allow list: any name ({version:?})"
        );
    }
}

#[test]
fn mtls_without_a_client_certificate_fails() {
    let pki = Pki::new();
    for version in BOTH {
        let (addr, rx) = mtls_server(&pki, &[]);
        assert!(!mtls_client(&pki, addr, None, version));
        let error = outcome(&rx).unwrap_err();
        assert!(
            matches!(
                error,
                HandshakeError::Tls(rustls::Error::NoCertificatesPresented)
            ),
            "{version:?}: {error:?}"
        );
    }
}

#[test]
fn mtls_with_a_certificate_from_another_ca_fails() {
    let pki = Pki::new();
    for version in BOTH {
        let (addr, rx) = mtls_server(&pki, &["allowed.example"]);
        assert!(!mtls_client(&pki, addr, Some(&pki.stranger), version));
        let error = outcome(&rx).unwrap_err();
        assert!(
            matches!(
                error,
                HandshakeError::Tls(rustls::Error::InvalidCertificate(_))
            ),
            "{version:?}: {error:?}"
        );
    }
}

// ---- handshake failures --------------------------------------------

/// The result of `accept` and how long it took.
type Accepted = (Result<(), HandshakeError>, Duration);

/// A server running `accept` with `timeout` on the next connection; reports
/// the result and how long it took.
fn failing_accept(timeout: Duration) -> (SocketAddr, mpsc::Receiver<Accepted>) {
    let pki = Pki::new();
    let config = server_config(&pki.server_settings()).unwrap().config;
    serve(move |tcp| {
        let start = Instant::now();
        let result = accept(&tcp, config, timeout).map(|_| ());
        (result, start.elapsed())
    })
}

#[test]
fn a_plain_text_client_is_a_protocol_error() {
    let (addr, rx) = failing_accept(IO_TIMEOUT);
    let mut tcp = tcp_client(addr);
    tcp.write_all(b"hello\n").unwrap();
    let (result, _) = outcome(&rx);
    let error = result.unwrap_err();
    assert!(matches!(error, HandshakeError::Tls(_)), "{error:?}");
    assert!(!error.is_timeout());
    assert!(
        error.to_string().starts_with("TLS handshake failed"),
        "{error}"
    );
}

#[test]
fn a_silent_client_times_out() {
    let timeout = Duration::from_millis(300);
    let (addr, rx) = failing_accept(timeout);
    let _tcp = tcp_client(addr);
    let (result, elapsed) = outcome(&rx);
    let error = result.unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(error.to_string(), "TLS handshake timed out after 300ms");
    assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
    assert!(
        elapsed < IO_TIMEOUT,
        "the handshake timeout bounds accept: {elapsed:?}"
    );
}

#[test]
fn a_trickling_client_cannot_extend_the_deadline() {
    let timeout = Duration::from_millis(300);
    let (addr, rx) = failing_accept(timeout);
    let mut tcp = tcp_client(addr);
    // A ClientHello record header announcing 512 bytes, then one byte
    // every 20 ms: each read succeeds well within the timeout.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let start = Instant::now();
    let mut done = None;
    for _ in 0..250 {
        if let Ok(report) = rx.try_recv() {
            done = Some(report);
            break;
        }
        if tcp.write_all(&[0x01]).is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let (result, elapsed) = match done {
        Some(report) => report,
        None => outcome(&rx),
    };
    assert!(result.unwrap_err().is_timeout());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "the deadline held although the client kept sending ({elapsed:?})"
    );
}

#[test]
fn a_client_leaving_mid_handshake_is_reported() {
    let (addr, rx) = failing_accept(IO_TIMEOUT);
    drop(tcp_client(addr));
    let (result, _) = outcome(&rx);
    let error = result.unwrap_err();
    assert!(matches!(error, HandshakeError::Closed), "{error:?}");
    assert!(!error.is_timeout());
}

#[test]
fn a_zero_timeout_fails_at_once() {
    let (addr, rx) = failing_accept(Duration::ZERO);
    let _tcp = tcp_client(addr);
    let (result, _) = outcome(&rx);
    assert!(result.unwrap_err().is_timeout());
}

#[test]
fn tls_read_into_an_empty_buffer_does_not_block() {
    let pki = Pki::new();
    let config = server_config(&pki.server_settings()).unwrap().config;
    let (addr, rx) = serve(move |tcp| {
        let mut conn = accept(&tcp, config, IO_TIMEOUT).map_err(|e| e.to_string())?;
        tls_read(&mut conn, &tcp, &mut []).map_err(|e| e.to_string())
    });
    let client_config = client_config(&pki.client_settings(None)).unwrap();
    let client = tls_client(addr, client_config).unwrap();
    assert_eq!(outcome(&rx), Ok(0));
    drop(client);
}

/// Writes `contents` over the file at `path` (same inode) and sets its
/// modification time to `secs` after the epoch, so that the rewrite shows
/// even when it falls in the same clock tick as the previous write, with
/// the same length.
fn rewrite(path: &std::path::Path, contents: impl AsRef<[u8]>, secs: u64) {
    std::fs::write(path, contents).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn a_live_config_reloads_changed_files_and_keeps_the_last_good_one() {
    let pki = Pki::new();
    let first = pki.server_leaf("first", 11, (2031, 1, 2));
    let second = pki.server_leaf("second", 22, (2032, 3, 4));
    let cert = pki
        .dir
        .write("live.crt", std::fs::read(&first.cert).unwrap());
    let key = pki
        .dir
        .write("live.key", std::fs::read(&first.key).unwrap());
    let settings = TlsSettings {
        cert: cert.clone(),
        key: key.clone(),
        ..TlsSettings::default()
    };
    let metrics = prometheus::Registry::new();
    let live = super::LiveConfig::load(settings, super::TlsMetrics::register(&metrics)).unwrap();
    let gauge = |registry: &prometheus::Registry, line: &str| {
        use prometheus::Encoder;
        let mut text = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut text)
            .unwrap();
        String::from_utf8(text).unwrap().contains(line)
    };
    let expiry =
        |date: (i32, u8, u8)| rcgen::date_time_ymd(date.0, date.1, date.2).unix_timestamp();
    let served = live.current();
    assert!(!live.check(), "nothing changed yet");
    assert!(Arc::ptr_eq(&served, &live.current()));
    let line = format!(
        "syncnet_tls_cert_expiry_timestamp_seconds {}",
        expiry((2031, 1, 2))
    );
    assert!(gauge(&metrics, &line), "{line}");

    // Rewritten in place: a new configuration, the new expiry.
    rewrite(&cert, std::fs::read(&second.cert).unwrap(), 1);
    rewrite(&key, std::fs::read(&second.key).unwrap(), 1);
    assert!(live.check());
    let reloaded = live.current();
    assert!(!Arc::ptr_eq(&served, &reloaded));
    let line = format!(
        "syncnet_tls_cert_expiry_timestamp_seconds {}",
        expiry((2032, 3, 4))
    );
    assert!(gauge(&metrics, &line), "{line}");
    assert!(gauge(
        &metrics,
        "syncnet_tls_reloads_total{result=\"ok\"} 1"
    ));

    // A broken file changes nothing but the error count, once.
    rewrite(&cert, "not a certificate\n", 2);
    assert!(live.check());
    assert!(
        !live.check(),
        "a broken file is not retried until it changes"
    );
    assert!(Arc::ptr_eq(&reloaded, &live.current()));
    assert!(gauge(&metrics, &line), "{line}");
    assert!(gauge(
        &metrics,
        "syncnet_tls_reloads_total{result=\"error\"} 1"
    ));

    // A key that is gone is a change too, and an error.
    rewrite(&cert, std::fs::read(&second.cert).unwrap(), 3);
    std::fs::remove_file(&key).unwrap();
    assert!(live.check());
    assert!(Arc::ptr_eq(&reloaded, &live.current()));
    assert!(gauge(
        &metrics,
        "syncnet_tls_reloads_total{result=\"error\"} 2"
    ));
}
