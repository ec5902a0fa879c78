//! `Client`: a blocking TCP client with connect, read and write timeouts.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::{ClientTls, Error};

/// A connection to a server, with every wait bounded by a timeout.
///
/// ```no_run
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// let mut client = syncnet::Client::connect("127.0.0.1:3000", Duration::from_secs(5))?;
/// client.write_all(b"Hello, server!")?;
/// let mut reply = [0u8; 14];
/// client.read_exact(&mut reply)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    peer: SocketAddr,
    /// The TLS session, for a client made with [`Client::connect_tls`].
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Client {
    /// Connects to `addr` (trying each address it resolves to) within
    /// `timeout`, and sets that timeout on reads and writes too. A zero
    /// timeout means no timeout.
    ///
    /// For read and write timeouts of their own, set them once connected
    /// with [`set_read_timeout`](Client::set_read_timeout) and
    /// [`set_write_timeout`](Client::set_write_timeout):
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// // 1 s to connect, then 5 s for each read and each write.
    /// let client = syncnet::Client::connect("127.0.0.1:3000", Duration::from_secs(1))?;
    /// client.set_read_timeout(Some(Duration::from_secs(5)))?;
    /// client.set_write_timeout(Some(Duration::from_secs(5)))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Address`] when `addr` does not resolve; [`Error::Io`] naming
    /// the address when no connection could be made.
    pub fn connect(
        addr: impl ToSocketAddrs + std::fmt::Display,
        timeout: Duration,
    ) -> Result<Client, Error> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|_| Error::Address {
                setting: "--connect".into(),
                value: addr.to_string(),
            })?
            .collect();
        let mut last_error = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
        for candidate in addrs {
            let attempt = if timeout.is_zero() {
                TcpStream::connect(candidate)
            } else {
                TcpStream::connect_timeout(&candidate, timeout)
            };
            match attempt {
                Ok(stream) => {
                    let limit = (!timeout.is_zero()).then_some(timeout);
                    let configured = stream
                        .set_read_timeout(limit)
                        .and_then(|()| stream.set_write_timeout(limit))
                        .and_then(|()| stream.set_nodelay(true));
                    configured.map_err(|e| {
                        Error::io(format!("configuring the connection to {candidate}"), e)
                    })?;
                    return Ok(Client {
                        stream,
                        peer: candidate,
                        tls: None,
                    });
                }
                Err(e) => last_error = e,
            }
        }
        Err(Error::io(format!("cannot connect to {addr}"), last_error))
    }

    /// Connects like [`Client::connect`], then runs a TLS handshake within
    /// `timeout`, checking the server's certificate against `tls.ca` and the
    /// name `tls.server_name` (or the host part of `addr`), and presenting
    /// `tls.cert`/`tls.key` when given (mTLS).
    ///
    /// # Errors
    /// [`Error::Tls`] naming the flag for unusable TLS settings (a missing or
    /// unusable file, `--tls-cert` without `--tls-key`, no `--tls-ca`, an
    /// invalid `--tls-server-name`), checked before connecting; then as
    /// [`Client::connect`]; [`Error::Io`] when the handshake fails.
    pub fn connect_tls(addr: &str, timeout: Duration, tls: &ClientTls) -> Result<Client, Error> {
        let config = crate::tls::client_config(tls).map_err(|e| Error::Tls {
            setting: e.flag(),
            message: e.to_string(),
        })?;
        Client::connect_tls_with(addr, timeout, config, tls)
    }

    /// [`Client::connect_tls`] with a client config built beforehand (by
    /// `crate::tls::client_config`), so that callers that connect often
    /// (a `ClientPool`) read the PEM files once.
    pub(crate) fn connect_tls_with(
        addr: &str,
        timeout: Duration,
        config: Arc<rustls::ClientConfig>,
        tls: &ClientTls,
    ) -> Result<Client, Error> {
        let plain = Client::connect(addr, timeout)?;
        let host = host_of(addr);
        let name = tls.server_name(host);
        let handshake_timeout = if timeout.is_zero() {
            Duration::from_secs(3600)
        } else {
            timeout
        };
        let session =
            crate::tls::connect(plain.stream, config, name, handshake_timeout).map_err(|e| {
                Error::io(
                    format!("TLS handshake with {addr}"),
                    io::Error::other(e.to_string()),
                )
            })?;
        let rustls::StreamOwned { conn, sock } = session;
        Ok(Client {
            stream: sock,
            peer: plain.peer,
            tls: Some(Box::new(conn)),
        })
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Changes the read timeout (`None` = wait forever). A read that times
    /// out fails with `WouldBlock` or `TimedOut` (the operating system's
    /// choice); the connection stays usable.
    ///
    /// # Errors
    /// The operating system's error; `InvalidInput` for a zero duration.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Changes the write timeout (`None` = wait forever): how long a write
    /// may wait for the server to take in data. Over TLS it bounds the
    /// handshake messages written later too.
    ///
    /// # Errors
    /// The operating system's error; `InvalidInput` for a zero duration.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_write_timeout(timeout)
    }

    /// Shuts down the sending side: the server reads end of input. Over TLS
    /// a close_notify goes first.
    ///
    /// # Errors
    /// The operating system's error.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if let Some(tls) = &mut self.tls {
            tls.send_close_notify();
            crate::tls::tls_flush(tls.as_mut(), &self.stream)?;
        }
        self.stream.shutdown(Shutdown::Write)
    }

    /// True for a client made with [`Client::connect_tls`].
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The underlying socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl Client {
    /// Copies `input` to the server (then shuts down the sending side) and
    /// the server's bytes to `output` as they arrive, until both directions
    /// have closed. Reads wait without a timeout. Works the same over TLS.
    ///
    /// # Errors
    /// The first I/O error of either direction.
    pub fn relay(self, input: impl Read + Send, output: &mut impl Write) -> io::Result<()> {
        self.stream.set_read_timeout(None)?;
        let sender = self.stream.try_clone()?;
        match self.tls {
            None => thread::scope(|scope| {
                let upload = scope.spawn(move || -> io::Result<()> {
                    let mut sender = sender;
                    let mut input = input;
                    io::copy(&mut input, &mut sender)?;
                    sender.shutdown(Shutdown::Write)
                });
                let mut receiver = &self.stream;
                let download = copy_flushing(&mut receiver, output);
                let upload = upload
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("sender panicked")));
                download.and(upload)
            }),
            Some(session) => relay_tls(self.stream, sender, *session, input, output),
        }
    }
}

