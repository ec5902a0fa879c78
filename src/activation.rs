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
/// [`Error::Config`] (setting `LISTEN_FDS`, exit code 2) when `LISTEN_FDS`
/// is not a number, or more descriptors than the process may have open;
/// [`Error::Io`] when a passed descriptor is not open, not a TCP socket
/// (e.g. a `.socket` unit with a UDP or Unix socket) or not listening,
/// naming the descriptor.
pub fn from_env() -> Result<Option<Activated>, Error> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if !for_us {
        return Ok(None);
    }
    take(listen_fds()?)
}

/// How many descriptors `LISTEN_FDS` says were passed (0 when unset).
fn listen_fds() -> Result<u64, Error> {
    let Some(value) = std::env::var_os("LISTEN_FDS") else {
        return Ok(0);
    };
    let bad = |message: String| Error::Config {
        setting: "LISTEN_FDS".to_string(),
        message: format!("{message} (socket activation)"),
    };
    // `listenfd` would take descriptors from there; systemd starts at 3,
    // and so do the checks and messages here.
    if let Some(first) = std::env::var_os("LISTEN_FDS_FIRST_FD").filter(|f| f != "3") {
        return Err(Error::Config {
            setting: "LISTEN_FDS_FIRST_FD".to_string(),
            message: format!(
                "`{}`: passed descriptors start at 3 (socket activation)",
                first.to_string_lossy()
            ),
        });
    }
    let text = value.to_string_lossy();
    let count = text
        .parse::<u64>()
        .map_err(|_| bad(format!("`{text}` is not a number of descriptors")))?;
    // Descriptors 3 .. 3 + count must all be open: beyond the limit on open
    // descriptors they cannot be (and `listenfd` makes a list of them all).
    let limit = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(u64::MAX, |(soft, _)| soft);
    if count > limit.min(1 << 20) {
        return Err(bad(format!(
            "{count} descriptors: more than this process may have open ({limit})"
        )));
    }
    Ok(count)
}

#[cfg(target_os = "linux")]
fn take(count: u64) -> Result<Option<Activated>, Error> {
    // Read (and remove) the variables even when there is nothing to take.
    let mut fds = listenfd::ListenFd::from_env();
    if count == 0 {
        return Ok(None);
    }
    let tcp = |fds: &mut listenfd::ListenFd, index: usize| {
        let fd = 3 + index;
        let context = || format!("socket activation: descriptor {fd}");
        not_a_socket(fd).map_or(Ok(()), |why| {
            Err(Error::io(context(), std::io::Error::other(why)))
        })?;
        let listener = fds
            .take_tcp_listener(index)
            .map_err(|e| Error::io(context(), e))?;
        if let Some(listener) = &listener
            && !socket2::SockRef::from(listener)
                .is_listener()
                .unwrap_or(true)
        {
            let why = "a TCP socket that is not listening (a .socket unit needs ListenStream=)";
            return Err(Error::io(context(), std::io::Error::other(why)));
        }
        Ok(listener)
    };
    let Some(listen) = tcp(&mut fds, 0)? else {
        return Ok(None);
    };
    let admin = if count >= 2 { tcp(&mut fds, 1)? } else { None };
    if fds.len() > 2 {
        log::warn!(target: "syncnet::server", passed = fds.len(); "socket activation: only the first two sockets are used (service, admin)");
    }
    Ok(Some(Activated { listen, admin }))
}

/// Why descriptor `fd` cannot be a passed socket, when `/proc` tells: it is
/// not open, or it is something else (a file, a pipe). `None` when it is a
/// socket, or `/proc` is not there to say.
#[cfg(target_os = "linux")]
fn not_a_socket(fd: usize) -> Option<String> {
    if !std::path::Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    match std::fs::read_link(format!("/proc/self/fd/{fd}")) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some("not open (LISTEN_FDS counts it as passed)".to_string())
        }
        Ok(target) if !target.to_string_lossy().starts_with("socket:") => {
            Some(format!("not a socket: it is {}", target.display()))
        }
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn take(_count: u64) -> Result<Option<Activated>, Error> {
    Ok(None)
}
