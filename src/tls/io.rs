//! Moving plaintext over an established TLS connection on a `&TcpStream`:
//! [`tls_read`], [`tls_write`] and [`tls_flush`], under the socket's own
//! timeouts.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::{Deref, DerefMut};

use rustls::{ConnectionCommon, SideData};

/// Reads plaintext from an established TLS connection, like `Read::read`
/// on the socket: blocks until some data, end of input or an error.
///
/// End of input is `Ok(0)`, as on a plain socket, both after the peer's
/// close_notify and when the TCP stream ends without one (rustls'
/// `UnexpectedEof`: what the drain's `shutdown(Read)` and many clients
/// produce). A socket timeout is the socket's `WouldBlock`/`TimedOut`
/// error; a corrupt record or a fatal alert from the peer is `InvalidData`.
/// Pending TLS output (e.g. a key update response) is written as needed. No
/// allocation of its own: the plaintext is copied once, from rustls' buffer
/// into `buf`.
pub(crate) fn tls_read<C, S>(conn: &mut C, tcp: &TcpStream, buf: &mut [u8]) -> io::Result<usize>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    if buf.is_empty() {
        return Ok(0);
    }
    let mut sock = tcp;
    match rustls::Stream::new(conn, &mut sock).read(buf) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
        other => other,
    }
}

/// Writes all of `buf` as TLS records and sends them, like `Write::write`
/// on the socket but never a short count while the socket accepts data: it
/// encrypts at most rustls' buffer limit (64 KiB) at a time and sends each
/// part before the next, so memory stays bounded and nothing is left queued
/// when it returns `Ok(buf.len())` (no separate flush is needed).
///
/// If sending fails after rustls has taken some bytes, those bytes are
/// counted (`Ok(n)`, `n < buf.len()` possible) and stay queued: the next
/// `tls_write` or [`tls_flush`] sends them first or reports the error (a
/// write timeout is the socket's `WouldBlock`/`TimedOut`). Bytes are never
/// sent twice.
pub(crate) fn tls_write<C, S>(conn: &mut C, tcp: &TcpStream, buf: &[u8]) -> io::Result<usize>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    tls_flush(conn, tcp)?;
    let mut written = 0;
    while written < buf.len() {
        let n = conn.writer().write(&buf[written..])?;
        if n == 0 {
            // The send buffer is empty here, so rustls refusing more means
            // it cannot take any (e.g. after close_notify was sent).
            return if written == 0 {
                Err(io::ErrorKind::WriteZero.into())
            } else {
                Ok(written)
            };
        }
        written += n;
        if tls_flush(conn, tcp).is_err() {
            // Counted and queued: the error comes back on the next call.
            return Ok(written);
        }
    }
    Ok(written)
}

/// Sends every queued TLS record (blocking, under the socket's write
/// timeout).
pub(crate) fn tls_flush<C, S>(conn: &mut C, tcp: &TcpStream) -> io::Result<()>
where
    C: DerefMut + Deref<Target = ConnectionCommon<S>>,
    S: SideData,
{
    let mut sock = tcp;
    while conn.wants_write() {
        match conn.write_tls(&mut sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
