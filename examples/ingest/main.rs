//! # `ingest`: durable ingestion with group commit
//!
//! Producers send records, one JSON object per line with a string `"id"`;
//! the server appends each to a file and answers `ok ID` only once the
//! record is on disk (`fdatasync`), `dup ID` when that id is already
//! stored. One writer thread syncs once for everything that arrived
//! meanwhile, from every connection (group commit), so thousands of
//! records share one `fsync`.
//!
//! ```sh
//! cargo run --release --example ingest -- serve --file /var/tmp/records.jsonl
//! cargo run --release --example ingest -- produce --records 100000   # prints a JSON report
//! ```
//!
//! | file | what it holds |
//! | --- | --- |
//! | `main.rs` | the command line: `serve` and `produce` |
//! | `record.rs` | checking a record and taking out its id |
//! | `protocol.rs` | one connection: bursts of records in, replies out after the sync |
//! | `committer.rs` | the writer thread: group commit, the set of ids, the metrics |
//! | `store.rs` | the file: the `Store` trait, opening it, cutting a torn last line |
//! | `produce.rs` | the load generator: windows, retries, the report |

mod committer;
mod produce;
mod protocol;
mod record;
mod store;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use syncnet::{Conn, Handler, LogFormat, Server};

use committer::{Committer, Mode, Submitter};

/// Durable ingestion with group commit, served by syncnet.
#[derive(Debug, Parser)]
#[command(name = "ingest")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Store records in a file until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Send numbered records and print a JSON report.
    Produce(produce::ProduceArgs),
}

/// The flags of `ingest serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The records file (created if missing; a torn last line is cut off)
    #[arg(long, value_name = "PATH")]
    file: PathBuf,
    /// Address to accept on (port 0: the kernel picks one; the start-up log line shows it)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4200")]
    listen: String,
    /// Admin endpoint (/metrics, /healthz, /readyz), or `off`
    #[arg(long, value_name = "ADDR|off", default_value = "off")]
    admin: String,
    /// Longest record in bytes, line ending not counted; a longer line gets `err too long`, then a close
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, value_parser = produce::positive)]
    max_record: usize,
    /// One fsync per record instead of group commit (the benchmark's baseline)
    #[arg(long)]
    fsync_every_record: bool,
    /// Most connections served at once; one thread each
    #[arg(long, value_name = "N", default_value_t = 512)]
    workers: usize,
    /// Log format on stderr: text, json, or auto (text on a terminal)
    #[arg(long, value_name = "FORMAT", default_value = "auto")]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    // Bad usage: clap prints the error and exits with 2.
    match Cli::parse().command {
        Command::Serve(args) => match serve(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, message)) => {
                if log::log_enabled!(log::Level::Error) {
                    log::error!(target: "ingest", exit_code = code; "{message}");
                } else {
                    eprintln!("ingest: error: {message}");
                }
                ExitCode::from(code)
            }
        },
        Command::Produce(args) => produce::main(&args),
    }
}

/// The server's handler: every connection is a producer.
struct Ingest {
    submitter: Submitter,
    max_record: usize,
}

impl Handler for Ingest {
    fn handle(&self, conn: &mut Conn) -> io::Result<()> {
        protocol::serve(conn, &self.submitter, self.max_record)
    }
}

/// `ingest serve`: opens the file (logging what it recovered), starts the
/// committer, serves until a signal, then commits what the connections
/// handed in before exiting. Errors are (exit code, message).
fn serve(args: &ServeArgs) -> Result<(), (u8, String)> {
    syncnet::init_logging(args.log_format);
    let opened = store::open(&args.file).map_err(|e| (1, e.to_string()))?;
    let file = args.file.display().to_string();
    if let Some(torn) = &opened.torn {
        log::warn!(
            target: "ingest",
            file = file.as_str(), offset = torn.offset, dropped_bytes = torn.bytes.len(),
            dropped = store::preview(&torn.bytes, 200).as_str();
            "dropped a torn last line ({} bytes at byte {}): a write cut short by a crash, never acknowledged",
            torn.bytes.len(), torn.offset
        );
    }
    log::info!(
        target: "ingest",
        file = file.as_str(), records = opened.records, ids = opened.ids.len(), created = opened.created;
        "opened {file}: {} records", opened.records
    );

    let from_syncnet =
        |e: syncnet::Error| (u8::try_from(e.exit_code()).unwrap_or(1), e.to_string());
    let admin = (args.admin != "off").then_some(args.admin.as_str());
    let server = Server::builder()
        .listen(args.listen.as_str())
        .admin(admin)
        .workers(args.workers)
        // A producer that stops sending is closed after this long.
        .idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(from_syncnet)?;
    let metrics = committer::Metrics::register(&server.metrics_registry())
        .map_err(|e| (1, format!("registering the ingest metrics: {e}")))?;
    let mode = if args.fsync_every_record {
        Mode::EveryRecord
    } else {
        Mode::Group
    };
    let committer = Committer::start(opened.store, opened.ids, mode, metrics, move |e| {
        // The file's state is unknown: stop; the restart cuts a torn line.
        log::error!(target: "ingest", file = file.as_str(), error:% = e; "cannot write or sync the file: exiting");
        std::process::exit(1);
    })
    .map_err(|e| (1, format!("starting the committer thread: {e}")))?;
    let handler = Ingest {
        submitter: committer.submitter(),
        max_record: args.max_record,
    };
    let served = server.run(handler);
    // The drain let every connection commit and acknowledge its burst; a
    // batch still queued (a handler left behind) is committed here.
    committer.stop();
    log::info!(target: "ingest", "committer stopped: every record received is synced");
    served.map_err(from_syncnet)
}
