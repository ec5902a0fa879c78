//! The command line: clap definitions, and their merge with the environment,
//! the `--config` TOML file and the defaults (command line > environment >
//! file > default). clap reads `SYNCNET_*` variables itself, so a value from
//! clap is already "command line or environment".

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use syncnet::{Cidr, ClientTls, Error, LogFormat, ServerConfig, TlsSettings, parse_duration};

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
    /// Connect to a server: send --message and print the reply, or copy stdin/stdout.
    Client(ClientArgs),
    /// Load-test an echo-like service: pingpong, bulk or hold, every echoed byte verified.
    #[cfg(feature = "bench")]
    Bench(BenchArgs),
}

fn duration(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// Flags of `syncnet serve` (SPEC §1.1). Every flag is optional here so that
/// an absent one can fall back to the file and then to the default.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to accept on [default: 127.0.0.1:3000]
    #[arg(long, value_name = "ADDR", env = "SYNCNET_LISTEN")]
    listen: Option<String>,
    /// Most connections served at once; one thread each [default: 512]
    #[arg(long, value_name = "N", env = "SYNCNET_WORKERS")]
    workers: Option<usize>,
    /// Accepted connections waiting for a free worker [default: 128]
    #[arg(long, value_name = "N", env = "SYNCNET_QUEUE")]
    queue: Option<usize>,
    /// Close a connection that waited this long for a worker [default: 10s]
    #[arg(long, value_name = "DUR", env = "SYNCNET_QUEUE_TIMEOUT", value_parser = duration)]
    queue_timeout: Option<Duration>,
    /// Close a connection that sends nothing for this long [default: 5m]
    #[arg(long, value_name = "DUR", env = "SYNCNET_IDLE_TIMEOUT", value_parser = duration)]
    idle_timeout: Option<Duration>,
    /// Close a connection whose peer stops reading for this long [default: 30s]
    #[arg(long, value_name = "DUR", env = "SYNCNET_WRITE_TIMEOUT", value_parser = duration)]
    write_timeout: Option<Duration>,
    /// Close any connection after this long; 0 = never [default: 0]
    #[arg(long, value_name = "DUR", env = "SYNCNET_MAX_LIFETIME", value_parser = duration)]
    max_lifetime: Option<Duration>,
    /// On SIGINT/SIGTERM, keep accepting this long with /readyz at 503 [default: 0]
    #[arg(long, value_name = "DUR", env = "SYNCNET_SHUTDOWN_DELAY", value_parser = duration)]
    shutdown_delay: Option<Duration>,
    /// Then give connections this long to finish before closing them [default: 30s]
    #[arg(long, value_name = "DUR", env = "SYNCNET_DRAIN_TIMEOUT", value_parser = duration)]
    drain_timeout: Option<Duration>,
    /// TCP keepalive idle time; 0 = off [default: 60s]
    #[arg(long, value_name = "DUR", env = "SYNCNET_KEEPALIVE", value_parser = duration)]
    keepalive: Option<Duration>,
    /// TCP_NODELAY on accepted sockets [default: true]
    #[arg(long, value_name = "BOOL", env = "SYNCNET_NODELAY")]
    nodelay: Option<bool>,
    /// Listen backlog [default: 1024]
    #[arg(long, value_name = "N", env = "SYNCNET_BACKLOG")]
    backlog: Option<u32>,
    /// Stack size of each worker thread in bytes [default: 262144]
    #[arg(long, value_name = "BYTES", env = "SYNCNET_WORKER_STACK_SIZE")]
    worker_stack_size: Option<usize>,
    /// Only these source networks may connect (repeatable or comma-separated) [default: all]
    #[arg(
        long,
        value_name = "CIDR",
        env = "SYNCNET_ALLOW",
        value_delimiter = ','
    )]
    allow: Vec<Cidr>,
    /// These source networks never may; deny wins over allow (repeatable)
    #[arg(long, value_name = "CIDR", env = "SYNCNET_DENY", value_delimiter = ',')]
    deny: Vec<Cidr>,
    /// Most open connections from one source IP; 0 = no limit [default: 0]
    #[arg(long, value_name = "N", env = "SYNCNET_MAX_CONNS_PER_IP")]
    max_conns_per_ip: Option<u32>,
    /// New connections per second from one source IP (burst N); 0 = no limit [default: 0]
    #[arg(long, value_name = "N", env = "SYNCNET_CONN_RATE_PER_IP")]
    conn_rate_per_ip: Option<u32>,
    /// Per-connection cap on bytes read per second; throttles, never closes; 0 = off [default: 0]
    #[arg(long, value_name = "N", env = "SYNCNET_MAX_BYTES_PER_SEC")]
    max_bytes_per_sec: Option<u64>,
    /// PEM certificate chain: the listener speaks TLS 1.2/1.3 (needs --tls-key)
    #[arg(long, value_name = "FILE", env = "SYNCNET_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", env = "SYNCNET_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// PEM CA bundle: clients must present a certificate it signed (mTLS)
    #[arg(long, value_name = "FILE", env = "SYNCNET_TLS_CLIENT_CA")]
    tls_client_ca: Option<PathBuf>,
    /// With mTLS, serve only client certificates whose DNS SAN or CN is NAME (repeatable)
    #[arg(
        long,
        value_name = "NAME",
        env = "SYNCNET_TLS_ALLOW_NAME",
        value_delimiter = ','
    )]
    tls_allow_name: Vec<String>,
    /// Close a connection whose TLS handshake (or PROXY header) takes longer [default: 10s]
    #[arg(long, value_name = "DUR", env = "SYNCNET_TLS_HANDSHAKE_TIMEOUT", value_parser = duration)]
    tls_handshake_timeout: Option<Duration>,
    /// Expect a PROXY protocol v1/v2 header on every connection and use its client address
    #[arg(long, env = "SYNCNET_PROXY_PROTOCOL")]
    proxy_protocol: bool,
    /// With --proxy-protocol, accept connections only from these peers (repeatable) [default: all]
    #[arg(
        long,
        value_name = "CIDR",
        env = "SYNCNET_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    trusted_proxy: Vec<Cidr>,
    /// Admin HTTP endpoint (/metrics, /healthz, /readyz), or `off` [default: 127.0.0.1:9464]
    #[arg(long, value_name = "ADDR|off", env = "SYNCNET_ADMIN")]
    admin: Option<String>,
    /// Log format: text, json, or auto (text on a terminal) [default: auto]
    #[arg(long, value_name = "FORMAT", env = "SYNCNET_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    /// TOML file with any of these settings (keys use underscores)
    #[arg(long, value_name = "FILE", env = "SYNCNET_CONFIG")]
    config: Option<PathBuf>,
}

