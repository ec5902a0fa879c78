//! `syncnet serve`: its flags, generated from the settings table, the
//! `--config` file, and their merge into a [`ServerConfig`].

use std::path::PathBuf;

use clap::Args;

use syncnet::trace::TraceOptions;
use syncnet::{Error, LogFormat, ServerConfig, TlsSettings};

use super::kinds;

syncnet::settings_table!(super::settings::serve_settings);

/// Flags of `syncnet serve` (listed in `docs/reference.md`). Every setting is
/// optional here so that an absent one can fall back to the file and then to
/// the default.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    settings: SettingFlags,
    /// TOML file with any of these settings (keys use underscores)
    #[arg(long, value_name = "FILE", env = "SYNCNET_CONFIG")]
    config: Option<PathBuf>,
}

impl ServeArgs {
    /// Merges command line/environment, file and defaults into a server
    /// configuration, a log format and the tracing options (`None`: off).
    ///
    /// # Errors
    /// [`Error::ConfigFile`] for an unreadable or invalid file (naming the
    /// key); [`Error::Config`] for TLS flags that cannot work together.
    pub fn resolve(self) -> Result<(ServerConfig, LogFormat, Option<TraceOptions>), Error> {
        let (file, path) = match &self.config {
            Some(path) => (kinds::load_file(path)?, path.clone()),
            None => (FileSettings::default(), PathBuf::new()),
        };
        let (config, program) = merge(self.settings, file, &path)?;
        // Flag > SYNCNET_OTLP_ENDPOINT (both through clap) > file >
        // OTEL_EXPORTER_OTLP_ENDPOINT.
        let tracing = TraceOptions::from_flag_or_env(program.otlp_endpoint.as_deref());
        Ok((config, program.log_format.unwrap_or_default(), tracing))
    }
}

/// The `tls` setting from the merged `tls_*` flags, checking the combinations
/// that cannot work (each error names the flag).
fn tls_settings(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
    allow_names: Option<Vec<String>>,
) -> Result<Option<TlsSettings>, Error> {
    let allow_names = allow_names.unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    /// `syncnet serve ARGS`, resolved (no environment variable is read: the
    /// tests run without `SYNCNET_*` set).
    fn resolve(args: &[&str]) -> Result<(ServerConfig, LogFormat), Error> {
        let cli = Cli::try_parse_from(["syncnet", "serve"].iter().chain(args))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.command {
            Command::Serve(serve) => serve.resolve().map(|(config, format, _)| (config, format)),
            other => panic!("not serve: {other:?}"),
        }
    }

    /// A TOML file in the temporary directory, removed on drop.
    struct TomlFile(PathBuf);

    impl TomlFile {
        fn new(name: &str, text: &str) -> TomlFile {
            let path = std::env::temp_dir()
                .join(format!("syncnet-cli-{}-{name}.toml", std::process::id()));
            std::fs::write(&path, text).unwrap();
            TomlFile(path)
        }

        fn arg(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TomlFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn flags_and_variables_derive_from_the_keys() {
        for flag in describe() {
            assert_eq!(flag.long, flag.key.replace('_', "-"));
            assert_eq!(
                flag.env,
                format!("SYNCNET_{}", flag.key.to_ascii_uppercase())
            );
        }
    }

    #[test]
    fn the_file_takes_exactly_the_flags_keys() {
        let file = TomlFile::new("unknown", "no_such_key = 1\n");
        let message = resolve(&["--config", file.arg()]).unwrap_err().to_string();
        let keys: Vec<String> = describe().iter().map(|f| format!("`{}`", f.key)).collect();
        assert!(
            message.ends_with(&format!("expected one of {}", keys.join(", "))),
            "{message}"
        );
    }

    /// Giving every shown default explicitly changes nothing: `--help` tells
    /// the truth.
    #[test]
    fn the_shown_defaults_are_the_defaults() {
        let defaults = resolve(&[]).unwrap();
        assert_eq!(defaults, (ServerConfig::default(), LogFormat::default()));
        for flag in describe() {
            let Some(shown) = &flag.default else { continue };
            if flag.key == "allow" || flag.key == "trusted_proxy" {
                continue; // "all": an empty list, not a value
            }
            let long = format!("--{}", flag.long);
            assert_eq!(
                resolve(&[&long, shown]).unwrap(),
                defaults,
                "{long} {shown}"
            );
        }
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let file = TomlFile::new(
            "precedence",
            "workers = 7\nidle_timeout = \"200ms\"\nallow = [\"10.0.0.0/8\"]\n\
             proxy_protocol = true\nadmin = \"off\"\nlog_format = \"json\"\n",
        );
        let (config, format) = resolve(&["--config", file.arg()]).unwrap();
        assert_eq!(config.workers, 7);
        assert_eq!(config.idle_timeout, Duration::from_millis(200));
        assert_eq!(config.allow, ["10.0.0.0/8".parse().unwrap()]);
        assert!(config.proxy_protocol);
        assert_eq!(config.admin, None);
        assert_eq!(format, LogFormat::Json);

        let (config, format) = resolve(&[
            "--config",
            file.arg(),
            "--workers",
            "3",
            "--idle-timeout",
            "1s",
            "--allow",
            "192.168.0.0/16,127.0.0.1",
            "--admin",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .unwrap();
        assert_eq!(config.workers, 3);
        assert_eq!(config.idle_timeout, Duration::from_secs(1));
        assert_eq!(config.allow.len(), 2);
        assert!(config.proxy_protocol, "a switch not given keeps the file's");
        assert_eq!(config.admin.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(format, LogFormat::Text);
    }

    #[test]
    fn the_tls_flags_make_one_setting() {
        let file = TomlFile::new("tls", "tls_cert = \"c.pem\"\ntls_allow_name = [\"a\"]\n");
        let (config, _) = resolve(&[
            "--config",
            file.arg(),
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
        ])
        .unwrap();
        assert_eq!(
            config.tls,
            Some(TlsSettings {
                cert: "c.pem".into(),
                key: "k.pem".into(),
                client_ca: Some("ca.pem".into()),
                allow_names: vec!["a".to_string()],
            })
        );
        let error = resolve(&["--tls-cert", "c.pem"]).unwrap_err();
        assert!(error.to_string().contains("needs --tls-key"), "{error}");
    }

    #[test]
    fn a_bad_file_value_names_its_key() {
        let file = TomlFile::new("bad", "queue_timeout = \"soon\"\n");
        let error = resolve(&["--config", file.arg()]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains(": queue_timeout: 'soon' is not a duration"),
            "{error}"
        );
    }
}
