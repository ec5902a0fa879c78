//! The binary's side of the settings table (`src/config/table.rs`): from its
//! rows, [`serve_settings`] generates the `serve` flags (clap arguments with
//! their `SYNCNET_*` variables and defaults in `--help`), the `--config`
//! file's struct and the merge command line > environment > file > default.
//!
//! What differs between kinds of setting (how a duration or a list of
//! networks is parsed, shown and merged) is written once per kind in
//! [`kind`], not once per setting.

use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;

use clap::Arg;
use serde::de::DeserializeOwned;

use syncnet::{Cidr, Error, parse_duration};

/// One flag of `syncnet serve` as the table declares it.
#[derive(Debug, Clone)]
pub struct Flag {
    /// The TOML key, also the clap id: `max_conns_per_ip`.
    pub key: &'static str,
    /// The long flag without its dashes: `max-conns-per-ip`.
    pub long: &'static str,
    /// The environment variable: `SYNCNET_MAX_CONNS_PER_IP`.
    pub env: &'static str,
    /// What the library calls the setting in its errors: the
    /// [`ServerConfig`](syncnet::ServerConfig) field (`trusted_proxies`,
    /// `tls.cert`), or the key for a setting of the program.
    pub field: &'static str,
    /// The help text, without the default.
    pub help: &'static str,
    /// The default as `--help` shows it, if there is one to show.
    pub default: Option<String>,
    /// The kind's part of the clap argument: parser, action, value name.
    pub configure: fn(Arg) -> Arg,
}

impl Flag {
    /// `--key`.
    pub fn flag(&self) -> String {
        format!("--{}", self.long)
    }

    /// The clap argument: flag, variable, help with the default, and the
    /// kind's parser.
    pub fn arg(&self) -> Arg {
        let help = match &self.default {
            Some(default) => format!("{} [default: {default}]", self.help),
            None => self.help.to_string(),
        };
        let arg = Arg::new(self.key).long(self.long).env(self.env).help(help);
        (self.configure)(arg)
    }
}

/// `key` with `_` as `-`, at compile time (see [`long_of`]).
pub const fn dashed<const N: usize>(key: &str) -> [u8; N] {
    let key = key.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if key[i] == b'_' { b'-' } else { key[i] };
        i += 1;
    }
    out
}

/// `SYNCNET_` and `key` in upper case, at compile time (see [`env_of`]).
pub const fn env_name<const N: usize>(key: &str) -> [u8; N] {
    const PREFIX: &[u8] = b"SYNCNET_";
    let key = key.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < PREFIX.len() {
            PREFIX[i]
        } else {
            key[i - PREFIX.len()].to_ascii_uppercase()
        };
        i += 1;
    }
    out
}

/// The long flag of a key (`max_conns_per_ip` → `max-conns-per-ip`) as a
/// `&'static str`, computed at compile time: clap keeps `&'static str`s.
macro_rules! long_of {
    ($key:expr) => {{
        const KEY: &str = $key;
        const BYTES: [u8; KEY.len()] = $crate::cli::settings::dashed(KEY);
        const LONG: &str = match ::std::str::from_utf8(&BYTES) {
            Ok(text) => text,
            Err(_) => panic!("a settings key is not UTF-8"),
        };
        LONG
    }};
}
pub(crate) use long_of;

