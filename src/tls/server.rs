//! The listener's side: the rustls [`ServerConfig`] built from
//! [`TlsSettings`], and the server handshake ([`accept`]) under a deadline.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, ServerConnection};

use super::handshake::{HandshakeError, handshake};
use super::settings::{
    FLAG_ALLOW_NAME, FLAG_CERT, FLAG_CLIENT_CA, FLAG_KEY, TlsConfigError, TlsSettings,
    cert_key_error, load_certs, load_key, load_roots,
};
use super::{VERSIONS, provider};

/// A listener's TLS configuration as [`server_config`] built it from the
/// files, with the expiry of the certificate it serves.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// What each handshake runs with.
    pub(crate) config: Arc<ServerConfig>,
    /// The end-entity certificate's notAfter in Unix seconds; `None` when
    /// x509-parser cannot read it (rustls may still accept the certificate).
    pub(crate) not_after: Option<i64>,
}

/// Builds the listener's config: TLS 1.3 and 1.2, the certificate chain and
/// key from `settings` (checked to belong together), and with
/// `client_ca` a verifier that *requires* a client certificate signed by one
/// of its CAs. Each file is read once, so the expiry returned is that of
/// the certificate in the config even while the files are being replaced.
///
/// # Errors
/// A [`TlsConfigError`] naming the flag and file: unreadable file, no
/// certificate, no key, key not matching the certificate, a CA bundle with no
/// usable certificate, or `--tls-allow-name` without `--tls-client-ca` (the
/// names are those of client certificates, which only mTLS asks for).
pub(crate) fn server_config(settings: &TlsSettings) -> Result<Loaded, TlsConfigError> {
    if !settings.allow_names.is_empty() && settings.client_ca.is_none() {
        return Err(TlsConfigError::Needs {
            flag: FLAG_ALLOW_NAME,
            needs: "`tls.client_ca` FILE (names are checked on client certificates, which only mTLS asks for)",
        });
    }
    let chain = load_certs(FLAG_CERT, &settings.cert)?;
    let key = load_key(FLAG_KEY, &settings.key)?;
    let not_after = chain.first().and_then(|cert| not_after(cert));
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
    Ok(Loaded {
        config: Arc::new(config),
        not_after,
    })
}

/// The notAfter of a certificate (DER), in Unix seconds.
fn not_after(cert_der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Runs the server side of a TLS handshake on `stream`, with blocking I/O,
/// and returns the established connection. The whole handshake (including
/// sending the TLS 1.3 session tickets that follow it) must finish within
/// `timeout` (`--tls-handshake-timeout`, above 0; Flags in
/// `docs/reference.md`): a peer trickling one byte at a time does not extend
/// it. A zero timeout fails at once.
///
/// Socket state afterwards, success or failure: the read and write timeouts
/// are the ones `stream` had on entry (they are changed during the
/// handshake and restored); nothing else is changed. On success nothing is
/// left to send, and plaintext the client sent along with its last handshake
/// flight is already buffered in the connection ([`tls_read`](super::tls_read) returns it).
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