/// Copies `from` to `to`, flushing after each chunk so output appears as it arrives.
fn copy_flushing(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return to.flush(),
            Ok(n) => {
                to.write_all(&buf[..n])?;
                to.flush()?;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// [`Client::relay`] over TLS: one session shared by the two directions
/// behind a mutex, taken only to encrypt or decrypt, never across a
/// blocking socket read.
fn relay_tls(
    receiver: TcpStream,
    sender: TcpStream,
    session: rustls::ClientConnection,
    input: impl Read + Send,
    output: &mut impl Write,
) -> io::Result<()> {
    let session = Mutex::new(session);
    let lock = || session.lock().unwrap_or_else(|p| p.into_inner());
    thread::scope(|scope| {
        let upload = scope.spawn(|| -> io::Result<()> {
            let mut sender = &sender;
            let mut input = input;
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = match input.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                let mut tls = lock();
                if n == 0 {
                    tls.send_close_notify();
                } else {
                    tls.writer().write_all(&buf[..n])?;
                }
                while tls.wants_write() {
                    tls.write_tls(&mut sender)?;
                }
                drop(tls);
                if n == 0 {
                    return sender.shutdown(Shutdown::Write);
                }
            }
        });
        let download = (|| -> io::Result<()> {
            let mut raw = [0u8; 16 * 1024];
            let mut plain = [0u8; 16 * 1024];
            loop {
                let n = (&receiver).read(&mut raw)?;
                let mut tls = lock();
                let mut fed = &raw[..n];
                loop {
                    if tls.read_tls(&mut fed)? == 0 && fed.is_empty() {
                        break;
                    }
                    tls.process_new_packets().map_err(io::Error::other)?;
                    if fed.is_empty() {
                        break;
                    }
                }
                // Pass on what was decrypted; close_notify or EOF ends it.
                loop {
                    match tls.reader().read(&mut plain) {
                        Ok(0) => return output.flush(),
                        Ok(k) => output.write_all(&plain[..k])?,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                            return output.flush();
                        }
                        Err(e) => return Err(e),
                    }
                }
                output.flush()?;
                // Handshake messages (e.g. key updates) may need an answer.
                while tls.wants_write() {
                    tls.write_tls(&mut &receiver)?;
                }
                if n == 0 {
                    return output.flush();
                }
            }
        })();
        let upload = upload
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("sender panicked")));
        download.and(upload)
    })
}

/// The host part of `host:port` or `[v6]:port`, for the TLS server name.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _port)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.stream.read(buf),
            Some(tls) => crate::tls::tls_read(tls.as_mut(), &self.stream, buf),
        }
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.stream.write(buf),
            Some(tls) => crate::tls::tls_write(tls.as_mut(), &self.stream, buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.tls {
            None => self.stream.flush(),
            Some(tls) => crate::tls::tls_flush(tls.as_mut(), &self.stream),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("localhost:3000"), "localhost");
        assert_eq!(host_of("127.0.0.1:3000"), "127.0.0.1");
        assert_eq!(host_of("[::1]:3000"), "::1");
    }
}
