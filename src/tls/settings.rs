//! The TLS flags as settings ([`TlsSettings`] for the listener, [`ClientTls`]
//! for the client), the [`TlsConfigError`] that names the flag and file at
//! fault, and loading the PEM files those flags name.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// `--tls-cert`: a certificate chain (the server's, or the client's for mTLS).
pub(super) const FLAG_CERT: &str = "tls.cert";
/// `--tls-key`: the private key of `--tls-cert`.
pub(super) const FLAG_KEY: &str = "tls.key";
/// `--tls-client-ca`: the CA bundle client certificates must chain to (mTLS).
pub(super) const FLAG_CLIENT_CA: &str = "tls.client_ca";
/// `--tls-allow-name`: a client certificate name that is served.
pub(super) const FLAG_ALLOW_NAME: &str = "tls.allow_names";
/// `--tls-ca`: the CA bundle the server's certificate must chain to.
pub(super) const FLAG_CA: &str = "tls.ca";
/// `--tls`: the client's switch to TLS.
pub(super) const FLAG_TLS: &str = "tls";
/// `--tls-server-name`: the name the server's certificate must carry.
pub(super) const FLAG_SERVER_NAME: &str = "tls.server_name";

/// The listener's TLS flags (under Flags in `docs/reference.md`).
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

/// The client's TLS flags (under Flags in `docs/reference.md`; `--tls` itself
/// is the caller's switch).
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

/// A TLS setting that cannot work. The message names the flag and the file.
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
    /// The flag at fault, for the binary's configuration error.
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

impl TlsConfigError {
    /// The file at fault, when there is one (the key's for a key that does
    /// not match its certificate).
    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            TlsConfigError::Read { path, .. }
            | TlsConfigError::Pem { path, .. }
            | TlsConfigError::NoCertificate { path, .. }
            | TlsConfigError::NoPrivateKey { path, .. }
            | TlsConfigError::Invalid { path, .. }
            | TlsConfigError::NoUsableCa { path, .. }
            | TlsConfigError::KeyMismatch { key: path, .. } => Some(path),
            TlsConfigError::Needs { .. }
            | TlsConfigError::ServerName { .. }
            | TlsConfigError::Setup { .. } => None,
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

/// The contents of the file `path` given with `flag`.
fn read_file(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        flag,
        path: path.to_owned(),
        source,
    })
}

/// A PEM parse error of the file `path` given with `flag`.
fn pem_error(flag: &'static str, path: &Path, e: rustls::pki_types::pem::Error) -> TlsConfigError {
    TlsConfigError::Pem {
        flag,
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Every `CERTIFICATE` block of a PEM file, in order; other blocks are skipped.
pub(super) fn load_certs(
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
pub(super) fn load_key(
    flag: &'static str,
    path: &Path,
) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
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
pub(super) fn load_roots(flag: &'static str, path: &Path) -> Result<RootCertStore, TlsConfigError> {
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
pub(super) fn cert_key_error(error: rustls::Error, cert: &Path, key: &Path) -> TlsConfigError {
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
