//! `--tls-allow-name`: the names a client certificate carries (read with
//! x509-parser) and whether one of them is allowed.

use rustls::ServerConnection;
use x509_parser::extensions::GeneralName;

/// The names a certificate (DER) is known by, as RFC 6125 and browsers
/// read them: its DNS subject alternative names when it has any, and only
/// otherwise its subject common name(s). IP-address and other SAN types are
/// not names here. A certificate that cannot be parsed has no names.
pub(super) fn client_names(cert_der: &[u8]) -> Vec<String> {
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
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(text) = cn.as_str() {
                names.push(text.to_owned());
            }
        }
    }
    names
}

/// The names of the client certificate `conn`'s peer presented (see
/// [`client_names`]); empty without a client certificate.
pub(crate) fn peer_names(conn: &ServerConnection) -> Vec<String> {
    conn.peer_certificates()
        .and_then(<[_]>::first)
        .map(|cert| client_names(cert))
        .unwrap_or_default()
}

/// Whether the client of `conn` may be served under `--tls-allow-name`.
///
/// An empty `allow` list allows everyone. Otherwise the client's end-entity
/// certificate (already verified against `--tls-client-ca` by the
/// handshake) must be known by one of `allow` (its DNS SANs; its subject CN
/// only when it has no DNS SAN: see [`client_names`]),
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
