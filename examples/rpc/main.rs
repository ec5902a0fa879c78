//! # `rpc`: JSON-RPC 2.0 over length-prefixed frames
//!
//! How to write your own protocol on syncnet: implement
//! [`Protocol`](syncnet::service::Protocol) (how frames are cut, how one
//! request is answered, how refusals are worded) and serve it with
//! [`FramedService`], which brings pipelining, request metrics, a
//! request-rate limit and deadlines.
//!
//! ```sh
//! cargo run --release --example rpc -- serve                 # on 127.0.0.1:4000
//! cargo run --release --example rpc -- call add '[1,2,3.5]'  # prints 6.5
//! cargo run --release --example rpc -- call echo '{"hi":[1,2]}'
//! ```
//!
//! Each frame is a 4-byte big-endian length and one JSON object (UTF-8, at
//! most 1 MiB): the default wire format of tokio-util's
//! `LengthDelimitedCodec`. Methods: `echo` (the params back), `add` (sum of
//! an array of numbers), `sleep` (`[ms]`, at most 10 000) and `forward`
//! (`{"method":M,"params":P}`: calls `M` on the `--forward` server, over
//! connections kept in a `syncnet::ClientPool`).
//!
//! | file | what it holds |
//! | --- | --- |
//! | `main.rs` | the command line: `serve` and `call` |
//! | `protocol.rs` | the envelope: parsing a request, writing a reply, the error codes, the `Protocol` impl |
//! | `methods.rs` | `echo`, `add`, `sleep`, `forward` |
//! | `upstream.rs` | the client side: the `Upstream` trait `forward` calls through (over a `ClientPool`), framing, reading replies |

mod methods;
mod protocol;
mod upstream;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use serde_json::value::RawValue;
use syncnet::service::{FramedService, Protocol};
use syncnet::trace::{ClientSpan, TraceOptions};
use syncnet::{Client, ClientPool, Error, LogFormat, Server, parse_duration};

use methods::UPSTREAM_TIMEOUT;
use protocol::JsonRpc;
use upstream::{ConnectPerCall, Outcome, Pooled};

/// JSON-RPC 2.0 over length-prefixed frames, served by syncnet.
#[derive(Debug, Parser)]
#[command(name = "rpc")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve echo, add, sleep and forward until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Call one method and print its result as compact JSON.
    Call(CallArgs),
}

/// The flags of `rpc serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to accept on (port 0: the kernel picks one; the start-up log line shows it)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4000")]
    listen: String,
    /// Admin endpoint (/metrics, /healthz, /readyz), or `off`
    #[arg(long, value_name = "ADDR|off", default_value = "off")]
    admin: String,
    /// Most connections served at once; one thread each
    #[arg(long, value_name = "N", default_value_t = 512)]
    workers: usize,
    /// Connections that may wait for a worker; beyond, they read `-32000 server busy`
    #[arg(long, value_name = "N", default_value_t = 128)]
    queue: usize,
    /// Where `forward` sends its calls (another `rpc serve`), over pooled connections
    #[arg(long, value_name = "ADDR")]
    forward: Option<String>,
    /// `forward` opens a new connection for every call instead (for
    /// `bench/rpc.sh`'s comparison; not documented)
    #[arg(long, hide = true, requires = "forward")]
    forward_per_call: bool,
    /// Requests per second per connection (burst as large); the excess gets -32000; 0 = no limit
    #[arg(long, value_name = "N", default_value_t = 0)]
    request_rate: u32,
    /// A request not answered this long after it was read gets -32000; 0 = no deadline
    #[arg(long, value_name = "DUR", default_value = "0", value_parser = parse_duration)]
    request_timeout: Duration,
    /// Log format on stderr: text, json, or auto (text on a terminal)
    #[arg(long, value_name = "FORMAT", default_value = "auto")]
    log_format: LogFormat,
    /// Export spans to this OTLP/HTTP base URL (POSTs to URL/v1/traces);
    /// else SYNCNET_OTLP_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT; off when none
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Most finished spans waiting for export (for the tests; not documented)
    #[arg(long, hide = true, value_name = "N", default_value_t = 8192)]
    trace_queue: usize,
}

/// The arguments of `rpc call`.
#[derive(Debug, Args)]
struct CallArgs {
    /// The server to call
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4000")]
    connect: String,
    /// Give up on connecting and on the reply after this long (above 0)
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = positive_duration)]
    timeout: Duration,
    /// The method, e.g. add
    method: String,
    /// The params as JSON, e.g. '[1,2]'; none when left out
    params: Option<String>,
    /// Start a trace, print `trace_id=<32 hex digits>` on stderr and export
    /// the call's span to this OTLP/HTTP base URL (else the environment, as for serve)
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
}

/// A duration above zero (a zero socket timeout would mean "wait forever").
fn positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be above 0".to_string()),
        d => Ok(d),
    }
}

fn main() -> ExitCode {
    // Bad usage: clap prints the error and exits with 2.
    match Cli::parse().command {
        Command::Serve(args) => match serve(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                if log::log_enabled!(log::Level::Error) {
                    log::error!(target: "rpc", exit_code = e.exit_code(); "{e}");
                } else {
                    eprintln!("rpc: error: {e}");
                }
                ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
            }
        },
        Command::Call(args) => call(&args),
    }
}

