//! The handshake loop shared by both sides: blocking I/O on a `&TcpStream`,
//! bounded as a whole by a deadline, the socket's timeouts restored
//! afterwards; and [`HandshakeError`], why a handshake did not complete.

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use rustls::{ConnectionCommon, SideData};

/// Why a TLS handshake did not complete. Each is the `tls` reject reason;
/// the Display text is for the log line.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The handshake was not done within the timeout (a silent or slow peer).
    Timeout(Duration),
    /// The peer broke the protocol or failed authentication: not TLS at all,
    /// no acceptable version or cipher, no or an untrusted certificate, an
    /// alert from the peer.
    Tls(rustls::Error),
    /// The peer closed the connection before the handshake finished.
    Closed,
    /// The socket failed (connection reset, ...).
    Io(io::Error),
    /// Client only: the server name to verify is neither a DNS name nor an
    /// IP address.
    ServerName(String),
}

impl HandshakeError {
    /// Whether the handshake ran out of time, as opposed to failing.
    #[cfg(test)]
    pub(crate) fn is_timeout(&self) -> bool {
        matches!(self, HandshakeError::Timeout(_))
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::Timeout(after) => write!(f, "TLS handshake timed out after {after:?}"),
            HandshakeError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            HandshakeError::Closed => {
                write!(f, "TLS handshake failed: the peer closed the connection")
            }
            HandshakeError::Io(e) => write!(f, "TLS handshake failed: {e}"),
            HandshakeError::ServerName(name) => {
                write!(
                    f,
                    "TLS server name {name:?} is not a valid DNS name or IP address"
                )
            }
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeError::Tls(e) => Some(e),
            HandshakeError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Completes the handshake of `conn` on `tcp` within `timeout`, restoring
/// the socket's read and write timeouts afterwards.
pub(super) fn handshake<C, S>(
    conn: &mut C,
    tcp: &TcpStream,
    timeout: Duration,
) -> Result<(), HandshakeError>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    let start = Instant::now();
    let read_timeout = tcp.read_timeout().map_err(HandshakeError::Io)?;
    let write_timeout = tcp.write_timeout().map_err(HandshakeError::Io)?;
    let outcome = drive_handshake(conn, tcp, start, timeout);
    let restored = tcp
        .set_read_timeout(read_timeout)
        .and_then(|()| tcp.set_write_timeout(write_timeout));
    outcome?;
    restored.map_err(HandshakeError::Io)
}

/// The handshake loop: write what rustls has to send, else read one chunk
/// and process it; before each I/O the socket timeout is set to what is
/// left of the deadline, so the deadline bounds the whole exchange.
fn drive_handshake<C, S>(
    conn: &mut C,
    tcp: &TcpStream,
    start: Instant,
    timeout: Duration,
) -> Result<(), HandshakeError>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    let mut sock = tcp;
    loop {
        if conn.wants_write() {
            let left = time_left(start, timeout)?;
            tcp.set_write_timeout(Some(left))
                .map_err(HandshakeError::Io)?;
            match conn.write_tls(&mut sock) {
                Ok(0) => return Err(HandshakeError::Closed),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_failure(e, timeout)),
            }
            continue;
        }
        if !conn.is_handshaking() {
            return Ok(());
        }
        if !conn.wants_read() {
            // rustls always wants to read or write while handshaking; guard
            // against spinning should that ever change.
            return Err(HandshakeError::Tls(rustls::Error::General(
                "handshake stalled".into(),
            )));
        }
        let left = time_left(start, timeout)?;
        tcp.set_read_timeout(Some(left))
            .map_err(HandshakeError::Io)?;
        match conn.read_tls(&mut sock) {
            Ok(0) => return Err(HandshakeError::Closed),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_failure(e, timeout)),
        }
        if let Err(e) = conn.process_new_packets() {
            send_alert(conn, tcp, start, timeout);
            return Err(HandshakeError::Tls(e));
        }
    }
}

/// What is left of the handshake deadline, or [`HandshakeError::Timeout`].
fn time_left(start: Instant, timeout: Duration) -> Result<Duration, HandshakeError> {
    let left = timeout.saturating_sub(start.elapsed());
    if left.is_zero() {
        Err(HandshakeError::Timeout(timeout))
    } else {
        Ok(left)
    }
}

/// A socket error during the handshake: a socket timeout (set to the time
/// left) means the deadline passed.
fn io_failure(e: io::Error, timeout: Duration) -> HandshakeError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HandshakeError::Timeout(timeout),
        _ => HandshakeError::Io(e),
    }
}

/// Best effort, within the deadline: send the alert rustls queued to tell
/// the peer why the handshake failed.
fn send_alert<C, S>(conn: &mut C, tcp: &TcpStream, start: Instant, timeout: Duration)
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    let mut sock = tcp;
    while conn.wants_write() {
        let Ok(left) = time_left(start, timeout) else {
            return;
        };
        if tcp.set_write_timeout(Some(left)).is_err() {
            return;
        }
        match conn.write_tls(&mut sock) {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}
