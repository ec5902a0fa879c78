//! [`ServerConfig::validate`]: the settings that have a lower bound or need
//! another setting.

use super::ServerConfig;
use crate::Error;

/// The largest `workers` and `queue` we accept: a million connections is
/// beyond what one process serves with a thread each, and the bound keeps
/// `workers + queue` (and every count derived from it) far from overflow.
pub const MAX_WORKERS_OR_QUEUE: usize = 1_000_000;

/// The smallest worker stack we accept: below this even an echo loop and the
/// standard library's own frames risk overflowing, which aborts the process.
pub const MIN_WORKER_STACK_SIZE: usize = 64 * 1024;

impl ServerConfig {
    /// Checks the settings that have a lower bound or need another setting,
    /// naming the field at fault.
    ///
    /// # Errors
    /// [`Error::Config`] when `workers` or `backlog` is 0, `workers` or
    /// `queue` is above [`MAX_WORKERS_OR_QUEUE`], `recv_buffer` or
    /// `send_buffer` above `i32::MAX`, `handshake_timeout`
    /// is zero, `trusted_proxies` is set without `proxy_protocol`, or the
    /// worker stack is below [`MIN_WORKER_STACK_SIZE`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.workers == 0 {
            return Err(Error::config("workers", "must be at least 1, got 0"));
        }
        for (field, value) in [("workers", self.workers), ("queue", self.queue)] {
            if value > MAX_WORKERS_OR_QUEUE {
                return Err(Error::config(
                    field,
                    format!("must be at most {MAX_WORKERS_OR_QUEUE}, got {value}"),
                ));
            }
        }
        // SO_RCVBUF and SO_SNDBUF take a C int: a larger value would reach
        // the kernel negative.
        for (field, value) in [
            ("recv_buffer", self.recv_buffer),
            ("send_buffer", self.send_buffer),
        ] {
            if i32::try_from(value).is_err() {
                return Err(Error::config(
                    field,
                    format!("must be at most {} bytes, got {value}", i32::MAX),
                ));
            }
        }
        if !(1..=128).contains(&self.per_ip_prefix_v6) {
            return Err(Error::config(
                "per_ip_prefix_v6",
                format!("must be 1 to 128, got {}", self.per_ip_prefix_v6),
            ));
        }
        if self.backlog == 0 {
            return Err(Error::config("backlog", "must be at least 1, got 0"));
        }
        if self.handshake_timeout.is_zero() {
            return Err(Error::config(
                "handshake_timeout",
                "must be above 0 (it bounds the TLS handshake and the PROXY header read)",
            ));
        }
        if !self.trusted_proxies.is_empty() && !self.proxy_protocol {
            return Err(Error::config(
                "trusted_proxies",
                "needs `proxy_protocol` (without it no PROXY header is read)",
            ));
        }
        if self.worker_stack_size < MIN_WORKER_STACK_SIZE {
            return Err(Error::config(
                "worker_stack_size",
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
    use std::time::Duration;

    use super::*;

    fn error_of(change: impl FnOnce(&mut ServerConfig)) -> String {
        let mut config = ServerConfig::default();
        change(&mut config);
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(
            error_of(|c| c.workers = 0),
            "invalid `workers`: must be at least 1, got 0"
        );
        assert_eq!(
            error_of(|c| c.backlog = 0),
            "invalid `backlog`: must be at least 1, got 0"
        );
        assert!(
            error_of(|c| c.handshake_timeout = Duration::ZERO)
                .starts_with("invalid `handshake_timeout`: ")
        );
        assert_eq!(
            error_of(|c| c.trusted_proxies = vec!["10.0.0.1".parse().unwrap()]),
            "invalid `trusted_proxies`: needs `proxy_protocol` (without it no PROXY header is read)"
        );
        assert_eq!(
            error_of(|c| c.worker_stack_size = 100),
            "invalid `worker_stack_size`: must be at least 65536 bytes, got 100"
        );
        ServerConfig::default().validate().unwrap();
    }
}
