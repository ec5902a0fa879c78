//! The one table of `syncnet serve`'s settings.
//!
//! # Why a `macro_rules!` table
//!
//! Each setting used to be written five times: a [`ServerConfig`] field, its
//! `Default`, a `Builder` setter, a clap field with a hand-written
//! `[default: …]`, and a field of the TOML file's struct, and the merge
//! (command line > environment > file > default) repeated itself per field.
//! Here every setting is one row, and *generators* turn the rows into code:
//!
//! - the library ([`config`](super)): the [`ServerConfig`] struct (the row's
//!   doc comment, plus its default as written here), its `Default`, and the
//!   `Builder`'s plain setters (`builder generated`);
//! - the binary (`src/cli/settings.rs`): one clap argument per flag (its
//!   `--flag` and `SYNCNET_*` variable derived from the key, its help with the
//!   default rendered from `ServerConfig::default()`), the `--config` file's
//!   serde struct (the same keys, in the same order), the merge, and the
//!   names the binary uses to turn the library's field names into flags in
//!   error messages.
//!
//! A macro rather than a data table because the rows carry *types*: the file
//! and the command line keep their typed parsers (serde's and clap's messages
//! stay what they were), and the merge is plain typed code with no `Any` or
//! value enum in between. A `#[derive]` on one struct could not do it either:
//! [`ServerConfig`] has no clap or serde attributes (it is the library's), its
//! fields and the flags are not one-to-one (`tls` is four flags, `log_format`
//! is not a server setting), and clap's own defaults would hide whether a
//! file value should win. The macro is exported (hidden) only so that the
//! binary can expand the same rows; it is not an API.
//!
//! Adding a setting is one row here plus the code that uses it.
//!
//! # Rows
//!
//! Each row ends with `;` and is one of:
//!
//! ```text
//! /// doc of the ServerConfig field
//! field NAME: TYPE = DEFAULT, builder generated | by_hand(METHOD) | none
//!     [, flag KEY: KIND, "VALUE", "help" [, default "shown"]]   one flag sets the field
//!     [, from FUNCTION { KEY ("field.path"): KIND, "VALUE", "help"; ... }]  several flags, combined
//! program KEY: KIND, "VALUE", "help" [, default "shown"]   a flag of the program, no field
//! ```
//!
//! `KEY` is the TOML key; the flag is `--KEY` with `_` as `-`, the
//! environment variable `SYNCNET_KEY` in upper case. `KIND` says how a value
//! is written and merged: `Value<T>` (clap's and serde's parser for `T`),
//! `Duration` (`30s`), `AddressOrOff`, `Networks` (repeatable CIDRs), `Switch`
//! (a flag without a value, `true`/`false` in the file), `Path`, `Names`
//! (repeatable strings) and `Parsed<T>` (`T: FromStr`, a string in the file).
//! `default "…"` replaces the default shown in `--help` where the value does
//! not say it (an empty allow list means "all", and `60s` reads better than
//! `1m`; a test checks each shown default is the real one). The row order is
//! the order of `--help` and of the file's keys.
//!
//! Names in a row resolve where a generator expands it: a field `TYPE` of a
//! `builder generated` row is written so that it resolves anywhere
//! (`std::time::Duration`), because the setters expand inside `impl Builder`.
//!
//! [`ServerConfig`]: crate::ServerConfig

