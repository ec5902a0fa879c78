//! `Client`: a blocking TCP client with connect, read and write timeouts.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::Error;

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
}

impl Client {
    /// Connects to `addr` (trying each address it resolves to) within
    /// `timeout`, and sets that timeout on reads and writes too. A zero
    /// timeout means no timeout.
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
                    });
                }
                Err(e) => last_error = e,
            }
        }
        Err(Error::io(format!("cannot connect to {addr}"), last_error))
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Changes the read timeout (`None` = wait forever).
    ///
    /// # Errors
    /// The operating system's error.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Shuts down the sending side: the server reads end of input.
    ///
    /// # Errors
    /// The operating system's error.
    pub fn shutdown_write(&self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// The underlying socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
