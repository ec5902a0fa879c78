//! [`ServerConfig::validate`]: the settings that have a lower bound or need
//! another setting.

use super::ServerConfig;
use crate::Error;

/// The smallest worker stack we accept: below this even an echo loop and the
/// standard library's own frames risk overflowing, which aborts the process.
pub const MIN_WORKER_STACK_SIZE: usize = 64 * 1024;

impl ServerConfig {
    /// Checks the settings that have a lower bound, naming the flag at fault.
    ///
    /// # Errors
    /// [`Error::Config`] when `workers` or `backlog` is 0 or the worker stack
    /// is below [`MIN_WORKER_STACK_SIZE`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.workers == 0 {
            return Err(Error::config("--workers", "must be at least 1, got 0"));
        }
        if self.backlog == 0 {
            return Err(Error::config("--backlog", "must be at least 1, got 0"));
        }
        if self.handshake_timeout.is_zero() {
            return Err(Error::config(
                "--tls-handshake-timeout",
                "must be above 0 (it bounds the TLS handshake and the PROXY header read)",
            ));
        }
        if !self.trusted_proxies.is_empty() && !self.proxy_protocol {
            return Err(Error::config(
                "--trusted-proxy",
                "needs --proxy-protocol (without it no PROXY header is read)",
            ));
        }
        if self.worker_stack_size < MIN_WORKER_STACK_SIZE {
            return Err(Error::config(
                "--worker-stack-size",
                format!(
                    "must be at least {MIN_WORKER_STACK_SIZE} bytes, got {}",
                    self.worker_stack_size
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_flag() {
        let cfg = ServerConfig {
            workers: 0,
            ..ServerConfig::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("--workers")
        );
        let cfg = ServerConfig {
            backlog: 0,
            ..ServerConfig::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("--backlog")
        );
    }
}