/// The environment variable of a key (`workers` → `SYNCNET_WORKERS`), at
/// compile time.
macro_rules! env_of {
    ($key:expr) => {{
        const KEY: &str = $key;
        const BYTES: [u8; KEY.len() + 8] = $crate::cli::settings::env_name(KEY);
        const ENV: &str = match ::std::str::from_utf8(&BYTES) {
            Ok(text) => text,
            Err(_) => panic!("a settings key is not UTF-8"),
        };
        ENV
    }};
}
pub(crate) use env_of;

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
    (cli_type Networks) => { Vec<::syncnet::Cidr> };
    (cli_type Switch) => { bool };
    (cli_type Path) => { Option<::std::path::PathBuf> };
    (cli_type Names) => { Vec<String> };

    (file_type Value<$t:ty>) => { Option<$t> };
    (file_type Parsed<$t:ty>) => { Option<String> };
    (file_type Duration) => { Option<String> };
    (file_type AddressOrOff) => { Option<String> };
    (file_type Networks) => { Option<Vec<String>> };
    (file_type Switch) => { Option<bool> };
    (file_type Path) => { Option<::std::path::PathBuf> };
    (file_type Names) => { Option<Vec<String>> };

    (arg Value<$t:ty>, $arg:expr, $vn:literal) => {
        $arg.value_name($vn).value_parser(::clap::value_parser!($t)).action(::clap::ArgAction::Set)
    };
    (arg Parsed<$t:ty>, $arg:expr, $vn:literal) => { $crate::cli::settings::kind!(arg Value<$t>, $arg, $vn) };
    (arg Duration, $arg:expr, $vn:literal) => {
        $arg.value_name($vn).value_parser($crate::cli::duration).action(::clap::ArgAction::Set)
    };
    (arg AddressOrOff, $arg:expr, $vn:literal) => {
        $crate::cli::settings::kind!(arg Value<String>, $arg, $vn)
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
        $crate::cli::settings::kind!(arg Value<::std::path::PathBuf>, $arg, $vn)
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
        $crate::cli::settings::parsed($cli, $file, $path, $key)
    };
    (merge Duration, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        $crate::cli::settings::duration($cli, $file, $path, $key)
    };
    (merge AddressOrOff, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        Ok::<_, ::syncnet::Error>($cli.or($file).map(|text| (text != "off").then_some(text)))
    };
    (merge Networks, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        $crate::cli::settings::networks($cli, $file, $path, $key)
    };
    (merge Switch, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        Ok::<_, ::syncnet::Error>(if $cli { Some(true) } else { $file })
    };
    (merge Path, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        Ok::<_, ::syncnet::Error>($cli.or($file))
    };
    (merge Names, $cli:expr, $file:expr, $path:expr, $key:expr) => {
        Ok::<_, ::syncnet::Error>($crate::cli::settings::pick_list($cli, $file))
    };

    (shown Value<$t:ty>, $default:expr) => { Some($default.to_string()) };
    (shown Duration, $default:expr) => { Some(::syncnet::format_duration($default)) };
    (shown AddressOrOff, $default:expr) => {
        Some($default.clone().unwrap_or_else(|| "off".to_string()))
    };
    (shown Parsed<$t:ty>) => { Some($crate::cli::settings::shown_parsed(<$t>::default())) };
    (shown $kind:ident $(, $default:expr)?) => { None::<String> };

    (repeatable Networks) => { true };
    (repeatable Names) => { true };
    (repeatable $kind:ident $(<$t:ty>)?) => { false };
}
pub(crate) use kind;

/// A `Flag` for each flag of one row of the table (used by [`serve_settings`]).
macro_rules! describe_row {
    // One flag sets the field.
    ($flags:ident, $defaults:ident; [$field:ident]
        [$key:ident : $kind:ident $(<$kty:ty>)?, $vn:literal, $help:literal $(, $shown:literal)?]
        [] []) => {
        $flags.push($crate::cli::settings::Flag {
            key: stringify!($key),
            long: $crate::cli::settings::long_of!(stringify!($key)),
            env: $crate::cli::settings::env_of!(stringify!($key)),
            field: stringify!($field),
            help: $help,
            default: None$(.or(Some(String::from($shown))))?
                .or_else(|| $crate::cli::settings::kind!(shown $kind $(<$kty>)?, $defaults.$field)),
            configure: |arg| $crate::cli::settings::kind!(arg $kind $(<$kty>)?, arg, $vn),
        });
    };
    // Several flags, combined into the field by a function.
    ($flags:ident, $defaults:ident; [$field:ident] []
        [$assemble:ident; $( $key:ident ($lib:literal) : $kind:ident, $vn:literal, $help:literal; )*]
        []) => {
        $(
            $flags.push($crate::cli::settings::Flag {
                key: stringify!($key),
                long: $crate::cli::settings::long_of!(stringify!($key)),
                env: $crate::cli::settings::env_of!(stringify!($key)),
            field: $lib,
                help: $help,
                default: None,
                configure: |arg| $crate::cli::settings::kind!(arg $kind, arg, $vn),
            });
        )*
    };
    // A field without a flag.
    ($flags:ident, $defaults:ident; [$field:ident] [] [] []) => {};
    // A flag of the program.
    ($flags:ident, $defaults:ident; [] [] []
        [$key:ident : $kind:ident $(<$kty:ty>)?, $vn:literal, $help:literal $(, $shown:literal)?]) => {
        $flags.push($crate::cli::settings::Flag {
            key: stringify!($key),
            long: $crate::cli::settings::long_of!(stringify!($key)),
            env: $crate::cli::settings::env_of!(stringify!($key)),
            field: stringify!($key),
            help: $help,
            default: None$(.or(Some(String::from($shown))))?
                .or_else(|| $crate::cli::settings::kind!(shown $kind $(<$kty>)?)),
            configure: |arg| $crate::cli::settings::kind!(arg $kind $(<$kty>)?, arg, $vn),
        });
    };
}
pub(crate) use describe_row;

