//! The two halves of a split [`Conn`](super::Conn): [`ConnReader`] and
//! [`ConnWriter`], usable from two threads at once.
//!
//! Plain TCP needs nothing shared: a `&TcpStream` reads and writes on its
//! own. A TLS session is one state machine for both directions, so the
//! halves share it behind a mutex, with one rule: **no one blocks on the
//! socket while holding it for reading.** The reader waits for ciphertext
//! without the lock, then locks only to decrypt it. The writer encrypts and
//! sends under the lock, so TLS records leave in the order they were
//! sealed (a record sent out of order would break the session).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Mutex;

use super::{ConnShared, ReadState, is_timeout, lock};
use crate::lifecycle::Lifecycle;

/// Ciphertext buffered by a TLS read half: received from the socket, not
/// yet handed to rustls.
const INBOX_SIZE: usize = 16 * 1024;

/// The reading half of a split [`Conn`](super::Conn): `Read`, and `Send`.
/// See [`Conn::split`](super::Conn::split).
#[derive(Debug)]
pub struct ConnReader<'a> {
    pub(super) state: &'a mut ReadState,
    pub(super) shared: &'a ConnShared,
    pub(super) lifecycle: &'a Lifecycle,
    pub(super) tls: Option<TlsInbox<'a>>,
}

/// The writing half of a split [`Conn`](super::Conn): `Write`, and `Send`.
/// See [`Conn::split`](super::Conn::split).
#[derive(Debug)]
pub struct ConnWriter<'a> {
    pub(super) shared: &'a ConnShared,
    pub(super) tls: Option<&'a Mutex<rustls::ServerConnection>>,
    pub(super) timed_out: &'a mut bool,
}

/// A read half's view of the shared TLS session, and its ciphertext inbox.
#[derive(Debug)]
pub(super) struct TlsInbox<'a> {
    session: &'a Mutex<rustls::ServerConnection>,
    inbox: Vec<u8>,
    /// `inbox[start..end]` is received and not yet given to rustls.
    start: usize,
    end: usize,
}

impl<'a> TlsInbox<'a> {
    pub(super) fn new(session: &'a Mutex<rustls::ServerConnection>) -> TlsInbox<'a> {
        TlsInbox {
            session,
            inbox: Vec::new(),
            start: 0,
            end: 0,
        }
    }

    /// Reads plaintext: from what rustls already decrypted, else by
    /// decrypting buffered ciphertext, else by waiting on the socket
    /// (without the lock) for more. End of input is `Ok(0)`, with or without
    /// the peer's close_notify, as for a whole `Conn`.
    fn read(&mut self, stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut session = lock(self.session);
                loop {
                    match session.reader().read(buf) {
                        Ok(n) => return Ok(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                        Err(e) => return Err(e),
                    }
                    if self.start == self.end {
                        break;
                    }
                    let mut pending = &self.inbox[self.start..self.end];
                    let taken = session.read_tls(&mut pending)?;
                    self.start += taken;
                    let processed = session.process_new_packets();
                    if session.wants_write() {
                        // An alert or a key update answer: short, and sent in
                        // order because the writer also sends under the lock.
                        let mut sock = stream;
                        let _ = session.write_tls(&mut sock);
                    }
                    if let Err(e) = processed {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
            }
            // Nothing to decrypt: wait for ciphertext, without the lock.
            if self.inbox.is_empty() {
                self.inbox = vec![0; INBOX_SIZE];
            }
            let n = (&*stream).read(&mut self.inbox)?;
            if n == 0 {
                return Ok(0);
            }
            self.start = 0;
            self.end = n;
        }
    }
}

impl ConnReader<'_> {
    /// Forgets that a read timed out, for a caller that keeps reading after
    /// a timeout (the proxy, when the other direction was busy): the
    /// connection's close reason is then no longer `idle_timeout` unless a
    /// later read times out too.
    pub(crate) fn forget_timeout(&mut self) {
        self.state.timed_out = false;
    }
}

impl Read for ConnReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let ConnReader {
            state,
            shared,
            lifecycle,
            tls,
        } = self;
        let stream = &shared.stream;
        state.read(shared, lifecycle, buf, |buf| match tls {
            None => (&*stream).read(buf),
            Some(tls) => tls.read(stream, buf),
        })
    }
}

impl ConnWriter<'_> {
    /// Ends the writing side: TLS sends its close_notify first; the peer
    /// then reads end of input, and can still send to us (a half-close).
    ///
    /// # Errors
    /// The operating system's error, e.g. when the peer is gone.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls {
            let mut session = lock(tls);
            session.send_close_notify();
            crate::tls::tls_flush(&mut *session, &self.shared.stream)?;
        }
        self.shared.stream.shutdown(Shutdown::Write)
    }
}

impl Write for ConnWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let stream = &self.shared.stream;
        let result = match self.tls {
            None => (&*stream).write(buf),
            Some(tls) => crate::tls::tls_write(&mut *lock(tls), stream, buf),
        };
        match result {
            Ok(n) => {
                ConnShared::add(&self.shared.bytes_out, n);
                Ok(n)
            }
            Err(e) => {
                *self.timed_out |= is_timeout(&e);
                Err(e)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.tls {
            None => Ok(()),
            Some(tls) => crate::tls::tls_flush(&mut *lock(tls), &self.shared.stream),
        }
    }
}