/// The same settings as read from a `--config` file. Durations are strings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    workers: Option<usize>,
    queue: Option<usize>,
    queue_timeout: Option<String>,
    idle_timeout: Option<String>,
    write_timeout: Option<String>,
    max_lifetime: Option<String>,
    shutdown_delay: Option<String>,
    drain_timeout: Option<String>,
    keepalive: Option<String>,
    nodelay: Option<bool>,
    backlog: Option<u32>,
    worker_stack_size: Option<usize>,
    admin: Option<String>,
    log_format: Option<String>,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    max_conns_per_ip: Option<u32>,
    conn_rate_per_ip: Option<u32>,
    max_bytes_per_sec: Option<u64>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_client_ca: Option<PathBuf>,
    tls_allow_name: Option<Vec<String>>,
    tls_handshake_timeout: Option<String>,
    proxy_protocol: Option<bool>,
    trusted_proxy: Option<Vec<String>>,
}

impl FileSettings {
    fn load(path: &Path) -> Result<FileSettings, Error> {
        let file_error = |message: String| Error::ConfigFile {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        toml::from_str(&text).map_err(|e| file_error(e.message().to_string()))
    }
}

/// A duration from the file, with the key named when it does not parse.
fn file_duration(path: &Path, key: &str, value: Option<String>) -> Result<Option<Duration>, Error> {
    value
        .map(|text| {
            parse_duration(&text).map_err(|message| Error::ConfigFile {
                path: path.to_path_buf(),
                message: format!("{key}: {message}"),
            })
        })
        .transpose()
}

/// CIDRs from the file, with the key named when one does not parse.
fn file_cidrs(path: &Path, key: &str, values: Option<Vec<String>>) -> Result<Vec<Cidr>, Error> {
    values
        .unwrap_or_default()
        .iter()
        .map(|text| {
            text.parse()
                .map_err(|e: syncnet::ParseCidrError| Error::ConfigFile {
                    path: path.to_path_buf(),
                    message: format!("{key}: {e}"),
                })
        })
        .collect()
}

/// A repeatable flag: the command line's (or environment's) values when
/// given, else the file's.
fn pick_list<T>(flag: Vec<T>, file: Vec<T>) -> Vec<T> {
    if flag.is_empty() { file } else { flag }
}

/// The TLS settings from the merged flags, checking the combinations that
/// cannot work (each error names the flag).
fn tls_settings(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    allow_names: Vec<String>,
) -> Result<Option<TlsSettings>, Error> {
    let config_error = |setting: &str, message: &str| Error::Config {
        setting: setting.to_string(),
        message: message.to_string(),
    };
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsSettings {
            cert,
            key,
            client_ca,
            allow_names,
        })),
        (Some(_), None) => Err(config_error(
            "--tls-cert",
            "needs --tls-key FILE (the certificate's private key)",
        )),
        (None, Some(_)) => Err(config_error(
            "--tls-key",
            "needs --tls-cert FILE (the certificate chain)",
        )),
        (None, None) if client_ca.is_some() => Err(config_error(
            "--tls-client-ca",
            "needs TLS on the listener: give --tls-cert and --tls-key too",
        )),
        (None, None) if !allow_names.is_empty() => Err(config_error(
            "--tls-allow-name",
            "needs --tls-client-ca FILE (names are checked on client certificates, which only mTLS asks for)",
        )),
        (None, None) => Ok(None),
    }
}

