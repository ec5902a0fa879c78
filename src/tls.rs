//! TLS (rustls, ring provider): configs from PEM files, mTLS name checks, a deadline-bounded handshake and read/write helpers.
//!
//! Server side (SPEC §1.1): [`server_config`] turns `--tls-cert`, `--tls-key`,
//! `--tls-client-ca` and `--tls-allow-name` into a [`ServerConfig`] for TLS
//! 1.2 and 1.3; the worker calls [`accept`] on each connection, then
//! [`name_allowed`] when an allow list is set, then moves bytes with
//! [`tls_read`] and [`tls_write`]. Client side (SPEC §1.4): [`client_config`]
//! and [`connect`].
//!
//! Everything is blocking I/O on a `&TcpStream`, so the socket's read and
//! write timeouts (and a `shutdown()` from another thread) work on a TLS
//! connection exactly as on a plain one: a timeout surfaces as the same
//! `WouldBlock`/`TimedOut` error `TcpStream` gives.
//!
//! Every error of [`TlsConfigError`] names the flag and the file at fault, so
//! the binary can report it as a configuration error (exit code 2).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    ClientConfig, ClientConnection, ConnectionCommon, RootCertStore, ServerConfig,
    ServerConnection, SideData, StreamOwned, SupportedProtocolVersion,
};
use x509_parser::extensions::GeneralName;

// The settings as the library names them (fields of `TlsSettings` and
// `ClientTls`, which callers pass as `tls`); messages quote them in
// backticks, and the binary turns them into its flags (`--tls-cert`).
const FLAG_CERT: &str = "tls.cert";
const FLAG_KEY: &str = "tls.key";
const FLAG_CLIENT_CA: &str = "tls.client_ca";
const FLAG_ALLOW_NAME: &str = "tls.allow_names";
const FLAG_CA: &str = "tls.ca";
const FLAG_TLS: &str = "tls";
const FLAG_SERVER_NAME: &str = "tls.server_name";

/// The protocol versions syncnet speaks, newest first.
const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The one crypto provider syncnet uses: *ring* (no OpenSSL, no aws-lc).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The listener's TLS flags (SPEC §1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `--tls-cert`: PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// `--tls-key`: PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
    /// `--tls-client-ca`: PEM CA bundle; when set, every client must present
    /// a certificate one of these CAs signed (mTLS).
    pub client_ca: Option<PathBuf>,
    /// `--tls-allow-name` (repeatable): with mTLS, the client certificate
    /// names that are served (DNS SAN or subject CN, ASCII case-insensitive);
    /// empty = any name.
    pub allow_names: Vec<String>,
}

/// The client's TLS flags (SPEC §1.4; `--tls` itself is the caller's switch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// `--tls-ca`: PEM CA bundle the server's certificate must chain to.
    /// Required: syncnet ships no trust store and reads no system one.
    pub ca: Option<PathBuf>,
    /// `--tls-cert`: client certificate chain, for mTLS (needs `key`).
    pub cert: Option<PathBuf>,
    /// `--tls-key`: the client certificate's private key (needs `cert`).
    pub key: Option<PathBuf>,
    /// `--tls-server-name`: the name the server's certificate must carry,
    /// instead of the host of `--connect`.
    pub server_name: Option<String>,
}

impl ClientTls {
    /// The name to check the server's certificate against: `--tls-server-name`
    /// when given, otherwise `host` (the host part of `--connect`, an IP
    /// address or a DNS name, without brackets or port).
    pub(crate) fn server_name<'a>(&'a self, host: &'a str) -> &'a str {
        self.server_name.as_deref().unwrap_or(host)
    }
}

