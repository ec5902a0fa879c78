//! systemd socket activation: listening sockets handed over at start-up
//! instead of bound by the server.
//!
//! The protocol (`sd_listen_fds(3)`): the process that starts us keeps the
//! listening sockets open and passes them as descriptors 3, 4, ..., with
//! `LISTEN_FDS` (how many) and `LISTEN_PID` (the pid they are meant for) in
//! the environment. Because the socket stays open in systemd between one
//! process and the next, a restart refuses nobody: connections wait in the
//! backlog until the new process accepts them. `syncnet serve` and `syncnet
//! proxy` take the service's socket from descriptor 3 and, when a second is
//! passed, the admin endpoint's from descriptor 4 (`deploy/syncnet.socket`,
//! `docs/reference.md`, "systemd socket activation").
//!
//! A server built from an inherited socket never shuts it down
//! ([`Builder::listener`](crate::Builder::listener)).

use std::net::TcpListener;

use crate::Error;

/// The listening sockets passed by socket activation.
#[derive(Debug)]
pub struct Activated {
    /// The service's listening socket: descriptor 3.
    pub listen: TcpListener,
    /// The admin endpoint's: descriptor 4, when a second socket was passed.
    pub admin: Option<TcpListener>,
}

/// Takes the listening sockets passed by systemd socket activation, if this
/// process was started that way: `LISTEN_PID` names this process and
/// `LISTEN_FDS` is at least 1. `Ok(None)` otherwise (the variables are then
/// left as they are: they were meant for another process).
///
/// When they are for us, `LISTEN_FDS` and `LISTEN_PID` are removed from the
/// environment, so that a child process does not take them for its own, and
/// the descriptors are marked close-on-exec. Call it once, at start-up,
/// before starting threads (it changes the environment). Sockets beyond the
/// second are left alone.
///
/// ```no_run
/// let mut builder = syncnet::Server::builder().listen("127.0.0.1:3000");
/// if let Some(activated) = syncnet::activation::from_env()? {
///     builder = builder.listener(activated.listen);
///     if let Some(admin) = activated.admin {
///         builder = builder.admin_listener(admin);
///     }
/// }
/// let server = builder.build()?;
/// # drop(server);
/// # Ok::<(), syncnet::Error>(())
/// ```
///
/// # Errors
/// [`Error::Io`] when a passed descriptor is not a TCP socket (e.g. a
/// `.socket` unit with a UDP or Unix socket), naming the descriptor.
pub fn from_env() -> Result<Option<Activated>, Error> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if !for_us {
        return Ok(None);
    }
    take()
}

#[cfg(target_os = "linux")]
fn take() -> Result<Option<Activated>, Error> {
    let mut fds = listenfd::ListenFd::from_env();
    let tcp = |fds: &mut listenfd::ListenFd, index: usize| {
        fds.take_tcp_listener(index)
            .map_err(|e| Error::io(format!("socket activation: descriptor {}", 3 + index), e))
    };
    let Some(listen) = tcp(&mut fds, 0)? else {
        return Ok(None);
    };
    let admin = tcp(&mut fds, 1)?;
    if fds.len() > 2 {
        log::warn!(target: "syncnet::server", passed = fds.len(); "socket activation: only the first two sockets are used (service, admin)");
    }
    Ok(Some(Activated { listen, admin }))
}

#[cfg(not(target_os = "linux"))]
fn take() -> Result<Option<Activated>, Error> {
    Ok(None)
}