/// `rpc serve`: binds, logs `syncnet listening on ...` (with the `listen`
/// and `admin` addresses bound), and serves until a signal.
fn serve(args: &ServeArgs) -> Result<(), Error> {
    syncnet::init_logging(args.log_format);
    let forward = args.forward.as_deref().map(resolve_forward).transpose()?;
    let admin = (args.admin != "off").then_some(args.admin.as_str());
    let mut builder = Server::builder()
        .listen(args.listen.as_str())
        .admin(admin)
        .workers(args.workers)
        .queue(args.queue)
        // Refused connections read a JSON-RPC error, not just a close.
        .reject_reply(protocol::refusal_frame());
    if let Some(options) = TraceOptions::from_flag_or_env(args.otlp_endpoint.as_deref()) {
        builder = builder.tracing(options.default_service_name("rpc").queue(args.trace_queue));
    }
    let server = builder.build()?;
    let protocol = match forward {
        // The upstream `forward` calls through (see upstream.rs).
        Some(addr) if args.forward_per_call => JsonRpc::forward_to(ConnectPerCall::new(addr)),
        Some(addr) => JsonRpc::forward_to(Pooled::new(
            forward_pool(args.workers, &server)?,
            addr.to_string(),
        )),
        None => JsonRpc::new(),
    };
    let service = FramedService::new(protocol)
        .request_rate(args.request_rate)
        .request_timeout(args.request_timeout);
    server.run(service)
}

/// The connections `forward` borrows: a worker answers one request at a
/// time, so `workers` connections are never exhausted (no checkout waits)
/// and as many stay open between calls. Its counts are on the server's
/// `/metrics` (`syncnet_client_pool_*`).
fn forward_pool(workers: usize, server: &Server) -> Result<ClientPool, Error> {
    ClientPool::builder()
        .max_total_per_addr(workers)
        .max_idle_per_addr(workers)
        .write_timeout(UPSTREAM_TIMEOUT)
        .metrics(&server.metrics_registry())
        .build()
}

/// The `--forward` address, resolved once at start-up.
fn resolve_forward(text: &str) -> Result<SocketAddr, Error> {
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| Error::Address {
            setting: "--forward".to_string(),
            value: text.to_string(),
        })
}

/// Why `rpc call` failed: the exit code and what to print on stderr.
struct Failure {
    exit: u8,
    message: String,
}

impl Failure {
    /// Exit `exit`, printing `rpc call: {why}`.
    fn new(exit: u8, why: impl std::fmt::Display) -> Failure {
        Failure {
            exit,
            message: format!("rpc call: {why}"),
        }
    }
}

/// `rpc call`: exit 0 with the result on stdout; 1 with `error CODE:
/// MESSAGE` for an error reply, or a message when the server cannot be
/// reached or does not answer in time; 2 for bad usage.
fn call(args: &CallArgs) -> ExitCode {
    let tracer = match TraceOptions::from_flag_or_env(args.otlp_endpoint.as_deref())
        .map(|options| options.default_service_name("rpc").start())
        .transpose()
    {
        Ok(tracer) => tracer,
        Err(e) => {
            eprintln!("rpc call: {e}");
            return ExitCode::from(2);
        }
    };
    // The call's span is recorded on this thread, then exported before exit.
    let guard = tracer.clone().map(syncnet::trace::install);
    let done = call_once(args);
    drop(guard);
    if let Some(tracer) = tracer {
        tracer.shutdown(args.timeout);
    }
    match done {
        Ok(result) => {
            println!("{result}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{}", failure.message);
            ExitCode::from(failure.exit)
        }
    }
}

/// Sends one request (id 1) and returns its result as compact JSON.
fn call_once(args: &CallArgs) -> Result<String, Failure> {
    let params = match &args.params {
        Some(text) => {
            let raw: &RawValue = serde_json::from_str(text)
                .map_err(|e| Failure::new(2, format_args!("PARAMS_JSON is not JSON: {e}")))?;
            Some(RawValue::from_string(compact(raw.get())).map_err(|e| Failure::new(2, e))?)
        }
        None => None,
    };
    // The caller's span: the root of the trace (nothing recorded, nothing
    // sent, with tracing off).
    let mut span = ClientSpan::start(JsonRpc::RPC_SYSTEM, &args.method);
    if let Some(traceparent) = span.traceparent() {
        eprintln!("trace_id={}", traceparent.trace_id_hex());
    }
    let mut request = Vec::new();
    upstream::frame_request(
        &mut request,
        1,
        &args.method,
        params.as_deref(),
        Some(&span),
    )
    .map_err(|e| Failure::new(2, e))?;

    let deadline = Instant::now() + args.timeout;
    let mut client = Client::connect(args.connect.as_str(), args.timeout).map_err(|e| {
        // 2 for an address that does not parse, 1 when nobody answers.
        Failure::new(u8::try_from(e.exit_code()).unwrap_or(1), e)
    })?;
    span.set_peer(client.peer());
    let mut reply = Vec::new();
    let answered = upstream::exchange(&mut client, &request, &mut reply, deadline)
        .map_err(|e| Failure::new(1, format_args!("{}: {e}", args.connect)))
        .and_then(|()| upstream::read_reply(&reply, 1).map_err(|e| Failure::new(1, e)))
        .and_then(|outcome| match outcome {
            Outcome::Result(result) => Ok(compact(result.get())),
            Outcome::Error(error) => Err(Failure {
                exit: 1,
                message: format!("error {}: {}", error.code, error.message),
            }),
        });
    if let Err(failure) = &answered {
        span.set_error(failure.message.clone());
    }
    answered
}

/// Valid JSON without the whitespace between its tokens. (Re-serialising
/// through `serde_json::Value` would also reorder object members.)
fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}
