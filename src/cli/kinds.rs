//! What each kind of setting of the table is (`Value<T>`, `Duration`,
//! `Networks`, ...): its types on the command line and in the `--config`
//! file, its clap parser, how it merges and how its default is shown. Written
//! once per kind, used by the generators of [`settings`](super::settings).

use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;

use serde::de::DeserializeOwned;

use syncnet::{Cidr, Error, parse_duration};

/// What each kind of setting is, per operation:
///
/// - `cli_type KIND`: the type clap fills (the command line or environment);
/// - `file_type KIND`: the type serde fills from the `--config` file;
/// - `arg KIND, ARG, "VALUE"`: the clap argument's parser, action, value name;
/// - `take KIND, MATCHES, ID`: the value out of clap's matches;
/// - `merge KIND, CLI, FILE, PATH, KEY`: `Ok(Some(value))` when the command
///   line, environment or file gives one (file values are checked even when
///   the command line wins), `Ok(None)` for the default;
/// - `shown KIND, DEFAULT`: the default as `--help` shows it.
/// - `repeatable KIND`: whether the flag takes a list.
macro_rules! kind {
    (cli_type Value<$t:ty>) => { Option<$t> };
    (cli_type Parsed<$t:ty>) => { Option<$t> };
    (cli_type Duration) => { Option<::std::time::Duration> };
    (cli_type AddressOrOff) => { Option<String> };
    (cli_type Endpoint) => { Option<String> };
    (cli_type Networks) => { Vec<::syncnet::Cidr> };
    (cli_type Switch) => { bool };
    (cli_type Path) => { Option<::std::path::PathBuf> };
    (cli_type Names) => { Vec<String> };

    (file_type Value<$t:ty>) => { Option<$t> };
    (file_type Parsed<$t:ty>) => { Option<String> };
    (file_type Duration) => { Option<String> };
    (file_type AddressOrOff) => { Option<String> };
    (file_type Endpoint) => { Option<String> };
    (file_type Networks) => { Option<Vec<String>> };
    (file_type Switch) => { Option<bool> };
    (file_type Path) => { Option<::std::path::PathBuf> };
    (file_type Names) => { Option<Vec<String>> };

    // `--recv-buffer -1` is a bad value of `--recv-buffer`, not an unknown flag.
    (arg Value<$t:ty>, $arg:expr, $vn:literal) => {
        $arg.value_name($vn)
            .value_parser(::clap::value_parser!($t))
            .action(::clap::ArgAction::Set)
            .allow_negative_numbers(true)
    };
    (arg Parsed<$t:ty>, $arg:expr, $vn:literal) => { $crate::cli::kinds::kind!(arg Value<$t>, $arg, $vn) };
    (arg Duration, $arg:expr, $vn:literal) => {
        $arg.value_name($vn)
            .value_parser($crate::cli::duration)
            .action(::clap::ArgAction::Set)
            .allow_negative_numbers(true)
    };
    (arg AddressOrOff, $arg:expr, $vn:literal) => {
        $crate::cli::kinds::kind!(arg Value<String>, $arg, $vn)
    };
    (arg Endpoint, $arg:expr, $vn:literal) => {
        $arg.value_name($vn).value_parser($crate::cli::kinds::endpoint_arg).action(::clap::ArgAction::Set)
    };
    (arg Networks, $arg:expr, $vn:literal) => {
        $arg.value_name($vn)
            .value_parser(::clap::value_parser!(::syncnet::Cidr))
            .action(::clap::ArgAction::Append)
            .value_delimiter(',')
    };
    (arg Switch, $arg:expr, $vn:literal) => {
        $arg.value_parser(::clap::value_parser!(bool)).action(::clap::ArgAction::SetTrue)
    };
    (arg Path, $arg:expr, $vn:literal) => {
        $crate::cli::kinds::kind!(arg Value<::std::path::PathBuf>, $arg, $vn)
    };
    (arg Names, $arg:expr, $vn:literal) => {
        $arg.value_name($vn)
            .value_parser(::clap::value_parser!(String))
            .action(::clap::ArgAction::Append)
            .value_delimiter(',')
    };

    (take Value<$t:ty>, $m:expr, $id:expr) => { $m.remove_one::<$t>($id) };
    (take Parsed<$t:ty>, $m:expr, $id:expr) => { $m.remove_one::<$t>($id) };
    (take Duration, $m:expr, $id:expr) => { $m.remove_one::<::std::time::Duration>($id) };
    (take AddressOrOff, $m:expr, $id:expr) => { $m.remove_one::<String>($id) };
    (take Endpoint, $m:expr, $id:expr) => { $m.remove_one::<String>($id) };
    (take Networks, $m:expr, $id:expr) => {
        $m.remove_many::<::syncnet::Cidr>($id).map(|v| v.collect()).unwrap_or_default()
    };
    (take Switch, $m:expr, $id:expr) => { $m.get_flag($id) };
    (take Path, $m:expr, $id:expr) => { $m.remove_one::<::std::path::PathBuf>($id) };
    (take Names, $m:expr, $id:expr) => {
        $m.remove_many::<String>($id).map(|v| v.collect()).unwrap_or_default()
    };

    (merge Value<$t:ty>, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        Ok::<_, ::syncnet::Error>($cli.or($file))
    };
    (merge Parsed<$t:ty>, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        $crate::cli::kinds::parsed($cli, $file, $path, $key)
    };
    (merge Duration, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        $crate::cli::kinds::duration($cli, $file, $path, $key)
    };
    (merge AddressOrOff, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        Ok::<_, ::syncnet::Error>($cli.or($file).map(|text| (text != "off").then_some(text)))
    };
    (merge Networks, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        $crate::cli::kinds::networks($cli, $file, $path, $key)
    };
    (merge Endpoint, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        $crate::cli::kinds::endpoint($cli, $file, $path, $key)
    };
    (merge Switch, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        Ok::<_, ::syncnet::Error>(if $cli { Some(true) } else { $file })
    };
    (merge Path, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        Ok::<_, ::syncnet::Error>($cli.or($file))
    };
    (merge Names, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        Ok::<_, ::syncnet::Error>($crate::cli::kinds::pick_list($cli, $file))
    };

    (shown Value<$t:ty>, $default:expr) => { Some($default.to_string()) };
    (shown Duration, $default:expr) => { Some(::syncnet::format_duration($default)) };
    (shown AddressOrOff, $default:expr) => {
        Some($default.clone().unwrap_or_else(|| "off".to_string()))
    };
    (shown Parsed<$t:ty>) => { Some($crate::cli::kinds::shown_parsed(<$t>::default())) };
    (shown Value<$t:ty>) => { None::<String> };
    (shown $kind:ident $(, $default:expr)?) => { None::<String> };

    (repeatable Networks) => { true };
    (repeatable Names) => { true };
    (repeatable $kind:ident $(<$t:ty>)?) => { false };
}
pub(crate) use kind;

