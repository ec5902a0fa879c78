//! `ServerConfig`: every server setting, its default, and its validation.
//!
//! The settings are rows of one table ([`table`]); this module expands the
//! rows into [`ServerConfig`], its `Default` and the `Builder`'s plain
//! setters. The binary expands the same rows into its flags, environment
//! variables and `--config` file (`src/cli/settings.rs`), so a setting's
//! name, default and help are written once.

mod duration;
mod table;
mod validate;

use std::time::Duration;

use crate::{Cidr, TlsSettings};

pub use duration::{format_duration, parse_duration};
pub use validate::{MAX_WORKERS_OR_QUEUE, MIN_WORKER_STACK_SIZE};

/// Default stack size of a worker thread: 256 KiB.
///
/// Chosen by measurement: a worker's stack high-water mark (read from
/// `/proc/PID/mem`) is about 9 KiB for a plain echo connection including
/// its close log line, and about 21 KiB for a connection with a TLS 1.3
/// handshake — 256 KiB leaves twelve times that for handlers with buffers
/// of their own. Small enough that ten thousand workers reserve 2.5 GiB of
/// address space rather than 20 GiB with 2 MiB stacks (only touched pages
/// cost memory, and page tables cost an eighth of a page per thread). A stack overflow aborts the whole process, so raise it with
/// `--worker-stack-size` for handlers with deep recursion or large arrays.
pub const DEFAULT_WORKER_STACK_SIZE: usize = 256 * 1024;

/// Generates [`ServerConfig`] and its `Default` from the rows of the table.
macro_rules! server_config {
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
        /// Every setting of a [`Server`](crate::Server).
        ///
        /// Build one with [`Server::builder`](crate::Server::builder) (which
        /// starts from [`ServerConfig::default`]), or start from
        /// `ServerConfig::default()`, assign the fields you need and pass it to
        /// [`Builder::config`](crate::Builder::config). A zero [`Duration`]
        /// turns a timeout off. New settings may be added in any release, so
        /// the struct cannot be written as a literal outside this crate.
        ///
        /// ```
        /// let mut config = syncnet::ServerConfig::default();
        /// config.listen = "127.0.0.1:0".into();
        /// config.workers = 8;
        /// config.admin = None;
        /// let server = syncnet::Server::builder().config(config).build()?;
        /// # Ok::<(), syncnet::Error>(())
        /// ```
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub struct ServerConfig {
            $($(
                $(#[doc = $doc])*
                #[doc = ""]
                #[doc = concat!("Default: `", stringify!($default), "`.")]
                pub $field: $fty,
            )?)*
        }

        impl Default for ServerConfig {
            fn default() -> Self {
                ServerConfig {
                    $($( $field: $default, )?)*
                }
            }
        }
    };
}

crate::settings_table!(server_config);

/// Generates the `Builder` setters of the rows marked `builder generated`:
/// `fn FIELD(mut self, value: TYPE) -> Self`, documented with the field's doc
/// and default. Expanded inside `impl Builder` with
/// `crate::settings_table!(crate::config::builder_setters);`.
macro_rules! builder_setters {
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
        $($(
            $crate::config::builder_setter! {
                $builder $(($method))?; [$(#[doc = $doc])*] $field: $fty = $default
            }
        )?)*
    };
}
pub(crate) use builder_setters;

/// One setter of [`builder_setters`]; nothing for `by_hand(METHOD)` (written
/// by hand; a test checks it exists) and `none`.
macro_rules! builder_setter {
    (generated; [$(#[doc = $doc:literal])*] $field:ident : $fty:ty = $default:expr) => {
        $(#[doc = $doc])*
        #[doc = ""]
        #[doc = concat!("Default: `", stringify!($default), "`.")]
        pub fn $field(mut self, value: $fty) -> Self {
            self.config.$field = value;
            self
        }
    };
    (by_hand($method:ident); $($row:tt)*) => {};
    (none; $($row:tt)*) => {};
}
pub(crate) use builder_setter;

#[cfg(test)]
mod tests {
    use super::*;

    /// The `METHOD` of every `by_hand(METHOD)` row.
    macro_rules! hand_written_setters {
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
            [$($($( stringify!($method), )?)?)*]
        };
    }

    /// The rows marked `by_hand(METHOD)` are the setters below, which exist
    /// and set their field.
    #[test]
    fn hand_written_builder_setters_exist() {
        assert_eq!(
            crate::settings_table!(hand_written_setters),
            ["listen", "admin", "allow", "deny", "tls", "trusted_proxy"]
        );
        let net: Cidr = "10.0.0.0/8".parse().unwrap();
        let builder = crate::Builder::default()
            .listen("[::1]:7")
            .admin(Some("127.0.0.1:8"))
            .allow(net)
            .deny(net)
            .tls(TlsSettings::default())
            .trusted_proxy(net);
        let debug = format!("{builder:?}");
        for field in [
            "listen: \"[::1]:7\"",
            "admin: Some(\"127.0.0.1:8\")",
            "allow: [Cidr",
            "deny: [Cidr",
            "tls: Some(",
            "trusted_proxies: [Cidr",
        ] {
            assert!(debug.contains(field), "{field} not in {debug}");
        }
    }

    #[test]
    fn generated_setters_set_their_field() {
        let builder = crate::Builder::default()
            .workers(7)
            .idle_timeout(Duration::from_secs(1))
            .handshake_timeout(Duration::from_millis(2500))
            .proxy_protocol(true);
        let debug = format!("{builder:?}");
        for field in [
            "workers: 7,",
            "idle_timeout: 1s,",
            "handshake_timeout: 2.5s,",
            "proxy_protocol: true,",
        ] {
            assert!(debug.contains(field), "{field} not in {debug}");
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let d = ServerConfig::default();
        assert_eq!(d.listen, "127.0.0.1:3000");
        assert_eq!(d.workers, 512);
        assert_eq!(d.idle_timeout, Duration::from_secs(300));
        assert_eq!(d.worker_stack_size, DEFAULT_WORKER_STACK_SIZE);
        assert_eq!(d.admin.as_deref(), Some("127.0.0.1:9464"));
        assert!(d.tls.is_none() && d.log_connections && !d.proxy_protocol);
        d.validate().expect("the defaults are valid");
    }
}
