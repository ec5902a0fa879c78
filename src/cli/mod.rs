//! The command line: clap definitions of the subcommands, and for `serve`
//! the merge of command line, environment, `--config` TOML file and defaults
//! (command line > environment > file > default). clap reads `SYNCNET_*`
//! variables itself, so a value from clap is already "command line or
//! environment".
//!
//! The `serve` flags are generated from the settings table
//! (`src/config/table.rs`) by [`settings`]; `docs/reference.md` lists every
//! subcommand's flags (a test renders its tables from these definitions).

#[cfg(feature = "bench")]
mod bench;
mod client;
mod kinds;
mod proxy;
#[cfg(test)]
mod reference;
mod serve;
mod settings;

use std::fmt::Write as _;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use syncnet::Error;

#[cfg(feature = "bench")]
pub use bench::BenchArgs;
pub use client::ClientArgs;
pub use proxy::ProxyArgs;
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
    /// Proxy TCP connections to upstreams (layer 4), with every flag of serve.
    Proxy(Box<ProxyArgs>),
    /// Connect to a server: send --message and print the reply, or copy stdin/stdout.
    Client(ClientArgs),
    /// Load-test an echo-like service: pingpong, bulk or hold, every echoed byte verified.
    #[cfg(feature = "bench")]
    Bench(BenchArgs),
}

/// clap's parser for a duration flag (`30s`).
fn duration(text: &str) -> Result<Duration, String> {
    syncnet::parse_duration(text)
}

/// When clap rejected a value that came from an environment variable (the
/// flag itself is not on the command line), the one-line configuration error
/// that names the variable: `invalid value 'abc' for SYNCNET_WORKERS (--workers
/// <N>): invalid digit found in string`. `None` for every other error, which
/// keeps clap's own wording.
pub fn env_value_error(error: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() == ErrorKind::InvalidUtf8 {
        return env_not_utf8(args);
    }
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(shown)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    // `--workers <N>` → `workers`.
    let long = shown.strip_prefix("--")?.split([' ', '=']).next()?;
    let given = |arg: &std::ffi::OsString| {
        arg.to_str().is_some_and(|a| {
            a.strip_prefix("--")
                .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
        })
    };
    if args.iter().any(given) {
        return None;
    }
    let subcommand = args.get(1)?.to_str()?;
    let command = Cli::command();
    let arg = command
        .find_subcommand(subcommand)?
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    let env = arg.get_env()?.to_str()?;
    std::env::var_os(env)?;
    // clap's first line: `error: invalid value 'abc' for '--workers <N>': why`.
    let rendered = error.to_string();
    let first = rendered.lines().next()?.trim_start_matches("error: ");
    Some(first.replacen(&format!("'{shown}'"), &format!("{env} ({shown})"), 1))
}

/// When clap found bytes that are not UTF-8 (it does not say where): the
/// error naming the first variable of the subcommand's flags that holds
/// such a value, unless its flag is on the command line. `None` when no
/// variable does (the bytes were on the command line).
fn env_not_utf8(args: &[std::ffi::OsString]) -> Option<String> {
    let subcommand = args.get(1)?.to_str()?;
    let command = Cli::command();
    let on_command_line = |long: &str| {
        args.iter().any(|arg| {
            arg.to_str().is_some_and(|a| {
                a.strip_prefix("--")
                    .is_some_and(|a| a == long || a.starts_with(&format!("{long}=")))
            })
        })
    };
    command
        .find_subcommand(subcommand)?
        .get_arguments()
        .find_map(|arg| {
            let (long, env) = (arg.get_long()?, arg.get_env()?);
            let value = std::env::var_os(env)?;
            // A path may hold any bytes.
            let any_bytes =
                arg.get_value_parser().type_id() == std::any::TypeId::of::<std::path::PathBuf>();
            if value.to_str().is_some() || any_bytes || on_command_line(long) {
                return None;
            }
            let env = env.to_string_lossy();
            let shown = match arg.get_value_names() {
                Some([name, ..]) => format!("--{long} <{name}>"),
                _ => format!("--{long}"),
            };
            Some(format!(
                "invalid value for {env} ({shown}): not valid UTF-8"
            ))
        })
}

/// The binary's wording of an error. The library names a setting by its
/// field, quoted (`` `workers` ``, `` `tls.cert` ``); here each becomes the
/// flag that sets it (`--workers`, `--tls-cert`). Then come the error's
/// sources, if any, each once.
pub fn error_message(error: &Error) -> String {
    let mut message = error.to_string();
    if matches!(
        error,
        Error::Config { .. } | Error::Tls { .. } | Error::Address { .. } | Error::Bind { .. }
    ) {
        message = name_flags(&message);
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let _ = write!(message, ": {cause}");
        source = cause.source();
    }
    message
}

/// `text` with each `` `name` `` that [`flag_of`] knows replaced by its flag;
/// other quoted text stays as it is.
fn name_flags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('`') {
        let quoted = &rest[open + 1..];
        let Some(close) = quoted.find('`') else {
            break;
        };
        let name = &quoted[..close];
        out.push_str(&rest[..open]);
        match flag_of(name) {
            Some(flag) => out.push_str(&flag),
            None => {
                out.push('`');
                out.push_str(name);
                out.push('`');
            }
        }
        rest = &quoted[close + 1..];
    }
    out.push_str(rest);
    out
}