/// A TLS setting that cannot work. The message names the setting and the file.
#[derive(Debug)]
pub(crate) enum TlsConfigError {
    /// The file is missing, is a directory, or cannot be read.
    Read {
        flag: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// The file is not valid PEM (e.g. a section without its END line).
    Pem {
        flag: &'static str,
        path: PathBuf,
        message: String,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    NoCertificate { flag: &'static str, path: PathBuf },
    /// The key file holds no (unencrypted) private key block.
    NoPrivateKey { flag: &'static str, path: PathBuf },
    /// The private key is not the one of the first certificate of the chain.
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// rustls refused the key or the certificate (unsupported key type,
    /// malformed certificate); `reason` says which and why.
    Invalid {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// A CA bundle in which no certificate can serve as a trust anchor.
    /// `rejected` counts the certificates found that could not be parsed.
    NoUsableCa {
        flag: &'static str,
        path: PathBuf,
        rejected: usize,
    },
    /// `flag` was given without a setting it requires (`needs`).
    Needs {
        flag: &'static str,
        needs: &'static str,
    },
    /// `--tls-server-name` is neither a DNS name nor an IP address.
    ServerName { name: String },
    /// rustls refused the configuration itself (not expected with the ring
    /// provider and TLS 1.2/1.3).
    Setup {
        flag: &'static str,
        error: rustls::Error,
    },
}

impl TlsConfigError {
    /// The setting at fault (`tls.cert`), for [`Error::Tls`](crate::Error::Tls).
    pub(crate) fn flag(&self) -> &'static str {
        match self {
            TlsConfigError::Read { flag, .. }
            | TlsConfigError::Pem { flag, .. }
            | TlsConfigError::NoCertificate { flag, .. }
            | TlsConfigError::NoPrivateKey { flag, .. }
            | TlsConfigError::Invalid { flag, .. }
            | TlsConfigError::NoUsableCa { flag, .. }
            | TlsConfigError::Needs { flag, .. }
            | TlsConfigError::Setup { flag, .. } => flag,
            TlsConfigError::KeyMismatch { .. } => FLAG_KEY,
            TlsConfigError::ServerName { .. } => FLAG_SERVER_NAME,
        }
    }
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Read { flag, path, source } => {
                write!(
                    f,
                    "`{flag}` {}: cannot read the file: {source}",
                    path.display()
                )
            }
            TlsConfigError::Pem {
                flag,
                path,
                message,
            } => write!(
                f,
                "`{flag}` {}: not a valid PEM file: {message}",
                path.display()
            ),
            TlsConfigError::NoCertificate { flag, path } => write!(
                f,
                "`{flag}` {}: no certificate in the file (expected a PEM \"BEGIN CERTIFICATE\" block)",
                path.display()
            ),
            TlsConfigError::NoPrivateKey { flag, path } => write!(
                f,
                "`{flag}` {}: no private key in the file (expected a PEM \"BEGIN PRIVATE KEY\", \
                 \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block; encrypted keys \
                 are not supported)",
                path.display()
            ),
            TlsConfigError::KeyMismatch { cert, key } => write!(
                f,
                "`{FLAG_KEY}` {}: the key does not match the certificate in `{FLAG_CERT}` {} \
                 (the first certificate in that file must be the one the key belongs to)",
                key.display(),
                cert.display()
            ),
            TlsConfigError::Invalid { flag, path, reason } => {
                write!(f, "`{flag}` {}: {reason}", path.display())
            }
            TlsConfigError::NoUsableCa {
                flag,
                path,
                rejected: 0,
            } => write!(
                f,
                "`{flag}` {}: no CA certificate in the file (expected PEM \"BEGIN CERTIFICATE\" blocks)",
                path.display()
            ),
            TlsConfigError::NoUsableCa {
                flag,
                path,
                rejected,
            } => write!(
                f,
                "`{flag}` {}: no usable CA certificate ({rejected} found, none could be parsed)",
                path.display()
            ),
            TlsConfigError::Needs { flag, needs } => write!(f, "`{flag}` needs {needs}"),
            TlsConfigError::ServerName { name } => write!(
                f,
                "`{FLAG_SERVER_NAME}` {name:?}: not a valid DNS name or IP address"
            ),
            TlsConfigError::Setup { flag, error } => {
                write!(f, "`{flag}`: TLS setup failed: {error}")
            }
        }
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsConfigError::Read { source, .. } => Some(source),
            TlsConfigError::Setup { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Builds the listener's config: TLS 1.3 and 1.2, the certificate chain and
/// key from `settings` (checked to belong together), and with
/// `client_ca` a verifier that *requires* a client certificate signed by one
/// of its CAs.
///
/// # Errors
/// A [`TlsConfigError`] naming the flag and file: unreadable file, no
/// certificate, no key, key not matching the certificate, a CA bundle with no
/// usable certificate, or `--tls-allow-name` without `--tls-client-ca` (the
/// names are those of client certificates, which only mTLS asks for).
pub(crate) fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsConfigError> {
    if !settings.allow_names.is_empty() && settings.client_ca.is_none() {
        return Err(TlsConfigError::Needs {
            flag: FLAG_ALLOW_NAME,
            needs: "`tls.client_ca` FILE (names are checked on client certificates, which only mTLS asks for)",
        });
    }
    let chain = load_certs(FLAG_CERT, &settings.cert)?;
    let key = load_key(FLAG_KEY, &settings.key)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(VERSIONS)
        .map_err(|error| TlsConfigError::Setup {
            flag: FLAG_CERT,
            error,
        })?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = load_roots(FLAG_CLIENT_CA, path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsConfigError::Invalid {
                    flag: FLAG_CLIENT_CA,
                    path: path.clone(),
                    reason: format!("unusable CA bundle: {e}"),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // `with_single_cert` compares the key's public half with the end-entity
    // certificate's (rustls `CertifiedKey::keys_match`); every ring key type
    // can produce its public key, so a mismatch is always caught here.
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| cert_key_error(e, &settings.cert, &settings.key))?;
    Ok(Arc::new(config))
}

/// Builds the client's config for TLS 1.3 and 1.2: the server must present a
/// certificate chaining to `--tls-ca`; with `--tls-cert` and `--tls-key` the
/// client presents that certificate (mTLS).
///
/// There is no default trust store (syncnet depends on none and reads no
/// system one), so `--tls-ca` is required.
///
/// # Errors
/// A [`TlsConfigError`] naming the flag and file, as for [`server_config`];
/// also for a missing `--tls-ca`, `--tls-cert` without `--tls-key` (or the
/// reverse), and a `--tls-server-name` that is not a DNS name or IP address.
pub(crate) fn client_config(settings: &ClientTls) -> Result<Arc<ClientConfig>, TlsConfigError> {
    client_config_for(settings, VERSIONS)
}

/// [`client_config`] limited to `versions` (tests force TLS 1.2 with it).
fn client_config_for(
    settings: &ClientTls,
    versions: &[&'static SupportedProtocolVersion],
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let Some(ca) = &settings.ca else {
        return Err(TlsConfigError::Needs {
            flag: FLAG_TLS,
            needs: "`tls.ca` FILE (syncnet ships no trust store)",
        });
    };
    if let Some(name) = &settings.server_name {
        ServerName::try_from(name.as_str())
            .map_err(|_| TlsConfigError::ServerName { name: name.clone() })?;
    }
    let roots = load_roots(FLAG_CA, ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|error| TlsConfigError::Setup {
            flag: FLAG_TLS,
            error,
        })?
        .with_root_certificates(roots);
    let config = match (&settings.cert, &settings.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = load_certs(FLAG_CERT, cert)?;
            let key_der = load_key(FLAG_KEY, key)?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| cert_key_error(e, cert, key))?
        }
        (Some(_), None) => {
            return Err(TlsConfigError::Needs {
                flag: FLAG_CERT,
                needs: "`tls.key` FILE",
            });
        }
        (None, Some(_)) => {
            return Err(TlsConfigError::Needs {
                flag: FLAG_KEY,
                needs: "`tls.cert` FILE",
            });
        }
    };
    Ok(Arc::new(config))
}

fn read_file(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        flag,
        path: path.to_owned(),
        source,
    })
}

fn pem_error(flag: &'static str, path: &Path, e: rustls::pki_types::pem::Error) -> TlsConfigError {
    TlsConfigError::Pem {
        flag,
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Every `CERTIFICATE` block of a PEM file, in order; other blocks are skipped.
fn load_certs(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read_file(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(flag, path, e))?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            flag,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block.
fn load_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read_file(flag, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsConfigError::NoPrivateKey {
            flag,
            path: path.to_owned(),
        },
        other => pem_error(flag, path, other),
    })
}

/// A CA bundle as trust anchors; certificates that cannot be parsed are
/// skipped with a warning, and a bundle left with none is an error.
fn load_roots(flag: &'static str, path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let certs = match load_certs(flag, path) {
        Err(TlsConfigError::NoCertificate { flag, path }) => {
            return Err(TlsConfigError::NoUsableCa {
                flag,
                path,
                rejected: 0,
            });
        }
        other => other?,
    };
    let mut roots = RootCertStore::empty();
    let (added, rejected) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsConfigError::NoUsableCa {
            flag,
            path: path.to_owned(),
            rejected,
        });
    }
    if rejected > 0 {
        log::warn!(
            "`{flag}` {}: skipped {rejected} certificate(s) that could not be parsed",
            path.display()
        );
    }
    Ok(roots)
}

/// Sorts rustls' verdict on a certificate chain and key into the file at fault.
fn cert_key_error(error: rustls::Error, cert: &Path, key: &Path) -> TlsConfigError {
    match error {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            TlsConfigError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            }
        }
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            TlsConfigError::Invalid {
                flag: FLAG_CERT,
                path: cert.to_owned(),
                reason: format!("unusable certificate: {error}"),
            }
        }
        other => TlsConfigError::Invalid {
            flag: FLAG_KEY,
            path: key.to_owned(),
            reason: format!("unusable private key: {other}"),
        },
    }
}