/// Reads and parses a `--config` file; an error names the file, the line
/// and, where the line has one, the key (`line 2, key workers: invalid
/// type: string "lots", expected usize`).
pub fn load_file<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e.to_string()))?;
    toml::from_str(&text).map_err(|e| {
        let place = e.span().map(|span| place_of(&text, span.start));
        let message = match place {
            Some(place) => format!("{place}: {}", e.message()),
            None => e.message().to_string(),
        };
        file_error(path, message)
    })
}

/// `line N` of byte `offset` in `text`, with the key that line assigns
/// (`line N, key K`) when it is a `key = value` line.
fn place_of(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_number = text[..offset].matches('\n').count() + 1;
    let line = text.lines().nth(line_number - 1).unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() && !key.trim_start().starts_with('#') => {
            format!("line {line_number}, key {}", key.trim())
        }
        _ => format!("line {line_number}"),
    }
}

fn file_error(path: &Path, message: String) -> Error {
    Error::ConfigFile {
        path: path.to_path_buf(),
        message,
    }
}

/// A `Duration` setting: the command line's, else the file's (parsed, with
/// the key named when it does not parse).
pub fn duration(
    cli: Option<std::time::Duration>,
    file: Option<String>,
    path: &Path,
    key: &str,
) -> Result<Option<std::time::Duration>, Error> {
    let file = file
        .map(|text| parse_duration(&text).map_err(|e| file_error(path, format!("{key}: {e}"))))
        .transpose()?;
    Ok(cli.or(file))
}

/// A `Parsed<T>` setting: the command line's, else the file's string parsed.
pub fn parsed<T>(
    cli: Option<T>,
    file: Option<String>,
    path: &Path,
    key: &str,
) -> Result<Option<T>, Error>
where
    T: FromStr,
    T::Err: Display,
{
    let file = file
        .map(|text| {
            text.parse::<T>()
                .map_err(|e| file_error(path, format!("{key}: {e}")))
        })
        .transpose()?;
    Ok(cli.or(file))
}

/// clap's parser for an `Endpoint` flag: an OTLP/HTTP base URL
/// ([`TraceOptions::check_endpoint`](syncnet::trace::TraceOptions::check_endpoint)).
pub fn endpoint_arg(text: &str) -> Result<String, String> {
    syncnet::trace::TraceOptions::check_endpoint(text).map(|()| text.to_string())
}

/// An `Endpoint` setting: the command line's, else the file's, checked with
/// the key named.
pub fn endpoint(
    cli: Option<String>,
    file: Option<String>,
    path: &Path,
    key: &str,
) -> Result<Option<String>, Error> {
    if let Some(text) = &file {
        endpoint_arg(text).map_err(|e| file_error(path, format!("{key}: {e}")))?;
    }
    Ok(cli.or(file))
}

/// A `Networks` setting: the command line's list when it has one, else the
/// file's (every entry parsed, with the key named).
pub fn networks(
    cli: Vec<Cidr>,
    file: Option<Vec<String>>,
    path: &Path,
    key: &str,
) -> Result<Option<Vec<Cidr>>, Error> {
    let file = file
        .map(|texts| {
            texts
                .iter()
                .map(|text| {
                    text.parse::<Cidr>()
                        .map_err(|e| file_error(path, format!("{key}: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(pick_list(cli, file))
}

/// A repeatable flag: the command line's (or environment's) values when
/// given, else the file's.
pub fn pick_list<T>(cli: Vec<T>, file: Option<Vec<T>>) -> Option<Vec<T>> {
    if cli.is_empty() { file } else { Some(cli) }
}

/// A `Parsed<T>` default as `--help` shows it: its `Debug` name in lower
/// case, which for the unit enums used here is what `FromStr` reads (a test
/// checks it parses back).
pub fn shown_parsed<T: std::fmt::Debug>(value: T) -> String {
    format!("{value:?}").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_on_the_command_line_replaces_the_files() {
        assert_eq!(pick_list(vec![1], Some(vec![2, 3])), Some(vec![1]));
        assert_eq!(pick_list(Vec::new(), Some(vec![2, 3])), Some(vec![2, 3]));
        assert_eq!(pick_list::<u8>(Vec::new(), None), None);
    }

    #[test]
    fn the_shown_log_format_parses_back() {
        let shown = shown_parsed(syncnet::LogFormat::default());
        assert_eq!(shown, "auto");
        assert_eq!(shown.parse(), Ok(syncnet::LogFormat::default()));
    }
}