/// The flag that sets `name`: `name` itself when it is a flag (`--tls`); the
/// flag of a field or key of the settings table (`handshake_timeout` →
/// `--tls-handshake-timeout`, `tls.allow_names` → `--tls-allow-name`); or the
/// flag of `client` or `bench` whose id is `name` with `.` as `_` (`tls.ca` →
/// `--tls-ca`, `connections` → `--connections`).
fn flag_of(name: &str) -> Option<String> {
    if name.starts_with("--") {
        return Some(name.to_string());
    }
    if let Some(flag) = serve::describe()
        .iter()
        .find(|flag| flag.field == name || flag.key == name)
    {
        return Some(flag.flag());
    }
    let id = name.replace('.', "_");
    Cli::command()
        .get_subcommands()
        .flat_map(|sub| sub.get_arguments())
        .find(|arg| arg.get_id() == id.as_str())
        .and_then(|arg| arg.get_long())
        .map(|long| format!("--{long}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_error(setting: &str, message: &str) -> Error {
        Error::Config {
            setting: setting.into(),
            message: message.into(),
        }
    }

    #[test]
    fn library_settings_become_flags() {
        let cases = [
            (
                config_error("workers", "must be at least 1, got 0"),
                "invalid --workers: must be at least 1, got 0",
            ),
            (
                config_error(
                    "trusted_proxies",
                    "needs `proxy_protocol` (without it no PROXY header is read)",
                ),
                "invalid --trusted-proxy: needs --proxy-protocol (without it no PROXY header is read)",
            ),
            (
                config_error("handshake_timeout", "must be above 0"),
                "invalid --tls-handshake-timeout: must be above 0",
            ),
            (
                config_error("--tls-cert", "needs --tls-key FILE"),
                "invalid --tls-cert: needs --tls-key FILE",
            ),
            (
                Error::Tls {
                    setting: "tls.key",
                    message: "`tls.key` k.pem: the key does not match the certificate in `tls.cert` tls.cert"
                        .into(),
                },
                "--tls-key k.pem: the key does not match the certificate in --tls-cert tls.cert",
            ),
            (
                Error::Tls {
                    setting: "tls",
                    message: "`tls` needs `tls.ca` FILE (syncnet ships no trust store)".into(),
                },
                "--tls needs --tls-ca FILE (syncnet ships no trust store)",
            ),
            (
                Error::Tls {
                    setting: "tls.allow_names",
                    message: "`tls.allow_names` needs `tls.client_ca` FILE".into(),
                },
                "--tls-allow-name needs --tls-client-ca FILE",
            ),
            (
                Error::Tls {
                    setting: "tls.server_name",
                    message: "`tls.server_name` \"a b\": not a valid DNS name".into(),
                },
                "--tls-server-name \"a b\": not a valid DNS name",
            ),
            (
                Error::Address {
                    setting: "admin".into(),
                    value: "x".into(),
                },
                "invalid --admin: 'x' is not a valid socket address",
            ),
            (
                Error::Address {
                    setting: "--listen".into(),
                    value: "x".into(),
                },
                "invalid --listen: 'x' is not a valid socket address",
            ),
            (
                Error::Address {
                    setting: "connect".into(),
                    value: "x".into(),
                },
                "invalid --connect: 'x' is not a valid socket address",
            ),
            (
                config_error("connections", "must be at least 1"),
                "invalid --connections: must be at least 1",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error_message(&error), expected);
        }
    }

    #[test]
    fn other_quoted_text_and_file_errors_stay() {
        let error = config_error("no_such_setting", "see `man 7 tcp`, and a lone ` here");
        assert_eq!(
            error_message(&error),
            "invalid `no_such_setting`: see `man 7 tcp`, and a lone ` here"
        );
        let error = Error::ConfigFile {
            path: "x.toml".into(),
            message: "unknown field `wrokers`, expected one of `listen`, `workers`".into(),
        };
        assert_eq!(
            error_message(&error),
            "config file x.toml: unknown field `wrokers`, expected one of `listen`, `workers`"
        );
    }

    /// Every setting the library can name has a flag of `serve`.
    #[test]
    fn every_field_of_the_table_has_a_flag() {
        let serve = Cli::command();
        let serve = serve.find_subcommand("serve").unwrap();
        for flag in serve::describe() {
            assert_eq!(flag_of(flag.field), Some(flag.flag()));
            let arg = serve.get_arguments().find(|a| a.get_id() == flag.key);
            let arg = arg.unwrap_or_else(|| panic!("no argument {}", flag.key));
            assert_eq!(arg.get_long(), Some(flag.long));
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(flag.env));
        }
    }

    /// `syncnet proxy` takes every flag `serve` has.
    #[test]
    fn proxy_takes_every_flag_of_serve() {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").unwrap();
        let proxy = cli.find_subcommand("proxy").unwrap();
        for arg in serve.get_arguments() {
            assert!(
                proxy
                    .get_arguments()
                    .any(|p| p.get_id() == arg.get_id() && p.get_long() == arg.get_long()),
                "proxy lacks {:?}",
                arg.get_long()
            );
        }
    }
}
