//! The listening socket and how shutdown wakes the thread blocked in
//! `accept()` on it. Which way depends on who owns the socket:
//!
//! - **Bound** by the server ([`Builder::build`](super::Builder::build)):
//!   `accept()` blocks, and shutdown wakes it by shutting the listening
//!   socket down (`shutdown(2)`), which on Linux makes a blocked `accept()`
//!   return at once. The fast path: one system call per connection.
//! - **Inherited** (handed over by systemd socket activation, or by the
//!   program through [`Builder::listener`](super::Builder::listener)): the
//!   socket outlives this server, since systemd keeps it for the next process
//!   and the program may accept on it again, so it must never be shut down:
//!   `shutdown(2)` acts on the socket, not on our descriptor, and would close
//!   it for everyone. Instead the socket is put in non-blocking mode and the
//!   accept thread waits in `poll()` on it *and* on one end of a socketpair;
//!   shutdown writes a byte to the other end. At shutdown only our
//!   descriptor is closed; connections still in the backlog stay there for
//!   whoever accepts next.
//!
//! A connection to ourselves would wake the accept thread too, but on a
//! shared socket another process (the next one started by the supervisor)
//! may accept it, and it would count as a refused connection; the socketpair
//! wakes only us.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use socket2::SockRef;

/// Where a listening socket came from, which decides how shutdown stops
/// accepting on it (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Bound by the server: shut down at shutdown.
    Bound,
    /// Handed over: left open and usable at shutdown.
    Inherited,
}

/// A listening socket with the means to wake its accept thread.
#[derive(Debug)]
pub(super) struct Acceptor {
    listener: TcpListener,
    /// For an inherited socket on Linux: the end the accept thread polls and
    /// the end shutdown writes to.
    #[cfg(target_os = "linux")]
    wake: Option<(
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    )>,
    origin: Origin,
}

impl Acceptor {
    /// Wraps `listener`; an inherited one is switched to non-blocking mode
    /// (on Linux), which the accept thread's `poll()` relies on.
    pub(super) fn new(listener: TcpListener, origin: Origin) -> io::Result<Acceptor> {
        #[cfg(target_os = "linux")]
        let wake = match origin {
            Origin::Bound => None,
            Origin::Inherited => {
                // O_NONBLOCK belongs to the socket's open file, shared with
                // systemd and the next process: harmless to them (the next
                // syncnet does the same; systemd only polls it), and it is
                // what lets `accept()` here never block past a wake-up. The
                // accepted sockets do not inherit it on Linux.
                listener.set_nonblocking(true)?;
                let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
                tx.set_nonblocking(true)?;
                Some((rx, tx))
            }
        };
        Ok(Acceptor {
            listener,
            #[cfg(target_os = "linux")]
            wake,
            origin,
        })
    }

    /// Accepts one connection. For an inherited socket, waits in `poll()`
    /// until a connection arrives or [`wake`](Acceptor::wake) is called; in
    /// the latter case returns an `Interrupted` error without accepting, so
    /// the connections still in the backlog are left to the next process.
    pub(super) fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        #[cfg(target_os = "linux")]
        if let Some((rx, _)) = &self.wake {
            return accept_or_wake(&self.listener, rx);
        }
        self.listener.accept()
    }

    /// Makes a blocked [`accept`](Acceptor::accept) return.
    ///
    /// Bound sockets: on Linux, shutting down a listening socket wakes
    /// `accept()` at once with an error; elsewhere a connection to ourselves
    /// does the same (it is then closed as `shutdown`). Inherited sockets:
    /// a byte to the accept thread's socketpair (module docs); elsewhere than
    /// Linux, a connection to ourselves.
    pub(super) fn wake(&self) {
        #[cfg(target_os = "linux")]
        if let Some((_, tx)) = &self.wake {
            let _ = io::Write::write(&mut &*tx, &[1]);
            return;
        }
        let woke = self.origin == Origin::Bound
            && SockRef::from(&self.listener)
                .shutdown(Shutdown::Both)
                .is_ok();
        if (!woke || !cfg!(target_os = "linux"))
            && let Ok(addr) = self.listener.local_addr()
        {
            let _ = TcpStream::connect_timeout(&addr, Duration::from_millis(200));
        }
    }
}

/// The inherited socket's accept: `poll()` on the listener and the wake-up
/// end, then a non-blocking `accept()`. A wake-up wins over a waiting
/// connection, which stays in the backlog for the next process; only one
/// accepted in the instant between `poll()` returning and the wake-up is
/// refused (`shutdown`), as with a bound listener. `WouldBlock` after a
/// readable listener (another process took the connection first) goes back
/// to waiting.
#[cfg(target_os = "linux")]
fn accept_or_wake(
    listener: &TcpListener,
    wake: &std::os::unix::net::UnixStream,
) -> io::Result<(TcpStream, SocketAddr)> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;

    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let woken = fds[1].revents().is_some_and(|r| !r.is_empty());
        if woken {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "accept woken for shutdown",
            ));
        }
        match listener.accept() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            accepted => return accepted,
        }
    }
}