/// Merges one row of the table into the configuration (used by
/// [`serve_settings`]).
macro_rules! merge_row {
    ($config:ident, $program:ident, $flags:ident, $file:ident, $path:ident; [$field:ident]
        [$key:ident : $kind:ident $(<$kty:ty>)?] [] []) => {
        let merged = $crate::cli::settings::kind!(
            merge $kind $(<$kty>)?, $flags.$key, $file.$key, $path, stringify!($key)
        )?;
        if let Some(value) = merged {
            $config.$field = value;
        }
    };
    ($config:ident, $program:ident, $flags:ident, $file:ident, $path:ident; [$field:ident] []
        [$assemble:ident; $( $key:ident : $kind:ident; )*] []) => {
        $(
            let $key = $crate::cli::settings::kind!(
                merge $kind, $flags.$key, $file.$key, $path, stringify!($key)
            )?;
        )*
        $config.$field = $assemble($($key),*)?;
    };
    ($config:ident, $program:ident, $flags:ident, $file:ident, $path:ident; [$field:ident] [] [] []) => {};
    ($config:ident, $program:ident, $flags:ident, $file:ident, $path:ident; [] [] []
        [$key:ident : $kind:ident $(<$kty:ty>)?]) => {
        $program.$key = $crate::cli::settings::kind!(
            merge $kind $(<$kty>)?, $flags.$key, $file.$key, $path, stringify!($key)
        )?;
    };
}
pub(crate) use merge_row;

