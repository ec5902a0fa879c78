//! The `syncnet` binary: parse the command line, run, map errors to exit codes.
//!
//! Exit codes (see `docs/reference.md`): 0 clean exit, 1 runtime failure, 2
//! bad usage or configuration, 130 a second signal forced the exit. Error
//! messages name flags: [`cli::error_message`] words the library's errors.

mod cli;
mod client_cmd;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use syncnet::trace::TraceOptions;
use syncnet::{Builder, Conn, Error, Server, ServerConfig};

fn main() -> ExitCode {
    // No subcommand is `syncnet serve`: with no arguments at all, or with
    // flags only (`syncnet --listen 0.0.0.0:7000`), except the global
    // `--help`/`--version`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first = args.get(1).and_then(|a| a.to_str()).map(str::to_owned);
    match first.as_deref() {
        None => args.push("serve".into()),
        Some("-h" | "--help" | "-V" | "--version") => {}
        Some(flag) if flag.starts_with('-') => args.insert(1, "serve".into()),
        Some(_) => {}
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => match cli::env_value_error(&e, &args) {
            // A bad value from the environment is a configuration error:
            // one plain line naming the variable.
            Some(message) => {
                eprintln!("syncnet: error: {message}");
                return ExitCode::from(2);
            }
            None => e.exit(),
        },
    };
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Proxy(args) => proxy(*args),
        Command::Client(args) => client_cmd::run(&args),
        #[cfg(feature = "bench")]
        Command::Bench(args) => bench(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let message = cli::error_message(&e);
            // A configuration error (exit 2) is one plain line whatever the
            // log format, like clap's usage errors; a runtime failure goes
            // through the log when it is set up.
            if e.exit_code() != 2 && log::log_enabled!(log::Level::Error) {
                log::error!(target: "syncnet", exit_code = e.exit_code(); "{message}");
            } else {
                eprintln!("syncnet: error: {message}");
            }
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}

#[cfg(feature = "bench")]
fn bench(args: &cli::BenchArgs) -> Result<ExitCode, Error> {
    let report = syncnet::bench::run(&args.options()?)?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{report}");
    }
    Ok(ExitCode::from(
        u8::try_from(report.exit_code()).unwrap_or(1),
    ))
}

fn serve(args: cli::ServeArgs) -> Result<ExitCode, Error> {
    let (config, log_format, tracing) = args.resolve()?;
    syncnet::init_logging(log_format);
    builder(config, tracing)?
        .build()?
        .run(|conn: &mut Conn| syncnet::echo(conn))?;
    Ok(ExitCode::SUCCESS)
}

fn proxy(args: cli::ProxyArgs) -> Result<ExitCode, Error> {
    let (config, log_format, tracing, proxy) = args.resolve()?;
    syncnet::init_logging(log_format);
    let server = builder(config, tracing)?.build()?;
    let proxy = proxy.metrics(&server.metrics_registry()).build()?;
    server.run(proxy)?;
    Ok(ExitCode::SUCCESS)
}

/// The server's builder for `serve` and `proxy`. Started by systemd socket
/// activation, it takes the service's socket from descriptor 3 and, when a
/// second was passed, the admin endpoint's from descriptor 4, instead of
/// binding `--listen` and `--admin`; a flag that names another address than
/// the socket's is ignored with a warning. With `tracing`, spans go where
/// it says.
fn builder(config: ServerConfig, tracing: Option<TraceOptions>) -> Result<Builder, Error> {
    let mut builder = Server::builder();
    if let Some(options) = tracing {
        builder = builder.tracing(options);
    }
    let Some(activated) = syncnet::activation::from_env()? else {
        return Ok(builder.config(config));
    };
    note_inherited("--listen", Some(&config.listen), &activated.listen, 3);
    builder = builder.listener(activated.listen);
    if let Some(admin) = activated.admin {
        note_inherited("--admin", config.admin.as_deref(), &admin, 4);
        builder = builder.admin_listener(admin);
    }
    Ok(builder.config(config))
}

/// Logs the socket taken over from systemd: a warning when `flag` names
/// another address (it is ignored), else an info line.
fn note_inherited(flag: &str, given: Option<&str>, socket: &std::net::TcpListener, fd: u32) {
    let addr = socket
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    let same = given
        .and_then(|g| g.parse::<std::net::SocketAddr>().ok())
        .map(|g| g.to_string())
        == Some(addr.clone());
    let given = given.unwrap_or("off");
    if same {
        log::info!(target: "syncnet::server", fd, addr; "socket activation: using the socket passed on descriptor {fd} ({addr})");
    } else {
        log::warn!(target: "syncnet::server", fd, addr, ignored = given; "socket activation: {flag} {given} is ignored: using the socket passed on descriptor {fd} ({addr})");
    }
}