/// Expands `$generator! { rows }` with every row of the settings table (see
/// the module documentation of `src/config/table.rs` for the row syntax).
///
/// Not an API: exported only so that the `syncnet` binary can generate its
/// command line and `--config` file from the same rows as [`ServerConfig`].
///
/// [`ServerConfig`]: crate::ServerConfig
#[doc(hidden)]
#[macro_export]
macro_rules! settings_table {
    ($($generator:tt)+) => {
        $($generator)+ ! {
            /// Address to accept on, e.g. `127.0.0.1:3000` or `[::1]:3000`.
            field listen: String = "127.0.0.1:3000".into(), builder by_hand(listen),
            flag listen: Value<String>, "ADDR", "Address to accept on";

            /// Most connections served at once, one worker thread each.
            field workers: usize = 512, builder generated,
            flag workers: Value<usize>, "N", "Most connections served at once; one thread each";

            /// Accepted connections that may wait for a free worker; 0 = none
            /// (a connection that finds no free worker is closed).
            field queue: usize = 128, builder generated,
            flag queue: Value<usize>, "N", "Accepted connections waiting for a free worker";

            /// A connection that waited this long for a worker is closed; zero =
            /// no limit.
            field queue_timeout: std::time::Duration = Duration::from_secs(10), builder generated,
            flag queue_timeout: Duration, "DUR", "Close a connection that waited this long for a worker";

            /// Close a connection that sends nothing for this long; zero = never.
            field idle_timeout: std::time::Duration = Duration::from_secs(300), builder generated,
            flag idle_timeout: Duration, "DUR", "Close a connection that sends nothing for this long";

            /// Close a connection whose peer stops reading for this long; zero =
            /// never.
            field write_timeout: std::time::Duration = Duration::from_secs(30), builder generated,
            flag write_timeout: Duration, "DUR", "Close a connection whose peer stops reading for this long";

            /// Close any connection after this long; zero = never.
            field max_lifetime: std::time::Duration = Duration::ZERO, builder generated,
            flag max_lifetime: Duration, "DUR", "Close any connection after this long; 0 = never";

            /// On shutdown, keep accepting this long with `/readyz` at 503, so
            /// load balancers stop sending first.
            field shutdown_delay: std::time::Duration = Duration::ZERO, builder generated,
            flag shutdown_delay: Duration, "DUR", "On SIGINT/SIGTERM, keep accepting this long with /readyz at 503";

            /// How long open connections get to finish on shutdown before they
            /// are closed by force; zero closes them at once.
            field drain_timeout: std::time::Duration = Duration::from_secs(30), builder generated,
            flag drain_timeout: Duration, "DUR", "Then give connections this long to finish before closing them";

            /// TCP keepalive idle time; zero turns keepalive off.
            field keepalive: std::time::Duration = Duration::from_secs(60), builder generated,
            flag keepalive: Duration, "DUR", "TCP keepalive idle time; 0 = off", default "60s";

            /// Set `TCP_NODELAY` on accepted sockets.
            field nodelay: bool = true, builder generated,
            flag nodelay: Value<bool>, "BOOL", "TCP_NODELAY on accepted sockets";

            /// `SO_RCVBUF` of accepted sockets in bytes (set on the listener,
            /// which they inherit); 0 leaves the kernel's autotuning.
            field recv_buffer: u32 = 0, builder generated,
            flag recv_buffer: Value<u32>, "BYTES", "SO_RCVBUF of accepted sockets (at most 2147483647); 0 = the kernel's autotuning";

            /// `SO_SNDBUF` of accepted sockets in bytes; 0 leaves the kernel's
            /// autotuning.
            field send_buffer: u32 = 0, builder generated,
            flag send_buffer: Value<u32>, "BYTES", "SO_SNDBUF of accepted sockets (at most 2147483647); 0 = the kernel's autotuning";

            /// Listen backlog; at least 1.
            field backlog: u32 = 1024, builder generated,
            flag backlog: Value<u32>, "N", "Listen backlog";

            /// Stack size of each worker thread in bytes; at least
            /// [`MIN_WORKER_STACK_SIZE`](crate::MIN_WORKER_STACK_SIZE).
            field worker_stack_size: usize = DEFAULT_WORKER_STACK_SIZE, builder generated,
            flag worker_stack_size: Value<usize>, "BYTES", "Stack size of each worker thread in bytes";

            /// Address of the admin HTTP endpoint (`/metrics`, `/healthz`,
            /// `/readyz`), or `None` for no endpoint.
            field admin: Option<String> = Some("127.0.0.1:9464".into()), builder by_hand(admin),
            flag admin: AddressOrOff, "ADDR|off", "Admin HTTP endpoint (/metrics, /healthz, /readyz), or `off`";

            // How the binary writes its log lines: a setting of the program,
            // not of a server.
            program log_format: Parsed<$crate::LogFormat>, "FORMAT", "Log format: text, json, or auto (text on a terminal)";

            // Where spans go (tracing, off by default): a setting of the
            // program, which turns it into `Builder::tracing`; when unset,
            // `OTEL_EXPORTER_OTLP_ENDPOINT` is read too.
            program otlp_endpoint: Endpoint, "URL", "Export OpenTelemetry spans to this OTLP/HTTP base URL (POSTed to URL/v1/traces); else OTEL_EXPORTER_OTLP_ENDPOINT; off when unset";

            /// When not empty, only clients in these networks may connect.
            field allow: Vec<Cidr> = Vec::new(), builder by_hand(allow),
            flag allow: Networks, "CIDR", "Only these source networks may connect (repeatable or comma-separated)", default "all";

            /// Clients in these networks never may; deny wins over allow.
            field deny: Vec<Cidr> = Vec::new(), builder by_hand(deny),
            flag deny: Networks, "CIDR", "These source networks never may; deny wins over allow (repeatable)";

            /// Most open connections from one client IP; 0 = no limit.
            field max_conns_per_ip: u32 = 0, builder generated,
            flag max_conns_per_ip: Value<u32>, "N", "Most open connections from one source IP; 0 = no limit";

            /// New connections per second from one client IP (burst of the same
            /// size); 0 = no limit.
            field conn_rate_per_ip: u32 = 0, builder generated,
            flag conn_rate_per_ip: Value<u32>, "N", "New connections per second from one source IP (burst N); 0 = no limit";

            /// IPv6 clients share the per-IP limits (`max_conns_per_ip`,
            /// `conn_rate_per_ip`) by this prefix length, since one client
            /// usually holds a whole /64; 128 counts each address alone.
            /// IPv4 clients are always counted per address. 1 to 128.
            field per_ip_prefix_v6: u8 = 64, builder generated,
            flag per_ip_prefix_v6: Value<u8>, "N", "IPv6 sources share the per-IP limits by this prefix length (IPv4: per address)";

            /// Per-connection cap on bytes read per second; 0 = no cap.
            field max_bytes_per_sec: u64 = 0, builder generated,
            flag max_bytes_per_sec: Value<u64>, "N", "Per-connection cap on bytes read per second; throttles, never closes; 0 = off";

            /// Serve TLS 1.2/1.3 with these files (and mTLS with a client CA);
            /// `None` = plain TCP.
            field tls: Option<TlsSettings> = None, builder by_hand(tls),
            from tls_settings {
                tls_cert ("tls.cert"): Path, "FILE", "PEM certificate chain: the listener speaks TLS 1.2/1.3 (needs --tls-key)";
                tls_key ("tls.key"): Path, "FILE", "PEM private key of --tls-cert";
                tls_client_ca ("tls.client_ca"): Path, "FILE", "PEM CA bundle: clients must present a certificate it signed (mTLS)";
                tls_allow_name ("tls.allow_names"): Names, "NAME", "With mTLS, serve only client certificates known as NAME: a DNS SAN, or the CN when there is no DNS SAN (repeatable)";
            };

            /// Longest a TLS handshake or a PROXY header read may take; must be
            /// above zero.
            field handshake_timeout: std::time::Duration = Duration::from_secs(10), builder generated,
            flag tls_handshake_timeout: Duration, "DUR", "Close a connection whose TLS handshake (or PROXY header) takes longer";

            /// Expect a PROXY protocol v1/v2 header on every connection and use
            /// its client address.
            field proxy_protocol: bool = false, builder generated,
            flag proxy_protocol: Switch, "", "Expect a PROXY protocol v1/v2 header on every connection and use its client address";

            /// With `proxy_protocol`, accept connections only from these peers;
            /// empty = from anyone (with a start-up warning).
            field trusted_proxies: Vec<Cidr> = Vec::new(), builder by_hand(trusted_proxy),
            flag trusted_proxy: Networks, "CIDR", "With --proxy-protocol, accept connections only from these peers (repeatable)", default "all";

            /// Log one line per connection close (and a debug line per open).
            /// The admin endpoint's own server turns it off.
            field log_connections: bool = true, builder none;
        }
    };
}