/// The names a certificate (DER) carries for `--tls-allow-name`: its DNS
/// subject alternative names, then its subject common name(s), as written.
/// IP-address and other SAN types are not names here. A certificate that
/// cannot be parsed has no names.
pub(crate) fn client_names(cert_der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(text) = cn.as_str() {
            names.push(text.to_owned());
        }
    }
    names
}

/// Whether the client of `conn` may be served under `--tls-allow-name`.
///
/// An empty `allow` list allows everyone. Otherwise the client's end-entity
/// certificate (already verified against `--tls-client-ca` by the
/// handshake) must carry a DNS SAN or a subject CN equal to one of `allow`,
/// compared ASCII case-insensitively (DNS names are case-insensitive);
/// there is no wildcard matching: a `*.example` SAN matches only the
/// allowed name `*.example`. A connection without a client certificate is
/// refused.
pub(crate) fn name_allowed(conn: &ServerConnection, allow: &[String]) -> bool {
    if allow.is_empty() {
        return true;
    }
    let Some(cert) = conn.peer_certificates().and_then(<[_]>::first) else {
        return false;
    };
    client_names(cert)
        .iter()
        .any(|name| allow.iter().any(|a| a.eq_ignore_ascii_case(name)))
}

/// Why a TLS handshake did not complete. Each is the `tls` reject reason;
/// the Display text is for the log line.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The handshake was not done within the timeout (a silent or slow peer).
    Timeout(Duration),
    /// The peer broke the protocol or failed authentication: not TLS at all,
    /// no acceptable version or cipher, no or an untrusted certificate, an
    /// alert from the peer.
    Tls(rustls::Error),
    /// The peer closed the connection before the handshake finished.
    Closed,
    /// The socket failed (connection reset, ...).
    Io(io::Error),
    /// Client only: the server name to verify is neither a DNS name nor an
    /// IP address.
    ServerName(String),
}

