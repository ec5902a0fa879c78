//! # `kv`: a key-value server that speaks Redis's protocol (RESP2)
//!
//! Redis clients (`redis-cli`, `redis-benchmark`, redis-py, ...) talk to
//! it as to a Redis server with strings only, served by syncnet: a thread
//! per connection from a bounded pool, plain blocking I/O.
//!
//! ```sh
//! cargo run --release --example kv            # on 127.0.0.1:6380
//! redis-cli -p 6380 SET greeting hello        # OK
//! redis-cli -p 6380 GET greeting              # "hello"
//! redis-benchmark -p 6380 -t set,get -q
//! ```
//!
//! Commands: `PING [msg]`, `ECHO`, `GET`, `SET key value [EX s|PX ms]
//! [NX|XX]`, `DEL`, `EXISTS`, `INCR`, `INCRBY`, `DECR`, `DECRBY`, `MGET`,
//! `MSET`, `EXPIRE`, `TTL`, `DBSIZE`, `FLUSHALL`, `MULTI`/`EXEC`/`DISCARD`,
//! `QUIT`, and `CONFIG GET` (an empty array). Requests come as arrays of
//! bulk strings or as inline commands (`SET k v\r\n`), pipelined or not.
//!
//! | file | what it holds |
//! | --- | --- |
//! | `main.rs` | the command line |
//! | `resp.rs` | the `Codec`: where a request ends, the protocol limits |
//! | `request.rs` | a request's arguments, without copying them |
//! | `protocol.rs` | the `Protocol` impl: dispatch, `MULTI`/`EXEC`, protocol errors |
//! | `commands.rs` | the commands, with Redis's replies and error texts |
//! | `reply.rs` | RESP replies written into the reused reply buffer |
//! | `store.rs` | the sharded store, expiry (lazy, and a background sweep) |

mod commands;
mod protocol;
mod reply;
mod request;
mod resp;
mod store;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use syncnet::service::FramedService;
use syncnet::{Error, LogFormat, Server};

use protocol::{Kv, REFUSAL};
use store::Store;

/// The largest `--max-value`: Redis's default `proto-max-bulk-len`.
const MAX_VALUE_LIMIT: usize = 512 << 20;

/// How often the background sweep removes expired keys (Redis's `hz 10`).
const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// A key-value server speaking Redis's protocol (RESP2), served by syncnet.
#[derive(Debug, Parser)]
#[command(name = "kv")]
struct Cli {
    /// Address to accept on (port 0: the kernel picks one; the start-up log line shows it)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6380")]
    listen: String,
    /// Admin endpoint (/metrics, /healthz, /readyz), or `off`
    #[arg(long, value_name = "ADDR|off", default_value = "off")]
    admin: String,
    /// Most connections served at once; one thread each
    #[arg(long, value_name = "N", default_value_t = 512)]
    workers: usize,
    /// Connections that may wait for a worker; beyond, they read `-ERR max number of clients reached`
    #[arg(long, value_name = "N", default_value_t = 128)]
    queue: usize,
    /// Longest bulk string (key, value, argument) in a request: bytes, or with KiB/MiB
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = parse_bytes)]
    max_value: usize,
    /// Log format on stderr: text, json, or auto (text on a terminal)
    #[arg(long, value_name = "FORMAT", default_value = "auto")]
    log_format: LogFormat,
}

/// A size in bytes: `1048576`, `64KiB`, `1MiB`; from 1 byte to 512 MiB.
fn parse_bytes(text: &str) -> Result<usize, String> {
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, ""),
    };
    let scale: usize = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        _ => return Err(format!("unknown unit {unit:?} (use B, KiB or MiB)")),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size"))?;
    match n.checked_mul(scale) {
        Some(bytes) if (1..=MAX_VALUE_LIMIT).contains(&bytes) => Ok(bytes),
        _ => Err("must be from 1 byte to 512MiB".to_string()),
    }
}

fn main() -> ExitCode {
    // Bad usage: clap prints the error and exits with 2.
    let cli = Cli::parse();
    match serve(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if log::log_enabled!(log::Level::Error) {
                log::error!(target: "kv", exit_code = e.exit_code(); "{e}");
            } else {
                eprintln!("kv: error: {e}");
            }
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

/// Binds, logs `syncnet listening on ...` (with the `listen` and `admin`
/// addresses bound), and serves until SIGINT or SIGTERM.
fn serve(cli: &Cli) -> Result<(), Error> {
    syncnet::init_logging(cli.log_format);
    let admin = (cli.admin != "off").then_some(cli.admin.as_str());
    let server = Server::builder()
        .listen(cli.listen.as_str())
        .admin(admin)
        .workers(cli.workers)
        .queue(cli.queue)
        // Clients of a full server read Redis's words, not just a close.
        .reject_reply(REFUSAL)
        .build()?;
    let store = Arc::new(Store::new());
    store::spawn_sweeper(&store, SWEEP_EVERY).map_err(|source| Error::Thread {
        what: "the expiry sweep",
        source,
    })?;
    server.run(FramedService::new(Kv::new(store, cli.max_value)))
}
