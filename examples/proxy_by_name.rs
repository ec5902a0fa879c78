//! A proxy that routes by the mTLS client's name: clients whose certificate
//! is known as `reporting.internal` go to the read replica, everyone else to
//! the primary. `syncnet::proxy::Proxy` is a handler like any other, so the
//! routing is a few lines of ordinary code around it.
//!
//! ```sh
//! cargo run --release --example proxy_by_name -- \
//!     --cert server.crt --key server.key --client-ca clients-ca.crt \
//!     --primary 127.0.0.1:5432 --replica 127.0.0.1:5433
//! ```
//!
//! The listener (127.0.0.1:6432 unless `--listen`) speaks TLS and requires a
//! client certificate signed by `--client-ca`; the upstreams are plain TCP.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use syncnet::proxy::Proxy;
use syncnet::{Conn, LogFormat, Server, TlsSettings};

/// Routes mTLS clients to one of two upstreams by their certificate name.
#[derive(Debug, Parser)]
struct Args {
    /// Address to accept TLS clients on
    #[arg(long, default_value = "127.0.0.1:6432")]
    listen: String,
    /// PEM certificate chain of the listener
    #[arg(long)]
    cert: PathBuf,
    /// PEM private key of --cert
    #[arg(long)]
    key: PathBuf,
    /// PEM CA bundle client certificates must chain to
    #[arg(long)]
    client_ca: PathBuf,
    /// Where everyone goes
    #[arg(long)]
    primary: String,
    /// Where clients known as --replica-name go
    #[arg(long)]
    replica: String,
    /// The client certificate name (DNS SAN, or CN without SANs) routed to --replica
    #[arg(long, default_value = "reporting.internal")]
    replica_name: String,
}

fn main() -> ExitCode {
    syncnet::init_logging(LogFormat::Auto);
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

fn run(args: Args) -> Result<(), syncnet::Error> {
    let server = Server::builder()
        .listen(args.listen)
        .tls(TlsSettings {
            cert: args.cert,
            key: args.key,
            client_ca: Some(args.client_ca),
            ..TlsSettings::default()
        })
        .build()?;
    let registry = server.metrics_registry();
    // One Proxy per route. A registry takes one Proxy's metrics (their names
    // would clash), so the primary's go to /metrics; the route of every
    // connection is on its close line (`route`).
    let primary = Proxy::builder()
        .upstream(args.primary)
        .metrics(&registry)
        .build()?;
    let replica = Proxy::builder().upstream(args.replica).build()?;
    let replica_name = args.replica_name;
    server.run(move |conn: &mut Conn| {
        let route = if conn
            .peer_names()
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&replica_name))
        {
            ("replica", &replica)
        } else {
            ("primary", &primary)
        };
        conn.set_log_field("route", route.0.to_string());
        route.1.proxy(conn)
    })
}
