//! The binary's side of the settings table (`src/config/table.rs`): from its
//! rows, [`serve_settings`] generates the `serve` flags (clap arguments with
//! their `SYNCNET_*` variables and defaults in `--help`), the `--config`
//! file's struct and the merge command line > environment > file > default.
//!
//! What differs between kinds of setting (how a duration or a list of
//! networks is parsed, shown and merged) is written once per kind in
//! [`kinds`](super::kinds), not once per setting.

use clap::Arg;

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
                .or_else(|| $crate::cli::kinds::kind!(shown $kind $(<$kty>)?, $defaults.$field)),
            configure: |arg| $crate::cli::kinds::kind!(arg $kind $(<$kty>)?, arg, $vn),
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
                configure: |arg| $crate::cli::kinds::kind!(arg $kind, arg, $vn),
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
                .or_else(|| $crate::cli::kinds::kind!(shown $kind $(<$kty>)?)),
            configure: |arg| $crate::cli::kinds::kind!(arg $kind $(<$kty>)?, arg, $vn),
        });
    };
}
pub(crate) use describe_row;

/// Merges one row of the table into the configuration (used by
/// [`serve_settings`]).
macro_rules! merge_row {
    ($config:ident, $program:ident, $flags:ident, $file:ident, $path:ident; [$field:ident]
        [$key:ident : $kind:ident $(<$kty:ty>)?] [] []) => {
        let merged = $crate::cli::kinds::kind!(
            merge $kind $(<$kty>)?, $flags.$key, $file.$key, $path, stringify!($key)
        )?;
        if let Some(value) = merged {
            $config.$field = value;
        }
    };
    ($config:ident, $program:ident, $flags:ident, $file:ident, $path:ident; [$field:ident] []
        [$assemble:ident; $( $key:ident : $kind:ident; )*] []) => {
        $(
            let $key = $crate::cli::kinds::kind!(
                merge $kind, $flags.$key, $file.$key, $path, stringify!($key)
            )?;
        )*
        $config.$field = $assemble($($key),*)?;
    };
    ($config:ident, $program:ident, $flags:ident, $file:ident, $path:ident; [$field:ident] [] [] []) => {};
    ($config:ident, $program:ident, $flags:ident, $file:ident, $path:ident; [] [] []
        [$key:ident : $kind:ident $(<$kty:ty>)?]) => {
        $program.$key = $crate::cli::kinds::kind!(
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
                $( $key: $crate::cli::kinds::kind!(cli_type $kind $(<$kty>)?), )?
                $( $( $pkey: $crate::cli::kinds::kind!(cli_type $pkind), )* )?
                $( $gkey: $crate::cli::kinds::kind!(cli_type $gkind $(<$gty>)?), )?
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
                        $( $key: $crate::cli::kinds::kind!(
                            take $kind $(<$kty>)?, matches, stringify!($key)), )?
                        $( $( $pkey: $crate::cli::kinds::kind!(
                            take $pkind, matches, stringify!($pkey)), )* )?
                        $( $gkey: $crate::cli::kinds::kind!(
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
                $( $key: $crate::cli::kinds::kind!(file_type $kind $(<$kty>)?), )?
                $( $( $pkey: $crate::cli::kinds::kind!(file_type $pkind), )* )?
                $( $gkey: $crate::cli::kinds::kind!(file_type $gkind $(<$gty>)?), )?
            )*
        }

        /// The values of the settings that belong to the program, not to a
        /// server; `None` = the default.
        #[derive(Debug, Default)]
        struct ProgramSettings {
            $( $(
                $gkey: $crate::cli::kinds::kind!(cli_type $gkind $(<$gty>)?),
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

#[cfg(test)]
mod tests {
    #[test]
    fn keys_become_flags_and_variables() {
        assert_eq!(long_of!("max_conns_per_ip"), "max-conns-per-ip");
        assert_eq!(env_of!("max_conns_per_ip"), "SYNCNET_MAX_CONNS_PER_IP");
        assert_eq!(long_of!("workers"), "workers");
        assert_eq!(env_of!("workers"), "SYNCNET_WORKERS");
    }
}
