//! The client's side: the rustls [`ClientConfig`] built from [`ClientTls`],
//! and the client handshake ([`connect`]) under a deadline.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned, SupportedProtocolVersion};

use super::handshake::{HandshakeError, handshake};
use super::settings::{
    ClientTls, FLAG_CA, FLAG_CERT, FLAG_KEY, FLAG_TLS, TlsConfigError, cert_key_error, load_certs,
    load_key, load_roots,
};
use super::{VERSIONS, provider};

/// Builds the client's config for TLS 1.3 and 1.2: the server must present a
/// certificate chaining to `--tls-ca`; with `--tls-cert` and `--tls-key` the
/// client presents that certificate (mTLS).
///
/// There is no default trust store (syncnet depends on none and reads no
/// system one), so `--tls-ca` is required.
///
/// # Errors
/// A [`TlsConfigError`] naming the flag and file, as for
/// [`server_config`](super::server::server_config); also for a missing `--tls-ca`,
/// `--tls-cert` without `--tls-key` (or the reverse), and a
/// `--tls-server-name` that is not a DNS name or IP address.
pub(crate) fn client_config(settings: &ClientTls) -> Result<Arc<ClientConfig>, TlsConfigError> {
    client_config_for(settings, VERSIONS)
}

/// [`client_config`] limited to `versions` (tests force TLS 1.2 with it).
pub(super) fn client_config_for(
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

/// Runs the client side of a TLS handshake on `tcp` within `timeout`,
/// checking the server's certificate against `server_name` (a DNS name or
/// an IP address, see [`ClientTls::server_name`]). The socket's timeouts
/// are left as they were on entry, as for [`accept`](super::accept).
///
/// Reading from the returned stream directly reports a peer that closes
/// without close_notify as `UnexpectedEof`; use
/// `tls_read(&mut s.conn, &s.sock, buf)` to see it as end of input (`Ok(0)`),
/// as on a plain socket.
///
/// # Errors
/// As for [`accept`](super::accept), and [`HandshakeError::ServerName`].
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