impl HandshakeError {
    /// Whether the handshake ran out of time, as opposed to failing.
    #[cfg(test)]
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, HandshakeError::Timeout(_))
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Timeout(after) => write!(f, "TLS handshake timed out after {after:?}"),
            HandshakeError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            HandshakeError::Closed => {
                write!(f, "TLS handshake failed: the peer closed the connection")
            }
            HandshakeError::Io(e) => write!(f, "TLS handshake failed: {e}"),
            HandshakeError::ServerName(name) => {
                write!(
                    f,
                    "TLS server name {name:?} is not a valid DNS name or IP address"
                )
            }
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeError::Tls(e) => Some(e),
            HandshakeError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Runs the server side of a TLS handshake on `stream`, with blocking I/O,
/// and returns the established connection. The whole handshake (including
/// sending the TLS 1.3 session tickets that follow it) must finish within
/// `timeout` (SPEC `--tls-handshake-timeout`, above 0): a peer trickling one
/// byte at a time does not extend it. A zero timeout fails at once.
///
/// Socket state afterwards, success or failure: the read and write timeouts
/// are the ones `stream` had on entry (they are changed during the
/// handshake and restored); nothing else is changed. On success nothing is
/// left to send, and plaintext the client sent along with its last handshake
/// flight is already buffered in the connection ([`tls_read`] returns it).
/// On failure, a TLS alert has been sent when there was one to send; the
/// caller closes the socket.
///
/// With TLS 1.3 the server sends two session tickets right after the
/// handshake (rustls' default, for resumption). A client that then closes
/// without ever reading leaves them unread, so its kernel sends RST instead
/// of FIN, and the server's next read fails with `ConnectionReset` rather
/// than seeing end of input. Setting `send_tls13_tickets = 0` in
/// [`server_config`] would avoid that at the cost of TLS 1.3 resumption.
///
/// # Errors
/// [`HandshakeError::Timeout`], [`HandshakeError::Tls`] (protocol or
/// certificate failure), [`HandshakeError::Closed`] or
/// [`HandshakeError::Io`].
pub(crate) fn accept(
    stream: &TcpStream,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Result<ServerConnection, HandshakeError> {
    let mut conn = ServerConnection::new(config).map_err(HandshakeError::Tls)?;
    handshake(&mut conn, stream, timeout)?;
    Ok(conn)
}

/// Runs the client side of a TLS handshake on `tcp` within `timeout`,
/// checking the server's certificate against `server_name` (a DNS name or
/// an IP address, see [`ClientTls::server_name`]). The socket's timeouts
/// are left as they were on entry, as for [`accept`].
///
/// Reading from the returned stream directly reports a peer that closes
/// without close_notify as `UnexpectedEof`; use
/// `tls_read(&mut s.conn, &s.sock, buf)` for SPEC §2's "end of input".
///
/// # Errors
/// As for [`accept`], and [`HandshakeError::ServerName`].
pub(crate) fn connect(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    server_name: &str,
    timeout: Duration,
) -> Result<StreamOwned<ClientConnection, TcpStream>, HandshakeError> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| HandshakeError::ServerName(server_name.to_owned()))?;
    let mut conn = ClientConnection::new(config, name).map_err(HandshakeError::Tls)?;
    handshake(&mut conn, &tcp, timeout)?;
    Ok(StreamOwned::new(conn, tcp))
}

