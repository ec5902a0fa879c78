//! `syncnet proxy`: every flag of `syncnet serve` (the settings table's,
//! and `--config`), plus the upstreams and how they are used.

use std::time::Duration;

use clap::{Args, ValueEnum};

use syncnet::proxy::{Balance, Proxy, ProxyBuilder, Version};
use syncnet::trace::TraceOptions;
use syncnet::{Error, LogFormat, ServerConfig};

use super::ServeArgs;
use super::duration;

/// Flags of `syncnet proxy` (listed in `docs/reference.md`).
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Upstream host:port to forward connections to (repeatable; at least one)
    #[arg(
        long,
        value_name = "ADDR",
        env = "SYNCNET_UPSTREAM",
        value_delimiter = ','
    )]
    pub upstream: Vec<String>,
    /// How an upstream is picked for a new connection
    #[arg(
        long,
        value_name = "HOW",
        env = "SYNCNET_BALANCE",
        default_value = "least-conn"
    )]
    pub balance: BalanceArg,
    /// How long a connect to one upstream may take; on failure the next is tried (each at most once per connection)
    #[arg(long, value_name = "DUR", env = "SYNCNET_CONNECT_TIMEOUT", default_value = "3s", value_parser = duration)]
    pub connect_timeout: Duration,
    /// How long an upstream that failed to connect is skipped
    #[arg(long, value_name = "DUR", env = "SYNCNET_UPSTREAM_DOWN", default_value = "10s", value_parser = duration)]
    pub upstream_down: Duration,
    /// Send a PROXY protocol header with the client's address to the upstream
    #[arg(
        long,
        value_name = "VERSION",
        env = "SYNCNET_SEND_PROXY_PROTOCOL",
        default_value = "off"
    )]
    pub send_proxy_protocol: ProxyProtocolArg,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `--balance`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BalanceArg {
    /// The upstream with the fewest active connections
    LeastConn,
    /// Each upstream in turn
    RoundRobin,
}

/// `--send-proxy-protocol`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyProtocolArg {
    /// The text header
    V1,
    /// The binary header
    V2,
    /// No header
    Off,
}

impl ProxyArgs {
    /// The server's configuration, log format and tracing (as for `serve`), and the
    /// proxy's settings, not built yet (its metrics go in the server's registry).
    ///
    /// # Errors
    /// As [`ServeArgs::resolve`]; [`Error::Config`] naming `--upstream` when
    /// there is none.
    pub fn resolve(
        self,
    ) -> Result<(ServerConfig, LogFormat, Option<TraceOptions>, ProxyBuilder), Error> {
        if self.upstream.is_empty() {
            return Err(Error::Config {
                setting: "--upstream".into(),
                message: "needs at least one ADDR (host:port)".into(),
            });
        }
        let (config, format, tracing) = self.serve.resolve()?;
        let mut builder = Proxy::builder()
            .balance(match self.balance {
                BalanceArg::LeastConn => Balance::LeastConn,
                BalanceArg::RoundRobin => Balance::RoundRobin,
            })
            .connect_timeout(self.connect_timeout)
            .upstream_down(self.upstream_down)
            .send_proxy_protocol(match self.send_proxy_protocol {
                ProxyProtocolArg::V1 => Some(Version::V1),
                ProxyProtocolArg::V2 => Some(Version::V2),
                ProxyProtocolArg::Off => None,
            });
        for upstream in self.upstream {
            builder = builder.upstream(upstream);
        }
        Ok((config, format, tracing, builder))
    }
}
