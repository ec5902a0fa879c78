//! Behind a real HAProxy (TCP mode, `send-proxy-v2`): syncnet logs the client HAProxy relayed as `peer` (HAProxy as `proxy_peer`) and applies `--max-conns-per-ip` to that client, not to HAProxy. Skipped when `haproxy` is not installed (a failure when CI=true).

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use binary::{Binary, TempFile};
use support::*;

/// The `haproxy` executable, or `None` (after saying why) when it is not
/// installed and CI is not set.
fn haproxy_path() -> Option<PathBuf> {
    support::outside::require_program("haproxy", "haproxy")
}

/// HAProxy in the foreground, killed and reaped on drop.
struct Haproxy {
    child: Child,
    front: SocketAddr,
    _config: TempFile,
}

impl Haproxy {
    /// Starts HAProxy relaying to `backend` with a PROXY v2 header, and
    /// waits until it does.
    ///
    /// The test binds the front socket (127.0.0.1, a port the kernel picks)
    /// and HAProxy inherits it (`bind fd@N`): no port is released and
    /// picked up again, so nothing else can take it in between.
    /// Its health checks go to the admin endpoint (`/readyz` on `admin`),
    /// as the README's "Behind a load balancer" advises: they never touch
    /// the service port.
    fn start(exe: PathBuf, backend: SocketAddr, admin: SocketAddr) -> Haproxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the front socket");
        let front = listener.local_addr().expect("front address");
        // Inherited across exec. The only test of this file is the only
        // thread that spawns children, and the copy is closed right after.
        socket2::SockRef::from(&listener)
            .set_cloexec(false)
            .expect("let the front socket be inherited");
        let fd = listener.as_raw_fd();
        let config = TempFile::new(
            ".cfg",
            &format!(
                "global\n    maxconn 256\n    nbthread 1\n\
                 defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n\
                 frontend fe\n    bind fd@{fd}\n    default_backend be\n\
                 backend be\n    option httpchk GET /readyz\n\
                     server syncnet {backend} send-proxy-v2 check port {admin_port} inter 500ms\n",
                admin_port = admin.port()
            ),
        );
        let spawned = Command::new(exe)
            .arg("-f")
            .arg(config.path())
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        // HAProxy holds the socket now. Without this copy the socket closes
        // when HAProxy exits, so a client waiting on it is reset, not hung.
        drop(listener);
        let mut haproxy = Haproxy {
            child: spawned.expect("start haproxy"),
            front,
            _config: config,
        };
        // Connections wait in the socket's backlog until HAProxy accepts
        // them: one echo through HAProxy and syncnet says both are up.
        let mut probe = connect(front);
        let mut back = [0u8; 6];
        let relayed = probe
            .write_all(b"ready\n")
            .and_then(|()| probe.read_exact(&mut back));
        if relayed.is_err() || &back != b"ready\n" {
            let exited = haproxy.child.try_wait().ok().flatten();
            let _ = haproxy.child.kill();
            let mut errors = String::new();
            if let Some(mut stderr) = haproxy.child.stderr.take() {
                let _ = stderr.read_to_string(&mut errors);
            }
            panic!(
                "no echo through haproxy ({relayed:?}, got {back:?}); haproxy exit status: {exited:?}; its stderr:\n{errors}"
            );
        }
        haproxy
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn behind_haproxy_the_relayed_client_is_logged_and_limited() {
    let Some(exe) = haproxy_path() else {
        return;
    };
    let mut server = Binary::serve(&[
        "--proxy-protocol",
        "--trusted-proxy",
        "127.0.0.1/32",
        "--max-conns-per-ip",
        "1",
    ]);
    let admin = server.admin.expect("the admin endpoint is on");
    let haproxy = Haproxy::start(exe, server.listen, admin);

    let mut first = connect_from(Ipv4Addr::new(127, 0, 0, 2), haproxy.front);
    assert_eq!(echo_once(&mut first, b"hello\n"), b"hello\n");

    // A second one from the same client: syncnet refuses it, HAProxy
    // passes the close on.
    let mut second = connect_from(Ipv4Addr::new(127, 0, 0, 2), haproxy.front);
    let _ = second.write_all(b"hello\n");
    expect_closed_by_server(&mut second);
    wait_until("the per-IP refusal is counted", || {
        metric(
            &server.metrics(),
            "syncnet_connections_rejected_total{reason=\"per_ip_limit\"}",
        ) == 1.0
    });

    // Another client through the same HAProxy is served.
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 3), haproxy.front);
    assert_eq!(echo_once(&mut other, b"hello\n"), b"hello\n");

    let first_addr = first.local_addr().expect("local addr").to_string();
    first.shutdown(Shutdown::Write).expect("half-close");
    let mut rest = Vec::new();
    first
        .read_to_end(&mut rest)
        .expect("read until the server closes");
    assert!(rest.is_empty(), "{rest:?}");
    let line = server.expect_json("the first client's close line", |v| {
        v["msg"] == "connection closed" && v["peer"] == first_addr.as_str()
    });
    let proxy_peer = line["proxy_peer"].as_str().unwrap_or_default();
    assert!(proxy_peer.starts_with("127.0.0.1:"), "{line}");
    assert_eq!(line["bytes_in"], 6, "{line}");
}