/// Completes the handshake of `conn` on `tcp` within `timeout`, restoring
/// the socket's read and write timeouts afterwards.
fn handshake<C, S>(conn: &mut C, tcp: &TcpStream, timeout: Duration) -> Result<(), HandshakeError>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    let start = Instant::now();
    let read_timeout = tcp.read_timeout().map_err(HandshakeError::Io)?;
    let write_timeout = tcp.write_timeout().map_err(HandshakeError::Io)?;
    let outcome = drive_handshake(conn, tcp, start, timeout);
    let restored = tcp
        .set_read_timeout(read_timeout)
        .and_then(|()| tcp.set_write_timeout(write_timeout));
    outcome?;
    restored.map_err(HandshakeError::Io)
}

/// The handshake loop: write what rustls has to send, else read one chunk
/// and process it; before each I/O the socket timeout is set to what is
/// left of the deadline, so the deadline bounds the whole exchange.
fn drive_handshake<C, S>(
    conn: &mut C,
    tcp: &TcpStream,
    start: Instant,
    timeout: Duration,
) -> Result<(), HandshakeError>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    let mut sock = tcp;
    loop {
        if conn.wants_write() {
            let left = time_left(start, timeout)?;
            tcp.set_write_timeout(Some(left))
                .map_err(HandshakeError::Io)?;
            match conn.write_tls(&mut sock) {
                Ok(0) => return Err(HandshakeError::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_failure(e, timeout)),
            }
            continue;
        }
        if !conn.is_handshaking() {
            return Ok(());
        }
        if !conn.wants_read() {
            // rustls always wants to read or write while handshaking; guard
            // against spinning should that ever change.
            return Err(HandshakeError::Tls(rustls::Error::General(
                "handshake stalled".into(),
            )));
        }
        let left = time_left(start, timeout)?;
        tcp.set_read_timeout(Some(left))
            .map_err(HandshakeError::Io)?;
        match conn.read_tls(&mut sock) {
            Ok(0) => return Err(HandshakeError::Closed),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_failure(e, timeout)),
        }
        if let Err(e) = conn.process_new_packets() {
            send_alert(conn, tcp, start, timeout);
            return Err(HandshakeError::Tls(e));
        }
    }
}

/// What is left of the handshake deadline, or [`HandshakeError::Timeout`].
fn time_left(start: Instant, timeout: Duration) -> Result<Duration, HandshakeError> {
    let left = timeout.saturating_sub(start.elapsed());
    if left.is_zero() {
        Err(HandshakeError::Timeout(timeout))
    } else {
        Ok(left)
    }
}

/// A socket error during the handshake: a socket timeout (set to the time
/// left) means the deadline passed.
fn io_failure(e: io::Error, timeout: Duration) -> HandshakeError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HandshakeError::Timeout(timeout),
        _ => HandshakeError::Io(e),
    }
}

