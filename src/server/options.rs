//! The socket options every accepted connection carries.

use std::io;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};

use crate::config::ServerConfig;

/// Sets the per-connection socket options: `TCP_NODELAY`, the idle and write
/// timeouts (`SO_RCVTIMEO`/`SO_SNDTIMEO`), the buffer sizes when given
/// (`SO_RCVBUF`/`SO_SNDBUF`) and TCP keepalive.
///
/// On Linux an accepted socket inherits all of these from its listener, so
/// they are set once on the listener ([`Server::from_listener`](super::Server::from_listener))
/// and cost no system call per connection; elsewhere the worker sets them on
/// each accepted socket. A failure on an accepted socket means the peer is
/// already gone; its first read or write reports it.
pub(super) fn set_connection_options(socket: SockRef<'_>, config: &ServerConfig) -> io::Result<()> {
    let timeout = |d: Duration| (!d.is_zero()).then_some(d);
    socket.set_tcp_nodelay(config.nodelay)?;
    socket.set_read_timeout(timeout(config.idle_timeout))?;
    socket.set_write_timeout(timeout(config.write_timeout))?;
    // Set only when asked: setting them at all turns off the kernel's autotuning.
    if config.recv_buffer > 0 {
        socket.set_recv_buffer_size(config.recv_buffer as usize)?;
    }
    if config.send_buffer > 0 {
        socket.set_send_buffer_size(config.send_buffer as usize)?;
    }
    if config.keepalive.is_zero() {
        socket.set_keepalive(false)
    } else {
        // Probes every third of the idle time (at least 1 s), three of them:
        // a peer that vanished without a FIN or RST is reaped within about
        // twice `keepalive`, not the kernel's default 75 s × 9 probes.
        let interval = (config.keepalive / 3).max(Duration::from_secs(1));
        socket.set_tcp_keepalive(
            &TcpKeepalive::new()
                .with_time(config.keepalive)
                .with_interval(interval)
                .with_retries(3),
        )
    }
}

/// True where accepted sockets inherit [`set_connection_options`] from the listener.
pub(super) const OPTIONS_INHERITED: bool = cfg!(target_os = "linux");

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    #[test]
    fn accepted_sockets_carry_the_connection_options() {
        let config = ServerConfig {
            idle_timeout: Duration::from_millis(1500),
            write_timeout: Duration::from_millis(2500),
            keepalive: Duration::from_secs(42),
            nodelay: true,
            recv_buffer: 32 * 1024,
            send_buffer: 48 * 1024,
            ..ServerConfig::default()
        };
        let listener = super::super::builder::bind("127.0.0.1:0", "listen", 8).unwrap();
        set_connection_options(SockRef::from(&listener), &config).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        if !OPTIONS_INHERITED {
            set_connection_options(SockRef::from(&accepted), &config).unwrap();
        }
        assert!(accepted.nodelay().unwrap());
        assert_eq!(
            accepted.read_timeout().unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            accepted.write_timeout().unwrap(),
            Some(Duration::from_millis(2500))
        );
        let socket = SockRef::from(&accepted);
        // Linux doubles the value asked for (room for its bookkeeping).
        assert_eq!(socket.recv_buffer_size().unwrap(), 2 * 32 * 1024);
        assert_eq!(socket.send_buffer_size().unwrap(), 2 * 48 * 1024);
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(42)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(14)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 3);
    }
}
