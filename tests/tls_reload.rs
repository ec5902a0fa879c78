//! Certificates that rotate without a restart: `syncnet serve` with TLS
//! serves a certificate replaced on disk (written in place, or swapped in
//! with a Kubernetes-style `..data` symlink, client CA included) to new
//! handshakes within 5 s, read back as its serial number by the client;
//! open connections keep working; a broken replacement (not PEM, deleted, a
//! directory, a key that does not match) is logged at `error` once, counted,
//! and leaves the last good certificate in force.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use binary::Binary;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use support::pki::{Pair, Pki};
use support::{WAIT, metric};

/// The longest a rotation may take to reach new handshakes.
const ROTATION: Duration = Duration::from_secs(5);

const RELOADS_OK: &str = "syncnet_tls_reloads_total{result=\"ok\"}";
const RELOADS_ERROR: &str = "syncnet_tls_reloads_total{result=\"error\"}";
const EXPIRY: &str = "syncnet_tls_cert_expiry_timestamp_seconds";

/// The first certificate served, and the one that replaces it.
const FIRST: (u64, (i32, u8, u8)) = (1001, (2031, 1, 2));
const SECOND: (u64, (i32, u8, u8)) = (2002, (2032, 3, 4));

/// A TLS connection from the test.
type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A client config trusting the CA bundle `ca`, presenting `cert` if given.
fn client_config(ca: &Path, cert: Option<&Pair>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(ca).expect("read the CA") {
        roots
            .add(der.expect("a CA certificate"))
            .expect("a usable CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let config = match cert {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let chain = CertificateDer::pem_file_iter(&pair.cert)
                .expect("read the client certificate")
                .collect::<Result<Vec<_>, _>>()
                .expect("a client certificate");
            let key = PrivateKeyDer::from_pem_file(&pair.key).expect("the client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("a usable client certificate")
        }
    };
    Arc::new(config)
}

/// Connects to `addr` and completes a handshake (checking the name
/// `localhost`), then echoes one line to be sure the server serves it.
/// Returns the connection and the serial number of the certificate the
/// server presented, or what went wrong.
fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Result<(Tls, u64), String> {
    let tcp = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    let serial = tls
        .conn
        .peer_certificates()
        .and_then(<[_]>::first)
        .map(|der| serial_of(der))
        .ok_or("no server certificate")?;
    echo(&mut tls)?;
    Ok((tls, serial))
}

/// One line over `tls` and back.
fn echo(tls: &mut Tls) -> Result<(), String> {
    tls.write_all(b"ping\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut back = [0u8; 5];
    tls.read_exact(&mut back)
        .map_err(|e| format!("read the echo: {e}"))?;
    if &back != b"ping\n" {
        return Err(format!("echoed {back:?}"));
    }
    Ok(())
}

/// The serial number of a certificate (DER), as an integer.
fn serial_of(der: &[u8]) -> u64 {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("an X.509 certificate");
    cert.raw_serial()
        .iter()
        .fold(0u64, |serial, byte| (serial << 8) | u64::from(*byte))
}

/// Polls new handshakes until one is served the certificate `serial`,
/// failing when that takes longer than [`ROTATION`] after `since`.
fn expect_served(addr: SocketAddr, config: &Arc<ClientConfig>, serial: u64, since: Instant) {
    let mut last = String::new();
    // 100 ms apart, bounded by the deadline below.
    for _ in 0..1000 {
        match connect(addr, config) {
            Ok((_, got)) if got == serial => return,
            Ok((_, got)) => last = format!("served serial {got}"),
            Err(e) => last = e,
        }
        if since.elapsed() > ROTATION {
            panic!("serial {serial} not served within {ROTATION:?} of the change; last: {last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("serial {serial} never served; last: {last}");
}

/// The Unix time of midnight UTC on `date`.
fn unix(date: (i32, u8, u8)) -> f64 {
    rcgen::date_time_ymd(date.0, date.1, date.2).unix_timestamp() as f64
}

/// Replaces the contents of `to` with those of `from`, in place (same
/// inode), as cert-manager and certbot do.
fn copy_in_place(from: &Path, to: &Path) {
    let contents = std::fs::read(from).expect("read the new file");
    std::fs::write(to, contents).expect("write over the served file");
}

/// `syncnet serve` with TLS from copies of `leaf`'s files named
/// `NAME.crt` and `NAME.key` (the files the test then replaces), and the
/// paths of those copies.
fn serve_copies(
    pki: &Pki,
    leaf: &Pair,
    name: &str,
) -> (Binary, std::path::PathBuf, std::path::PathBuf) {
    let cert = pki
        .dir
        .write(&format!("{name}.crt"), std::fs::read(&leaf.cert).unwrap());
    let key = pki
        .dir
        .write(&format!("{name}.key"), std::fs::read(&leaf.key).unwrap());
    let server = Binary::serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    (server, cert, key)
}

#[test]
fn a_certificate_rewritten_in_place_is_served_and_a_broken_one_changes_nothing() {
    let pki = Pki::new();
    let first = pki.server_leaf("first", FIRST.0, FIRST.1);
    let second = pki.server_leaf("second", SECOND.0, SECOND.1);
    let (mut server, cert, key) = serve_copies(&pki, &first, "served");
    let config = client_config(&pki.ca, None);

    let (mut open, serial) = connect(server.listen, &config).expect("the first handshake");
    assert_eq!(serial, FIRST.0);
    let text = server.metrics();
    assert_eq!(metric(&text, EXPIRY), unix(FIRST.1));
    assert_eq!(metric(&text, RELOADS_OK), 0.0);

    // Rotation: the certificate, then its key, written over in place.
    let changed = Instant::now();
    copy_in_place(&second.cert, &cert);
    copy_in_place(&second.key, &key);
    expect_served(server.listen, &config, SECOND.0, changed);
    echo(&mut open).expect("a connection opened before the rotation keeps working");
    let text = server.metrics();
    assert_eq!(metric(&text, EXPIRY), unix(SECOND.1));
    assert!(metric(&text, RELOADS_OK) >= 1.0, "{text}");
    let line = server.expect_json("the reload line", |v| {
        v["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("TLS files reloaded"))
    });
    assert_eq!(line["level"], "info", "{line}");
    assert_eq!(line["not_after"], unix(SECOND.1) as i64, "{line}");

    // A broken certificate: logged at error, counted, the last good one stays.
    let errors = metric(&server.metrics(), RELOADS_ERROR);
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let line = server.expect_json("the reload error line", |v| {
        v["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("TLS files not reloaded"))
    });
    assert_eq!(line["level"], "error", "{line}");
    assert_eq!(line["path"], cert.to_str().unwrap(), "{line}");
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("no certificate")),
        "{line}"
    );
    let text = server.metrics();
    assert!(metric(&text, RELOADS_ERROR) > errors, "{text}");
    assert_eq!(metric(&text, EXPIRY), unix(SECOND.1));
    let (_, serial) = connect(server.listen, &config).expect("a handshake after the broken file");
    assert_eq!(serial, SECOND.0, "the last good certificate stays in force");
    echo(&mut open).expect("the first connection still works");
}

/// A Kubernetes secret volume: `NAME -> ..data/NAME`, `..data -> ..TIMESTAMP/`.
struct SecretVolume<'a> {
    dir: &'a Path,
}

impl<'a> SecretVolume<'a> {
    /// The volume with `files` (name, source file) in its first version.
    fn new(dir: &'a Path, files: &[(&str, &Path)]) -> SecretVolume<'a> {
        let volume = SecretVolume { dir };
        volume.version("..2026_01_01_00_00_00.1", files);
        std::os::unix::fs::symlink("..2026_01_01_00_00_00.1", dir.join("..data")).unwrap();
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).unwrap();
        }
        volume
    }

    /// Writes a version directory holding copies of `files`.
    fn version(&self, version: &str, files: &[(&str, &Path)]) {
        std::fs::create_dir(self.dir.join(version)).unwrap();
        for (name, from) in files {
            std::fs::copy(from, self.dir.join(version).join(name)).unwrap();
        }
    }

    /// Swaps in a new version as the kubelet does: a new directory, a new
    /// symlink renamed over `..data` (atomic), the old directory removed.
    fn swap(&self, version: &str, files: &[(&str, &Path)]) {
        let old = std::fs::read_link(self.dir.join("..data")).unwrap();
        self.version(version, files);
        std::os::unix::fs::symlink(version, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        std::fs::remove_dir_all(self.dir.join(old)).unwrap();
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_owned()
    }
}

#[test]
fn a_symlink_swap_rotates_the_certificate_and_the_client_ca() {
    let pki = Pki::new();
    let first = pki.server_leaf("first", FIRST.0, FIRST.1);
    let second = pki.server_leaf("second", SECOND.0, SECOND.1);
    let volume_dir = pki.dir.path().join("volume");
    std::fs::create_dir(&volume_dir).unwrap();
    let volume = SecretVolume::new(
        &volume_dir,
        &[
            ("tls.crt", &first.cert),
            ("tls.key", &first.key),
            ("ca.crt", &pki.ca),
        ],
    );
    let server = Binary::serve(&[
        "--tls-cert",
        &volume.path("tls.crt"),
        "--tls-key",
        &volume.path("tls.key"),
        "--tls-client-ca",
        &volume.path("ca.crt"),
    ]);
    // `allowed` is signed by the CA trusted first, `stranger` by the other.
    let allowed = client_config(&pki.ca, Some(&pki.allowed));
    let stranger = client_config(&pki.ca, Some(&pki.stranger));

    let (mut open, serial) = connect(server.listen, &allowed).expect("the first handshake");
    assert_eq!(serial, FIRST.0);
    assert!(
        connect(server.listen, &stranger).is_err(),
        "a client from the other CA is refused before the swap"
    );

    let changed = Instant::now();
    volume.swap(
        "..2026_02_01_00_00_00.2",
        &[
            ("tls.crt", &second.cert),
            ("tls.key", &second.key),
            ("ca.crt", &pki.other_ca),
        ],
    );
    expect_served(server.listen, &stranger, SECOND.0, changed);
    assert!(
        connect(server.listen, &allowed).is_err(),
        "the CA swapped out no longer lets its clients in"
    );
    echo(&mut open).expect("a connection opened before the swap keeps working");
    let text = server.metrics();
    assert_eq!(metric(&text, EXPIRY), unix(SECOND.1));
    assert_eq!(
        metric(&text, RELOADS_ERROR),
        0.0,
        "a swap is atomic: {text}"
    );
    assert!(metric(&text, RELOADS_OK) >= 1.0, "{text}");
}

/// The threads of this process whose name starts with `prefix` (Linux
/// keeps the first 15 bytes of a thread's name).
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("list this process's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
fn the_reload_thread_ends_with_the_server() {
    let pki = Pki::new();
    let settings = syncnet::TlsSettings {
        cert: pki.server.cert.clone(),
        key: pki.server.key.clone(),
        ..syncnet::TlsSettings::default()
    };
    // The other tests of this file run the binary: these threads are ours.
    let watcher = "syncnet-tls-rel";
    assert_eq!(threads_named(watcher), 0);
    let server = support::spawn_echo(support::builder().tls(settings));
    // A thread names itself once it runs, and leaves the list just after
    // it is joined: both are polled for.
    support::wait_until("one watcher per TLS listener", || {
        threads_named(watcher) == 1
    });
    server.shutdown();
    support::wait_until("the shutdown stopped the watcher", || {
        threads_named(watcher) == 0
    });
}

/// How many "not reloaded" error lines the server wrote so far.
fn reload_errors(server: &mut Binary) -> usize {
    server.drain_lines(Duration::from_millis(50));
    server
        .seen
        .iter()
        .filter(|l| l.contains("TLS files not reloaded"))
        .count()
}

#[test]
fn a_deleted_file_a_directory_or_a_mismatched_key_is_one_error_each_and_the_old_stays() {
    let pki = Pki::new();
    let first = pki.server_leaf("first", FIRST.0, FIRST.1);
    let second = pki.server_leaf("second", SECOND.0, SECOND.1);
    let (mut server, cert, key) = serve_copies(&pki, &first, "kept");
    let config = client_config(&pki.ca, None);
    // Each broken state is looked at every second: one error line for it,
    // however long it lasts (here over two checks), and the first
    // certificate stays in force.
    let expect_one_error = |server: &mut Binary, errors: usize, what: &str| {
        let line = server.expect_json(what, |v| {
            v["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("TLS files not reloaded"))
        });
        assert_eq!(line["level"], "error", "{line}");
        server.drain_lines(Duration::from_millis(2500));
        assert_eq!(reload_errors(server), errors, "{what}: {:#?}", server.seen);
        let (_, serial) = connect(server.listen, &config).expect("a handshake");
        assert_eq!(serial, FIRST.0, "{what}: the first certificate stays");
        line
    };
    std::fs::remove_file(&cert).unwrap();
    let line = expect_one_error(&mut server, 1, "the deleted certificate");
    assert_eq!(line["path"], cert.to_str().unwrap(), "{line}");
    std::fs::create_dir(&cert).unwrap();
    expect_one_error(&mut server, 2, "a directory for the certificate");
    std::fs::remove_dir(&cert).unwrap();
    // Renamed into place: never seen half written.
    let new = pki
        .dir
        .write("kept.crt.new", std::fs::read(&second.cert).unwrap());
    std::fs::rename(&new, &cert).unwrap();
    let line = expect_one_error(&mut server, 3, "a key that does not match");
    assert!(
        line["error"].as_str().is_some_and(|e| e.contains("match")),
        "{line}"
    );
    assert_eq!(metric(&server.metrics(), RELOADS_ERROR), 3.0);
    // The matching key lands: the second certificate is served.
    let changed = Instant::now();
    copy_in_place(&second.key, &key);
    expect_served(server.listen, &config, SECOND.0, changed);
}