/// Best effort, within the deadline: send the alert rustls queued to tell
/// the peer why the handshake failed.
fn send_alert<C, S>(conn: &mut C, tcp: &TcpStream, start: Instant, timeout: Duration)
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    let mut sock = tcp;
    while conn.wants_write() {
        let Ok(left) = time_left(start, timeout) else {
            return;
        };
        if tcp.set_write_timeout(Some(left)).is_err() {
            return;
        }
        match conn.write_tls(&mut sock) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// Reads plaintext from an established TLS connection, like `Read::read`
/// on the socket: blocks until some data, end of input or an error.
///
/// End of input is `Ok(0)` both after the peer's close_notify and when the
/// TCP stream ends without one (rustls' `UnexpectedEof`: what the drain's
/// `shutdown(Read)` and many clients produce; SPEC §2). A socket timeout is
/// the socket's `WouldBlock`/`TimedOut` error; a corrupt record or a fatal
/// alert from the peer is `InvalidData`. Pending TLS output (e.g. a key
/// update response) is written as needed. No allocation of its own: the
/// plaintext is copied once, from rustls' buffer into `buf`.
pub(crate) fn tls_read<C, S>(conn: &mut C, tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    if buf.is_empty() {
        return Ok(0);
    }
    let mut sock = tcp;
    match rustls::Stream::new(conn, &mut sock).read(buf) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        other => other,
    }
}

/// Writes all of `buf` as TLS records and sends them, like `Write::write`
/// on the socket but never a short count while the socket accepts data: it
/// encrypts at most rustls' buffer limit (64 KiB) at a time and sends each
/// part before the next, so memory stays bounded and nothing is left queued
/// when it returns `Ok(buf.len())` (no separate flush is needed).
///
/// If sending fails after rustls has taken some bytes, those bytes are
/// counted (`Ok(n)`, `n < buf.len()` possible) and stay queued: the next
/// `tls_write` or [`tls_flush`] sends them first or reports the error (a
/// write timeout is the socket's `WouldBlock`/`TimedOut`). Bytes are never
/// sent twice.
pub(crate) fn tls_write<C, S>(conn: &mut C, tcp: &TcpStream, buf: &[u8]) -> io::Result<usize>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    tls_flush(conn, tcp)?;
    let mut written = 0;
    while written < buf.len() {
        let n = conn.writer().write(&buf[written..])?;
        if n == 0 {
            // The send buffer is empty here, so rustls refusing more means
            // it cannot take any (e.g. after close_notify was sent).
            return if written == 0 {
                Err(io::ErrorKind::WriteZero.into())
            } else {
                Ok(written)
            };
        }
        written += n;
        if tls_flush(conn, tcp).is_err() {
            // Counted and queued: the error comes back on the next call.
            return Ok(written);
        }
    }
    Ok(written)
}

