//! The test PKI: two CAs and the server and client certificates the TLS tests
//! need, generated with rcgen and written as PEM files to a fresh directory.
//!
//! One file for both kinds of test: the integration tests reach it as
//! `support::pki`, and `src/tls/tests.rs` includes this same file with
//! `#[path = "../../tests/support/pki.rs"] mod pki;`. So it uses std and rcgen
//! only, never syncnet's own types: each user builds its `TlsSettings` and
//! `ClientTls` from the paths here.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// A unique directory under the temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a fresh, empty directory.
    pub fn new() -> TempDir {
        /// Numbers the directories of this process.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "syncnet-pki-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to the file `name` in the directory; returns its path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write a file to the temp dir");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate and its key, as PEM files.
pub struct Pair {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, PKCS#8).
    pub key: PathBuf,
}

/// Two CAs and the certificates the tests need, as files in a fresh
/// directory (removed when the `Pki` is dropped).
pub struct Pki {
    /// The directory holding every file below.
    pub dir: TempDir,
    /// The CA that signs the server and the trusted clients.
    pub ca: PathBuf,
    /// Another CA, trusted by nobody here; it signed `stranger`.
    pub other_ca: PathBuf,
    /// Server certificate for `localhost` and 127.0.0.1, from `ca`.
    pub server: Pair,
    /// Client `allowed.example`, from `ca`.
    pub allowed: Pair,
    /// Client `other.example`, from `ca`.
    pub other: Pair,
    /// Client `allowed.example`, from `other_ca`.
    pub stranger: Pair,
    /// Signs with `ca`, for leaves a test makes itself ([`Pki::leaf`]).
    ca_issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// Generates both CAs and the four leaf certificates and writes them:
    /// `ca.crt`, `other-ca.crt`, and `NAME.crt`/`NAME.key` for `server`,
    /// `allowed`, `other` and `stranger`. Each leaf's subject CN is its
    /// first SAN.
    pub fn new() -> Pki {
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
            ca_issuer: ca,
        }
    }

    /// A client certificate from `ca` with these SANs and subject CN,
    /// written as `NAME.crt`/`NAME.key`.
    pub fn leaf(&self, name: &str, sans: &[&str], cn: &str) -> Pair {
        let (cert, key) = new_leaf(
            &self.ca_issuer,
            sans,
            cn,
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Pair {
            cert: self.dir.write(&format!("{name}.crt"), cert),
            key: self.dir.write(&format!("{name}.key"), key),
        }
    }
}

/// A self-signed CA with the subject CN `name`: its certificate (PEM) and
/// the issuer that signs leaves with it.
pub fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("generate a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).expect("self-sign the CA");
    (cert.pem(), Issuer::new(params, key))
}

/// A leaf certificate from `issuer` with these SANs (DNS names or IP
/// addresses), the subject CN `cn` and the extended key usage `usage`:
/// (certificate PEM, private key PEM).
pub fn new_leaf(
    issuer: &Issuer<'static, KeyPair>,
    sans: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let key = KeyPair::generate().expect("generate a leaf key");
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("leaf parameters");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).expect("sign the leaf");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    /// A server certificate from `ca` for `localhost` and 127.0.0.1 with the
    /// serial number `serial`, valid until `not_after` (year, month, day, at
    /// midnight UTC), written as `NAME.crt`/`NAME.key`: a new certificate
    /// for the same server, as a rotation brings, told apart by its serial.
    pub fn server_leaf(&self, name: &str, serial: u64, not_after: (i32, u8, u8)) -> Pair {
        let key = KeyPair::generate().expect("generate a server key");
        let sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut params = CertificateParams::new(sans).expect("server parameters");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let (year, month, day) = not_after;
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let cert = params
            .signed_by(&key, &self.ca_issuer)
            .expect("sign the server certificate");
        Pair {
            cert: self.dir.write(&format!("{name}.crt"), cert.pem()),
            key: self.dir.write(&format!("{name}.key"), key.serialize_pem()),
        }
    }
}
