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
use syncnet::{Conn, Error, Server};

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
    let cli = Cli::parse_from(args);
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
    let mut builder = Server::builder().config(config);
    if let Some(options) = tracing {
        builder = builder.tracing(options);
    }
    builder
        .build()?
        .run(|conn: &mut Conn| syncnet::echo(conn))?;
    Ok(ExitCode::SUCCESS)
}

fn proxy(args: cli::ProxyArgs) -> Result<ExitCode, Error> {
    let (config, log_format, tracing, proxy) = args.resolve()?;
    syncnet::init_logging(log_format);
    let mut builder = Server::builder().config(config);
    if let Some(options) = tracing {
        builder = builder.tracing(options);
    }
    let server = builder.build()?;
    let proxy = proxy.metrics(&server.metrics_registry()).build()?;
    server.run(proxy)?;
    Ok(ExitCode::SUCCESS)
}
