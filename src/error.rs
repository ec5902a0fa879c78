//! The crate's one error type, with the context a user needs to act on it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while configuring, starting or running a server.
///
/// Each variant carries the value that caused it (the setting, the address,
/// the file), so the message alone tells an operator what to fix. Settings
/// are named as this library names them — a [`ServerConfig`](crate::ServerConfig)
/// field such as `workers` or `tls.cert` — and quoted in backticks in the
/// message, so that a program can name them its own way (the `syncnet`
/// binary turns `` `workers` `` into `--workers`). The binary maps
/// [`Error::exit_code`] to its process exit code (see `docs/reference.md`).
///
/// A variant with an underlying error (`Bind`, `Thread`, `Io`) includes it
/// in its message and does not also return it from
/// [`source`](std::error::Error::source), so a reporter that walks the
/// chain prints it once.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A setting has a value that cannot work, e.g. `workers` set to 0.
    Config {
        /// The setting at fault: a field (`workers`) or a builder method;
        /// in the binary's own errors, a flag (`--tls-cert`).
        setting: String,
        /// What is wrong with it, naming the value; another setting it
        /// mentions is quoted in backticks (`` needs `proxy_protocol` ``).
        message: String,
    },
    /// A TLS file is missing, unreadable or unusable (a certificate without
    /// its key, a key that does not match, a CA bundle with no certificate).
    Tls {
        /// The setting the file was given with, e.g. `tls.cert` (the `cert`
        /// field of [`TlsSettings`](crate::TlsSettings) or
        /// [`ClientTls`](crate::ClientTls)).
        setting: &'static str,
        /// What is wrong; names the setting (in backticks) and the path.
        message: String,
    },
    /// A configuration file could not be read or parsed.
    ConfigFile {
        /// The file that was given with `--config`.
        path: PathBuf,
        /// What went wrong, e.g. the unknown key.
        message: String,
    },
    /// An address could not be parsed or resolved.
    Address {
        /// The setting the address came from, e.g. `listen`.
        setting: String,
        /// The text that was given.
        value: String,
    },
    /// Binding a listening socket failed, most often because the address is in use.
    Bind {
        /// The setting the address came from: `listen` or `admin`.
        setting: &'static str,
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// The operating system refused to start a thread (the accept loop or a worker).
    Thread {
        /// What the thread was for.
        what: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// Installing the SIGINT/SIGTERM handler failed, e.g. because the program
    /// already installed its own with `ctrlc`.
    Signal(String),
    /// A second SIGINT/SIGTERM arrived while the server was draining: the
    /// caller should exit at once (the binary exits with code 130).
    Interrupted,
    /// Another I/O failure, with what we were doing when it happened.
    Io {
        /// What we were doing, e.g. `reading stdin`.
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A `ClientPool` had no connection to lend: all
    /// `max_total_per_addr` connections to `addr` stayed in use for the
    /// whole checkout timeout (or the time left before the request's
    /// deadline, when shorter).
    PoolExhausted {
        /// The address the connection was for, as given to the pool.
        addr: String,
        /// The pool's `max_total_per_addr`.
        limit: usize,
        /// How long the caller waited.
        waited: Duration,
    },
    /// A `ClientPool` call was sent but got no reply: writing the request
    /// or reading the reply failed (a timeout is `TimedOut`, a connection
    /// that ended before the reply `UnexpectedEof`), after `attempts`
    /// tries (more than one only for idempotent calls), or it was not sent
    /// at all (`attempts` 0: the deadline had passed, or the codec could
    /// not encode it).
    Call {
        /// The address called, as given to the pool.
        addr: String,
        /// How many times the request was sent.
        attempts: u32,
        /// The last attempt's error.
        source: io::Error,
    },
}

impl Error {
    /// The process exit code for this error (the binary's exit codes, see
    /// `docs/reference.md`): `2` for bad usage or configuration, `130` for a
    /// forced exit, `1` for everything else.
    ///
    /// ```
    /// let e = syncnet::Error::Config { setting: "workers".into(), message: "must be at least 1".into() };
    /// assert_eq!(e.exit_code(), 2);
    /// assert_eq!(e.to_string(), "invalid `workers`: must be at least 1");
    /// ```
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config { .. }
            | Error::Tls { .. }
            | Error::ConfigFile { .. }
            | Error::Address { .. } => 2,
            Error::Interrupted => 130,
            _ => 1,
        }
    }

    /// Shorthand for [`Error::Config`].
    pub(crate) fn config(setting: &str, message: impl Into<String>) -> Error {
        Error::Config {
            setting: setting.to_string(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Io`]: `context` says what we were doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config { setting, message } => write!(f, "invalid `{setting}`: {message}"),
            Error::Tls { message, .. } => write!(f, "{message}"),
            Error::ConfigFile { path, message } => {
                write!(f, "config file {}: {message}", path.display())
            }
            Error::Address { setting, value } => {
                write!(
                    f,
                    "invalid `{setting}`: '{value}' is not a valid socket address"
                )
            }
            Error::Bind {
                setting: "admin",
                addr,
                source,
            } => {
                let why = if source.kind() == io::ErrorKind::AddrInUse {
                    "address already in use".to_string()
                } else {
                    source.to_string()
                };
                write!(
                    f,
                    "cannot listen on {addr} for the admin endpoint: {why} \
                     (give `admin` another address, or `off`)"
                )
            }
            Error::Bind { addr, source, .. } => {
                if source.kind() == io::ErrorKind::AddrInUse {
                    write!(f, "cannot listen on {addr}: address already in use")
                } else {
                    write!(f, "cannot listen on {addr}: {source}")
                }
            }
            Error::Thread { what, source } => write!(f, "cannot start the {what} thread: {source}"),
            Error::Signal(msg) => write!(f, "cannot install the signal handler: {msg}"),
            Error::Interrupted => write!(f, "interrupted by a second signal during shutdown"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::PoolExhausted {
                addr,
                limit,
                waited,
            } => write!(
                f,
                "no connection to {addr} available: all {limit} (max_total_per_addr) in use after waiting {waited:?}"
            ),
            Error::Call {
                addr,
                attempts,
                source,
            } => match attempts {
                0 => write!(f, "call to {addr} not sent: {source}"),
                1 => write!(f, "call to {addr} failed: {source}"),
                n => write!(f, "call to {addr} failed after {n} tries: {source}"),
            },
        }
    }
}

/// No `source()`: every underlying error is part of the message already.
impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_error_names_the_address() {
        let e = Error::Bind {
            setting: "listen",
            addr: "127.0.0.1:3000".parse().unwrap(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        assert_eq!(
            e.to_string(),
            "cannot listen on 127.0.0.1:3000: address already in use"
        );
        let admin = Error::Bind {
            setting: "admin",
            addr: "127.0.0.1:9464".parse().unwrap(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        assert_eq!(
            admin.to_string(),
            "cannot listen on 127.0.0.1:9464 for the admin endpoint: address already in use \
             (give `admin` another address, or `off`)"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn an_underlying_error_is_printed_once() {
        let source = io::Error::new(io::ErrorKind::PermissionDenied, "the os said no");
        let errors = [
            Error::Bind {
                setting: "listen",
                addr: "127.0.0.1:3000".parse().unwrap(),
                source: io::Error::new(io::ErrorKind::PermissionDenied, "the os said no"),
            },
            Error::Thread {
                what: "accept",
                source: io::Error::new(io::ErrorKind::PermissionDenied, "the os said no"),
            },
            Error::io("reading stdin", source),
        ];
        for e in errors {
            assert!(e.to_string().ends_with(": the os said no"), "{e}");
            assert!(std::error::Error::source(&e).is_none(), "{e:?}");
        }
    }

    #[test]
    fn settings_are_quoted() {
        let e = Error::config("workers", "must be at least 1, got 0");
        assert_eq!(
            e.to_string(),
            "invalid `workers`: must be at least 1, got 0"
        );
        let e = Error::Address {
            setting: "listen".into(),
            value: "nonsense".into(),
        };
        assert_eq!(
            e.to_string(),
            "invalid `listen`: 'nonsense' is not a valid socket address"
        );
    }

    #[test]
    fn pool_errors_name_the_address_and_the_limit() {
        let e = Error::PoolExhausted {
            addr: "127.0.0.1:4000".into(),
            limit: 4,
            waited: Duration::from_millis(250),
        };
        assert_eq!(
            e.to_string(),
            "no connection to 127.0.0.1:4000 available: all 4 (max_total_per_addr) in use after waiting 250ms"
        );
        let e = Error::Call {
            addr: "127.0.0.1:4000".into(),
            attempts: 3,
            source: io::Error::from(io::ErrorKind::UnexpectedEof),
        };
        assert!(
            e.to_string()
                .starts_with("call to 127.0.0.1:4000 failed after 3 tries: "),
            "{e}"
        );
        assert!(
            std::error::Error::source(&e).is_none(),
            "printed once, in the message"
        );
    }

    #[test]
    fn error_stays_small() {
        // Returned on every fallible path: keep it a few words wide.
        assert!(std::mem::size_of::<Error>() <= 64);
    }
}
