//! [`Lease`]: a connection lent by the pool, given back when dropped.

use std::fmt;
use std::io::{self, Read, Write};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Instant;

use super::shared::{Shared, bounded, limit};
use crate::Client;

/// A connection lent by a [`ClientPool`](super::ClientPool): derefs to
/// [`Client`], and is `Read + Write` itself.
///
/// Dropping it gives the connection back to the pool for the next caller,
/// unless it is broken: [`discard`](Lease::discard) was called, a read or
/// write **through the lease** failed or found end of input (the server
/// closed), or the thread is panicking. A broken connection is closed and
/// its slot freed.
///
/// Use the lease's own `read`/`write` (what `lease.read(..)`, `write_all`
/// and the frame readers and writers call) so that failures are seen;
/// after I/O on the underlying socket (e.g. through
/// [`Client::stream`]) that leaves the protocol mid-message, call
/// `discard`. Timeouts changed through the `Client` stay with the
/// connection: set them back, or discard it.
pub struct Lease {
    /// `Some` until dropped.
    client: Option<Client>,
    /// The address, as the pool knows it.
    key: Arc<str>,
    shared: Arc<Shared>,
    /// Not to be given back to the pool.
    broken: bool,
    /// The read/write timeouts were lowered for one call: restore them
    /// before the connection goes back.
    lowered: bool,
}

impl Lease {
    pub(super) fn new(shared: Arc<Shared>, key: Arc<str>, client: Client) -> Lease {
        Lease {
            client: Some(client),
            key,
            shared,
            broken: false,
            lowered: false,
        }
    }

    /// The address the connection is for, as given to the pool.
    pub fn addr(&self) -> &str {
        &self.key
    }

    /// Closes the connection instead of giving it back, e.g. after a reply
    /// that left the protocol in an unknown state.
    pub fn discard(mut self) {
        self.broken = true;
    }

    /// True once the connection will be closed rather than given back.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Marks the connection as not to be given back.
    pub(super) fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Lowers the read and write timeouts to the time left before
    /// `deadline`, for one call; they are set back when the lease is
    /// dropped.
    pub(super) fn lower_timeouts(&mut self, deadline: Instant) -> io::Result<()> {
        let options = &self.shared.options;
        let read = bounded(options.read_timeout, Some(deadline));
        let write = bounded(options.write_timeout, Some(deadline));
        self.lowered = true;
        let client = self.client();
        client.set_read_timeout(read)?;
        client.set_write_timeout(write)
    }

    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a lease holds its client until dropped")
    }

    fn client_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a lease holds its client until dropped")
    }

    /// Marks the connection broken after an error, or after end of input
    /// (`Ok(0)` for a non-empty buffer).
    fn watch(&mut self, result: io::Result<usize>, wanted: usize) -> io::Result<usize> {
        match &result {
            Ok(0) if wanted > 0 => self.broken = true,
            Err(e) if e.kind() != io::ErrorKind::Interrupted => self.broken = true,
            _ => {}
        }
        result
    }
}

impl Deref for Lease {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client()
    }
}

impl DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Client {
        self.client_mut()
    }
}

impl Read for Lease {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = self.client_mut().read(buf);
        self.watch(result, buf.len())
    }
}

impl Write for Lease {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.client_mut().write(buf);
        self.watch(result, buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.client_mut().flush();
        if result.is_err() {
            self.broken = true;
        }
        result
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut client = self.client.take();
        let mut reusable = !self.broken && !std::thread::panicking();
        if reusable && self.lowered {
            let options = &self.shared.options;
            reusable = client.as_ref().is_some_and(|c| {
                c.set_read_timeout(limit(options.read_timeout))
                    .and_then(|()| c.set_write_timeout(limit(options.write_timeout)))
                    .is_ok()
            });
        }
        if !reusable {
            client = None;
        }
        self.shared.check_in(&self.key, client);
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("addr", &self.key)
            .field("client", &self.client)
            .field("broken", &self.broken)
            .finish()
    }
}