/// Generates, from the rows of `syncnet::settings_table!`:
///
/// - `SettingFlags`: every flag's value from the command line or the
///   environment, with `clap::Args` (one argument per flag, in table order);
/// - `FileSettings`: the `--config` file, with the same keys in the same order
///   (serde names an unknown key);
/// - `ProgramSettings`: the values of the `program` rows (`log_format`);
/// - `describe()`: every [`Flag`], for clap, the reference and error messages;
/// - `merge()`: command line or environment > file > `ServerConfig::default()`.
///
/// Expand it where the `from` functions (`tls_settings`) are in scope.
macro_rules! serve_settings {
    ($(
        $( $(#[doc = $doc:literal])* field $field:ident : $fty:ty = $default:expr,
            builder $builder:ident $(($method:ident))? )?
        $( $(,)? flag $key:ident : $kind:ident $(<$kty:ty>)?, $vn:literal, $help:literal
            $(, default $shown:literal)? )?
        $( , from $assemble:ident {
            $( $pkey:ident ($plib:literal) : $pkind:ident, $pvn:literal, $phelp:literal; )*
        } )?
        $( program $gkey:ident : $gkind:ident $(<$gty:ty>)?, $gvn:literal, $ghelp:literal
            $(, default $gshown:literal)? )?
        ;
    )*) => {
        /// The flags of the settings table, as the command line or the
        /// environment gives them (clap reads the `SYNCNET_*` variables).
        #[derive(Debug, Default)]
        pub struct SettingFlags {
            $(
                $( $key: $crate::cli::settings::kind!(cli_type $kind $(<$kty>)?), )?
                $( $( $pkey: $crate::cli::settings::kind!(cli_type $pkind), )* )?
                $( $gkey: $crate::cli::settings::kind!(cli_type $gkind $(<$gty>)?), )?
            )*
        }

        impl ::clap::FromArgMatches for SettingFlags {
            fn from_arg_matches(matches: &::clap::ArgMatches) -> Result<Self, ::clap::Error> {
                Self::from_arg_matches_mut(&mut matches.clone())
            }

            fn from_arg_matches_mut(
                matches: &mut ::clap::ArgMatches,
            ) -> Result<Self, ::clap::Error> {
                Ok(SettingFlags {
                    $(
                        $( $key: $crate::cli::settings::kind!(
                            take $kind $(<$kty>)?, matches, stringify!($key)), )?
                        $( $( $pkey: $crate::cli::settings::kind!(
                            take $pkind, matches, stringify!($pkey)), )* )?
                        $( $gkey: $crate::cli::settings::kind!(
                            take $gkind $(<$gty>)?, matches, stringify!($gkey)), )?
                    )*
                })
            }

            fn update_from_arg_matches(
                &mut self,
                matches: &::clap::ArgMatches,
            ) -> Result<(), ::clap::Error> {
                *self = Self::from_arg_matches(matches)?;
                Ok(())
            }
        }

        impl ::clap::Args for SettingFlags {
            fn augment_args(cmd: ::clap::Command) -> ::clap::Command {
                describe().iter().fold(cmd, |cmd, flag| cmd.arg(flag.arg()))
            }

            fn augment_args_for_update(cmd: ::clap::Command) -> ::clap::Command {
                Self::augment_args(cmd)
            }
        }

        /// The same settings as a `--config` file gives them.
        #[derive(Debug, Default, ::serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileSettings {
            $(
                $( $key: $crate::cli::settings::kind!(file_type $kind $(<$kty>)?), )?
                $( $( $pkey: $crate::cli::settings::kind!(file_type $pkind), )* )?
                $( $gkey: $crate::cli::settings::kind!(file_type $gkind $(<$gty>)?), )?
            )*
        }

        /// The values of the settings that belong to the program, not to a
        /// server; `None` = the default.
        #[derive(Debug, Default)]
        struct ProgramSettings {
            $( $(
                $gkey: $crate::cli::settings::kind!(cli_type $gkind $(<$gty>)?),
            )? )*
        }

        /// Every flag of the table, in order.
        pub fn describe() -> Vec<$crate::cli::settings::Flag> {
            let defaults = ::syncnet::ServerConfig::default();
            let mut flags = Vec::new();
            $(
                $crate::cli::settings::describe_row!(flags, defaults;
                    [$( $field )?]
                    [$( $key : $kind $(<$kty>)?, $vn, $help $(, $shown)? )?]
                    [$( $assemble; $( $pkey ($plib) : $pkind, $pvn, $phelp; )* )?]
                    [$( $gkey : $gkind $(<$gty>)?, $gvn, $ghelp $(, $gshown)? )?]
                );
            )*
            flags
        }

        /// Command line or environment > file > default, one row at a time;
        /// the first value that does not parse is the error.
        fn merge(
            flags: SettingFlags,
            file: FileSettings,
            path: &::std::path::Path,
        ) -> Result<(::syncnet::ServerConfig, ProgramSettings), ::syncnet::Error> {
            let mut config = ::syncnet::ServerConfig::default();
            let mut program = ProgramSettings::default();
            $(
                $crate::cli::settings::merge_row!(config, program, flags, file, path;
                    [$( $field )?]
                    [$( $key : $kind $(<$kty>)? )?]
                    [$( $assemble; $( $pkey : $pkind; )* )?]
                    [$( $gkey : $gkind $(<$gty>)? )?]
                );
            )*
            Ok((config, program))
        }
    };
}
pub(crate) use serve_settings;

/// Reads and parses a `--config` file; an error names the file and, for an
/// unknown key, the key.
pub fn load_file<T: DeserializeOwned>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e.to_string()))?;
    toml::from_str(&text).map_err(|e| file_error(path, e.message().to_string()))
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
    fn keys_become_flags_and_variables() {
        assert_eq!(long_of!("max_conns_per_ip"), "max-conns-per-ip");
        assert_eq!(env_of!("max_conns_per_ip"), "SYNCNET_MAX_CONNS_PER_IP");
        assert_eq!(long_of!("workers"), "workers");
        assert_eq!(env_of!("workers"), "SYNCNET_WORKERS");
    }

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