impl ServeArgs {
    /// Merges command line/environment, file and defaults into a server
    /// configuration and a log format.
    ///
    /// # Errors
    /// [`Error::ConfigFile`] for an unreadable or invalid file (naming the key).
    pub fn resolve(self) -> Result<(ServerConfig, LogFormat), Error> {
        let (file, path) = match &self.config {
            Some(path) => (FileSettings::load(path)?, path.clone()),
            None => (FileSettings::default(), PathBuf::new()),
        };
        let d = ServerConfig::default();
        let dur = |key: &str, value: Option<String>| file_duration(&path, key, value);
        let log_format = match file.log_format {
            Some(text) => Some(text.parse().map_err(|message| Error::ConfigFile {
                path: path.clone(),
                message: format!("log_format: {message}"),
            })?),
            None => None,
        };
        let admin = self.admin.or(file.admin);
        let allow = pick_list(self.allow, file_cidrs(&path, "allow", file.allow)?);
        let deny = pick_list(self.deny, file_cidrs(&path, "deny", file.deny)?);
        let trusted_proxies = pick_list(
            self.trusted_proxy,
            file_cidrs(&path, "trusted_proxy", file.trusted_proxy)?,
        );
        let tls = tls_settings(
            self.tls_cert.or(file.tls_cert),
            self.tls_key.or(file.tls_key),
            self.tls_client_ca.or(file.tls_client_ca),
            pick_list(self.tls_allow_name, file.tls_allow_name.unwrap_or_default()),
        )?;
        let config = ServerConfig {
            listen: self.listen.or(file.listen).unwrap_or(d.listen),
            workers: self.workers.or(file.workers).unwrap_or(d.workers),
            queue: self.queue.or(file.queue).unwrap_or(d.queue),
            queue_timeout: pick(
                self.queue_timeout,
                dur("queue_timeout", file.queue_timeout)?,
                d.queue_timeout,
            ),
            idle_timeout: pick(
                self.idle_timeout,
                dur("idle_timeout", file.idle_timeout)?,
                d.idle_timeout,
            ),
            write_timeout: pick(
                self.write_timeout,
                dur("write_timeout", file.write_timeout)?,
                d.write_timeout,
            ),
            max_lifetime: pick(
                self.max_lifetime,
                dur("max_lifetime", file.max_lifetime)?,
                d.max_lifetime,
            ),
            shutdown_delay: pick(
                self.shutdown_delay,
                dur("shutdown_delay", file.shutdown_delay)?,
                d.shutdown_delay,
            ),
            drain_timeout: pick(
                self.drain_timeout,
                dur("drain_timeout", file.drain_timeout)?,
                d.drain_timeout,
            ),
            keepalive: pick(
                self.keepalive,
                dur("keepalive", file.keepalive)?,
                d.keepalive,
            ),
            nodelay: self.nodelay.or(file.nodelay).unwrap_or(d.nodelay),
            backlog: self.backlog.or(file.backlog).unwrap_or(d.backlog),
            worker_stack_size: self
                .worker_stack_size
                .or(file.worker_stack_size)
                .unwrap_or(d.worker_stack_size),
            allow,
            deny,
            max_conns_per_ip: self
                .max_conns_per_ip
                .or(file.max_conns_per_ip)
                .unwrap_or(d.max_conns_per_ip),
            conn_rate_per_ip: self
                .conn_rate_per_ip
                .or(file.conn_rate_per_ip)
                .unwrap_or(d.conn_rate_per_ip),
            max_bytes_per_sec: self
                .max_bytes_per_sec
                .or(file.max_bytes_per_sec)
                .unwrap_or(d.max_bytes_per_sec),
            tls,
            handshake_timeout: pick(
                self.tls_handshake_timeout,
                dur("tls_handshake_timeout", file.tls_handshake_timeout)?,
                d.handshake_timeout,
            ),
            proxy_protocol: self.proxy_protocol || file.proxy_protocol.unwrap_or(d.proxy_protocol),
            trusted_proxies,
            admin: match admin {
                Some(text) if text == "off" => None,
                Some(text) => Some(text),
                None => d.admin,
            },
            ..d
        };
        let format = self.log_format.or(log_format).unwrap_or_default();
        Ok((config, format))
    }
}

