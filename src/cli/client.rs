//! Flags of `syncnet client`, and the client TLS flags it shares with `syncnet bench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use syncnet::{ClientTls, Error};

use super::duration;

/// Flags of `syncnet client` (see `docs/reference.md`).
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server address
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub connect: String,
    /// Send TEXT and print the reply; without it, copy stdin to the server and its bytes to stdout
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// How long to wait for the connection and for the whole reply
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

/// The client's TLS flags (see `docs/reference.md`), shared by `client` and `bench`.
#[derive(Debug, Args, Default)]
pub struct ClientTlsArgs {
    /// Speak TLS to the server
    #[arg(long)]
    pub tls: bool,
    /// PEM CA bundle the server's certificate must chain to (needed with --tls)
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate chain, for mTLS (with --tls-key)
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Name to check the server's certificate against [default: the host of --connect]
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

impl ClientTlsArgs {
    /// The TLS settings, or `None` for plain TCP.
    ///
    /// # Errors
    /// [`Error::Config`] when a TLS flag is given without `--tls`.
    pub fn settings(&self) -> Result<Option<ClientTls>, Error> {
        if !self.tls {
            let stray = [
                ("--tls-ca", self.tls_ca.is_some()),
                ("--tls-cert", self.tls_cert.is_some()),
                ("--tls-key", self.tls_key.is_some()),
                ("--tls-server-name", self.tls_server_name.is_some()),
            ];
            if let Some((flag, _)) = stray.iter().find(|(_, given)| *given) {
                return Err(Error::Config {
                    setting: flag.to_string(),
                    message: "has no effect without --tls".to_string(),
                });
            }
            return Ok(None);
        }
        Ok(Some(ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
        }))
    }
}
