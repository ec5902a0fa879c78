//! Flags of `syncnet bench`.

use std::time::Duration;

use clap::Args;

use syncnet::Error;

use super::client::ClientTlsArgs;
use super::duration;

/// Flags of `syncnet bench` (see `docs/reference.md`).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server address
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub connect: String,
    /// Connections, opened at the start and used for the whole run
    #[arg(short = 'c', long, value_name = "N", default_value_t = 50)]
    pub connections: usize,
    /// Length of the measured window (after the warm-up)
    #[arg(short = 'd', long, value_name = "DUR", default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Request size in bytes [default: 64; in bulk mode the chunk size, 65536]
    #[arg(long, value_name = "BYTES")]
    pub size: Option<usize>,
    /// pingpong, bulk or hold
    #[arg(long, value_name = "MODE", default_value = "pingpong")]
    pub mode: syncnet::bench::Mode,
    /// Pingpong requests in flight per connection
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub pipeline: usize,
    /// Requests per second in total (0 = closed loop); latency from the intended send time
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rate: u64,
    /// Traffic before the measured window, not counted
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = duration)]
    pub warmup: Duration,
    /// Print one JSON object instead of the summary
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

impl BenchArgs {
    /// The library's options; progress is shown when stderr is a terminal.
    ///
    /// # Errors
    /// [`Error::Config`] when a TLS flag is given without `--tls`.
    pub fn options(&self) -> Result<syncnet::bench::BenchOptions, Error> {
        Ok(syncnet::bench::BenchOptions {
            connect: self.connect.clone(),
            connections: self.connections,
            duration: self.duration,
            size: self.size,
            mode: self.mode,
            pipeline: self.pipeline,
            rate: self.rate,
            warmup: self.warmup,
            progress: !self.json && syncnet::bench::stderr_is_terminal(),
            tls: self.tls.settings()?,
        })
    }
}