fn pick<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

/// Flags of `syncnet client` (SPEC §1.4).
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server address
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub connect: String,
    /// Send TEXT and print the reply; without it, copy stdin to the server and its bytes to stdout
    #[arg(long, value_name = "TEXT")]
    pub message: Option<String>,
    /// How long to wait for the connection and for the whole reply
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

/// The client's TLS flags (SPEC §1.4), shared by `client` and `bench`.
#[derive(Debug, Args, Default)]
pub struct ClientTlsArgs {
    /// Speak TLS to the server
    #[arg(long)]
    pub tls: bool,
    /// PEM CA bundle the server's certificate must chain to (needed with --tls)
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate chain, for mTLS (with --tls-key)
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Name to check the server's certificate against [default: the host of --connect]
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

impl ClientTlsArgs {
    /// The TLS settings, or `None` for plain TCP.
    ///
    /// # Errors
    /// [`Error::Config`] when a TLS flag is given without `--tls`.
    pub fn settings(&self) -> Result<Option<ClientTls>, Error> {
        if !self.tls {
            let stray = [
                ("--tls-ca", self.tls_ca.is_some()),
                ("--tls-cert", self.tls_cert.is_some()),
                ("--tls-key", self.tls_key.is_some()),
                ("--tls-server-name", self.tls_server_name.is_some()),
            ];
            if let Some((flag, _)) = stray.iter().find(|(_, given)| *given) {
                return Err(Error::Config {
                    setting: flag.to_string(),
                    message: "has no effect without --tls".to_string(),
                });
            }
            return Ok(None);
        }
        Ok(Some(ClientTls {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            server_name: self.tls_server_name.clone(),
        }))
    }
}

/// Flags of `syncnet bench` (SPEC §1.5).
#[cfg(feature = "bench")]
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server address
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub connect: String,
    /// Connections, opened at the start and used for the whole run
    #[arg(short = 'c', long, value_name = "N", default_value_t = 50)]
    pub connections: usize,
    /// Length of the measured window (after the warm-up)
    #[arg(short = 'd', long, value_name = "DUR", default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Request size in bytes [default: 64; in bulk mode the chunk size, 65536]
    #[arg(long, value_name = "BYTES")]
    pub size: Option<usize>,
    /// pingpong, bulk or hold
    #[arg(long, value_name = "MODE", default_value = "pingpong")]
    pub mode: syncnet::bench::Mode,
    /// Pingpong requests in flight per connection
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub pipeline: usize,
    /// Requests per second in total (0 = closed loop); latency from the intended send time
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rate: u64,
    /// Traffic before the measured window, not counted
    #[arg(long, value_name = "DUR", default_value = "1s", value_parser = duration)]
    pub warmup: Duration,
    /// Print one JSON object instead of the summary
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tls: ClientTlsArgs,
}

#[cfg(feature = "bench")]
impl BenchArgs {
    /// The library's options; progress is shown when stderr is a terminal.
    ///
    /// # Errors
    /// [`Error::Config`] when a TLS flag is given without `--tls`.
    pub fn options(&self) -> Result<syncnet::bench::BenchOptions, Error> {
        Ok(syncnet::bench::BenchOptions {
            connect: self.connect.clone(),
            connections: self.connections,
            duration: self.duration,
            size: self.size,
            mode: self.mode,
            pipeline: self.pipeline,
            rate: self.rate,
            warmup: self.warmup,
            progress: !self.json && syncnet::bench::stderr_is_terminal(),
            tls: self.tls.settings()?,
        })
    }
}
