//! The command line: clap definitions of the subcommands, and for `serve`
//! the merge of command line, environment, `--config` TOML file and defaults
//! (command line > environment > file > default). clap reads `SYNCNET_*`
//! variables itself, so a value from clap is already "command line or
//! environment".
//!
//! The `serve` flags are generated from the settings table
//! (`src/config/table.rs`) by [`settings`]; `docs/reference.md` lists them.

mod bench;
mod client;
mod serve;
mod settings;

use std::time::Duration;

use clap::{Parser, Subcommand};

pub use bench::BenchArgs;
pub use client::{ClientArgs, ClientTlsArgs};
pub use serve::ServeArgs;

/// syncnet: a TCP server toolkit with threads, not async.
#[derive(Debug, Parser)]
#[command(name = "syncnet", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; no subcommand at all means `serve`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the echo service (the default when no subcommand is given).
    Serve(Box<ServeArgs>),
    /// Connect to a server: send --message and print the reply, or copy stdin/stdout.
    Client(ClientArgs),
    /// Load-test an echo-like service: pingpong, bulk or hold, every echoed byte verified.
    Bench(BenchArgs),
}

/// clap's parser for a duration flag (`30s`).
fn duration(text: &str) -> Result<Duration, String> {
    syncnet::parse_duration(text)
}