/// Sends every queued TLS record (blocking, under the socket's write
/// timeout).
pub(crate) fn tls_flush<C, S>(conn: &mut C, tcp: &TcpStream) -> io::Result<()>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    let mut sock = tcp;
    while conn.wants_write() {
        match conn.write_tls(&mut sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::{SocketAddr, TcpListener};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::thread;

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use rustls::ProtocolVersion;

    use super::*;

    /// Bounds every blocking call in these tests, so a bug fails instead of hanging.
    const IO_TIMEOUT: Duration = Duration::from_secs(5);

    /// A unique directory under the temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "syncnet-tls-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A certificate and its key, as PEM files.
    struct Pair {
        cert: PathBuf,
        key: PathBuf,
    }

    /// Two CAs and the certificates the tests need, in a fresh directory.
    struct Pki {
        dir: TempDir,
        /// The CA that signs the server and the trusted clients.
        ca: PathBuf,
        /// Another CA, trusted by nobody here.
        other_ca: PathBuf,
        /// For `localhost` and 127.0.0.1.
        server: Pair,
        /// Client `allowed.example`, from `ca`.
        allowed: Pair,
        /// Client `other.example`, from `ca`.
        other: Pair,
        /// Client `allowed.example`, from `other_ca`.
        stranger: Pair,
    }

    fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    }

    /// A leaf certificate with these SANs (DNS names or IP addresses) and CN.
    fn new_leaf(
        issuer: &Issuer<'static, KeyPair>,
        sans: &[&str],
        cn: &str,
        usage: ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    impl Pki {
        fn new() -> Pki {
            let dir = TempDir::new();
            let (ca_pem, ca) = new_ca("syncnet test CA");
            let (other_ca_pem, other_ca) = new_ca("syncnet other CA");
            let pair = |name: &str, issuer: &Issuer<'static, KeyPair>, sans: &[&str], usage| {
                let (cert, key) = new_leaf(issuer, sans, sans[0], usage);
                Pair {
                    cert: dir.write(&format!("{name}.crt"), cert),
                    key: dir.write(&format!("{name}.key"), key),
                }
            };
            let server = pair(
                "server",
                &ca,
                &["localhost", "127.0.0.1"],
                ExtendedKeyUsagePurpose::ServerAuth,
            );
            let client = ExtendedKeyUsagePurpose::ClientAuth;
            let allowed = pair("allowed", &ca, &["allowed.example"], client.clone());
            let other = pair("other", &ca, &["other.example"], client.clone());
            let stranger = pair("stranger", &other_ca, &["allowed.example"], client);
            Pki {
                ca: dir.write("ca.crt", ca_pem),
                other_ca: dir.write("other-ca.crt", other_ca_pem),
                server,
                allowed,
                other,
                stranger,
                dir,
            }
        }

        fn server_settings(&self) -> TlsSettings {
            TlsSettings {
                cert: self.server.cert.clone(),
                key: self.server.key.clone(),
                ..TlsSettings::default()
            }
        }

        fn mtls_settings(&self, allow: &[&str]) -> TlsSettings {
            TlsSettings {
                client_ca: Some(self.ca.clone()),
                allow_names: allow.iter().map(|s| (*s).to_owned()).collect(),
                ..self.server_settings()
            }
        }

        fn client_settings(&self, cert: Option<&Pair>) -> ClientTls {
            ClientTls {
                ca: Some(self.ca.clone()),
                cert: cert.map(|p| p.cert.clone()),
                key: cert.map(|p| p.key.clone()),
                server_name: None,
            }
        }
    }

    fn server_error(settings: &TlsSettings) -> String {
        server_config(settings).unwrap_err().to_string()
    }

    fn client_error(settings: &ClientTls) -> String {
        client_config(settings).unwrap_err().to_string()
    }

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

    fn outcome<T>(rx: &mpsc::Receiver<T>) -> T {
        rx.recv_timeout(IO_TIMEOUT * 2)
            .expect("the server thread reports within the timeout")
    }

    fn tcp_client(addr: SocketAddr) -> TcpStream {
        let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).unwrap();
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        tcp
    }

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
        let dangling = pki.dir.0.join("no-such-file.pem");
        let directory = pki.dir.0.clone();

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
        let path = |name: &str| pki.dir.0.join(name).display().to_string();
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
    fn client_names_are_the_dns_sans_and_the_common_name() {
        let (_, ca) = new_ca("names CA");
        let (pem, _) = new_leaf(
            &ca,
            &["a.example", "B.Example", "10.0.0.1"],
            "cn.example",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(client_names(&der), ["a.example", "B.Example", "cn.example"]);
        assert!(client_names(b"not a certificate").is_empty());
    }

    // ---- handshakes ----------------------------------------------------

    fn echo_both_ways(versions: &[&'static SupportedProtocolVersion], expected: ProtocolVersion) {
        let pki = Pki::new();
        let config = server_config(&pki.server_settings()).unwrap();
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
        let config = server_config(&pki.server_settings()).unwrap();
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
        let config = server_config(&pki.server_settings()).unwrap();
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
        let config = server_config(&pki.server_settings()).unwrap();
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
        let config = server_config(&pki.server_settings()).unwrap();
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
        let config = server_config(&settings).unwrap();
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

    fn failing_accept(timeout: Duration) -> (SocketAddr, mpsc::Receiver<Accepted>) {
        let pki = Pki::new();
        let config = server_config(&pki.server_settings()).unwrap();
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
        let config = server_config(&pki.server_settings()).unwrap();
        let (addr, rx) = serve(move |tcp| {
            let mut conn = accept(&tcp, config, IO_TIMEOUT).map_err(|e| e.to_string())?;
            tls_read(&mut conn, &tcp, &mut []).map_err(|e| e.to_string())
        });
        let client_config = client_config(&pki.client_settings(None)).unwrap();
        let client = tls_client(addr, client_config).unwrap();
        assert_eq!(outcome(&rx), Ok(0));
        drop(client);
    }
}
