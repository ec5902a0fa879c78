//! systemd socket activation: a restart refuses nobody. `systemd-socket-activate`
//! holds the listening sockets and a small supervisor
//! (`tests/socket_activation/supervisor.py`) starts `syncnet serve` on them
//! twice in a row, the second while the first drains; a client connecting
//! every 10 ms across the restart has every connection echoed. Also: a
//! listener handed to the library stays usable after the server shuts down.
//! The first test is skipped when `systemd-socket-activate` (Debian
//! `systemd`) is not installed (a failure when CI=true).

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use binary::TempFile;
use support::*;

/// How long the client keeps connecting, and how often.
const CLIENT_FOR: Duration = Duration::from_secs(3);
const CLIENT_EVERY: Duration = Duration::from_millis(10);

/// `systemd-socket-activate`, or `None` (after saying why) when it is not
/// installed and CI is not set.
fn socket_activate_path() -> Option<PathBuf> {
    support::outside::require_program("systemd-socket-activate", "systemd")
}

/// Two ports on 127.0.0.1 that were free a moment ago (systemd-socket-activate
/// binds the addresses itself); both probes are held until both are known,
/// so the two differ.
fn free_ports() -> (u16, u16) {
    let probes = [(); 2].map(|()| TcpListener::bind("127.0.0.1:0").expect("bind a probe"));
    let [a, b] = probes.map(|p| p.local_addr().expect("probe address").port());
    (a, b)
}

/// systemd-socket-activate running the supervisor; killed and reaped on drop.
struct Supervisor {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Supervisor {
    fn start(
        activate: &Path,
        listen: SocketAddr,
        admin: SocketAddr,
        logs: [&Path; 2],
    ) -> Supervisor {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/socket_activation/supervisor.py");
        let mut cmd = Command::new(activate);
        binary::clean_env(&mut cmd);
        cmd.arg("-l")
            .arg(listen.to_string())
            .arg("-l")
            .arg(admin.to_string())
            .arg("python3")
            .arg(script)
            .arg(logs[0])
            .arg(logs[1])
            .arg("--")
            .arg(binary::exe())
            .args([
                "serve",
                // Ignored (with a warning): the socket comes from systemd.
                "--listen",
                "127.0.0.1:1",
                "--shutdown-delay",
                "0",
                "--drain-timeout",
                "5s",
                "--log-format",
                "json",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("start systemd-socket-activate");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Supervisor {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one command line.
    fn tell(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write to the supervisor");
        self.stdin.flush().expect("flush to the supervisor");
    }

    /// The next line, which must start with `prefix`; returns the rest.
    fn expect(&self, prefix: &str) -> String {
        let line = self
            .lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("the supervisor did not say `{prefix}`"));
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected `{prefix}...`, the supervisor said `{line}`"))
            .trim()
            .to_string()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One connection: connect, send `message`, read it back. An error names the step.
fn echo_through(addr: SocketAddr, message: &[u8]) -> Result<(), String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, WAIT).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(WAIT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(message)
        .map_err(|e| format!("write: {e}"))?;
    let mut back = vec![0u8; message.len()];
    let mut got = 0;
    // Bounded: each read either makes progress or fails (timeout: WAIT).
    while got < back.len() {
        match stream.read(&mut back[got..]) {
            Ok(0) => return Err(format!("closed after {got} of {} bytes", message.len())),
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    if back != message {
        return Err("the echo differs".to_string());
    }
    Ok(())
}

/// Every JSON line of a log file.
fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// How many connections a log shows closed with `reason`.
fn closes(lines: &[Value], reason: &str) -> usize {
    lines
        .iter()
        .filter(|v| v["reason"] == reason && v.get("conn_id").is_some())
        .count()
}

#[test]
fn a_socket_activated_restart_refuses_nobody() {
    let Some(activate) = socket_activate_path() else {
        return;
    };
    let (port, admin_port) = free_ports();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let log_a = TempFile::new("-a.log", "");
    let log_b = TempFile::new("-b.log", "");
    let mut supervisor = Supervisor::start(&activate, listen, admin, [log_a.path(), log_b.path()]);

    // systemd-socket-activate starts the supervisor on the first connection
    // (the sockets are bound once it runs: retry the connect until then).
    // That connection is held open across the restart.
    let mut held = None;
    wait_until("systemd-socket-activate listens", || {
        held = TcpStream::connect_timeout(&listen, WAIT).ok();
        held.is_some()
    });
    let mut held = held.expect("connected");
    held.set_read_timeout(Some(WAIT)).expect("read timeout");
    supervisor.expect("started A");
    // A is up: the held connection is served, its admin endpoint
    // (descriptor 4) answers.
    wait_until("the first process answers /healthz", || {
        http_get(admin, "/healthz").0 == 200
    });
    assert_eq!(
        echo_once(&mut held, b"held across the restart"),
        b"held across the restart"
    );

    // The client: a new connection every 10 ms for 3 s, each echoed.
    let served = Arc::new(AtomicUsize::new(0));
    let client = {
        let served = Arc::clone(&served);
        thread::spawn(move || {
            let mut failures = Vec::new();
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < CLIENT_FOR {
                n += 1;
                let message = format!("connection {n:06}");
                match echo_through(listen, message.as_bytes()) {
                    Ok(()) => {
                        served.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => failures.push(format!("{message}: {e}")),
                }
                // The pace of the client, bounded by CLIENT_FOR above.
                thread::sleep(CLIENT_EVERY);
            }
            (n, failures)
        })
    };

    // About a third of the way in: SIGTERM to A, B started at once.
    wait_until("the client has been served a while", || {
        served.load(Ordering::Relaxed) >= 50
    });
    supervisor.tell("restart");
    supervisor.expect("started B");

    // The held connection drains as before: its reading side is shut, the
    // echo handler sees end of input and closes.
    assert_eq!(expect_closed_by_server(&mut held), Closed::Eof);

    let (attempts, failures) = client.join().expect("the client thread");
    assert!(
        failures.is_empty(),
        "{} of {attempts} connections failed across the restart:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // B answers on the admin socket it inherited too.
    wait_until("the second process answers /readyz", || {
        http_get(admin, "/readyz").0 == 200
    });

    supervisor.tell("stop");
    assert_eq!(
        supervisor.expect("exited A"),
        "0",
        "the first process exits 0"
    );
    assert_eq!(
        supervisor.expect("exited B"),
        "0",
        "the second process exits 0"
    );

    // Both processes served connections: the restart fell within the
    // client's run. A closed the held one with reason `drain`; --listen was
    // ignored with a warning.
    let a = json_lines(log_a.path());
    let b = json_lines(log_b.path());
    assert!(closes(&a, "eof") > 0, "the first process served none");
    assert!(closes(&b, "eof") > 0, "the second process served none");
    // A client connection in flight at the signal may drain too (it was
    // still echoed: no failures above); the held one is told by its size.
    let held_len = b"held across the restart".len();
    let held_drained = a
        .iter()
        .filter(|v| v["reason"] == "drain" && v["bytes_in"] == held_len)
        .count();
    assert_eq!(held_drained, 1, "the held connection drained");
    assert!(
        a.iter().any(|v| v["level"] == "warn"
            && v["msg"]
                .as_str()
                .is_some_and(|m| m.contains("--listen 127.0.0.1:1 is ignored"))),
        "no warning about the ignored --listen"
    );
    let startup = a
        .iter()
        .find(|v| v.get("listen").is_some())
        .expect("a start-up line");
    assert_eq!(
        startup["listen"],
        listen.to_string(),
        "A accepts on the inherited socket"
    );
    assert_eq!(
        startup["admin"],
        admin.to_string(),
        "A's admin endpoint is the inherited socket"
    );
}

#[test]
fn a_handed_over_listener_stays_usable_after_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let kept = listener.try_clone().expect("a second descriptor");

    let first = spawn_echo(builder_on(listener));
    assert_eq!(first.local_addr(), addr);
    let mut client = connect(addr);
    assert_eq!(echo_once(&mut client, b"first"), b"first");
    first.shutdown();
    assert_eq!(expect_closed_by_server(&mut client), Closed::Eof);

    // The socket is still listening: a connection made now waits in the
    // backlog (it would be refused had shutdown closed the socket) ...
    let mut waiting = connect(addr);
    waiting
        .write_all(b"second")
        .expect("write while nobody serves");
    // ... and a server on the same socket serves it.
    let second = spawn_echo(builder_on(kept));
    let mut back = [0u8; 6];
    waiting.read_exact(&mut back).expect("read the echo");
    assert_eq!(&back, b"second");
    second.shutdown();
}

/// A builder accepting on `listener`, admin endpoint off.
fn builder_on(listener: TcpListener) -> syncnet::Builder {
    syncnet::Server::builder().listener(listener).admin(None)
}

/// `syncnet proxy` takes its listening socket from systemd too: started by
/// `systemd-socket-activate` with `--listen` naming another address, it
/// relays connections made to the passed socket and says the flag was
/// ignored.
#[test]
fn a_socket_activated_proxy_relays_on_the_passed_socket() {
    let Some(activate) = socket_activate_path() else {
        return;
    };
    let upstream = spawn_echo(builder());
    let (port, _) = free_ports();
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let log = TempFile::new(".log", "");
    let mut cmd = Command::new(activate);
    binary::clean_env(&mut cmd);
    cmd.arg("-l")
        .arg(listen.to_string())
        .arg(binary::exe())
        .args(["proxy", "--upstream"])
        .arg(upstream.local_addr().to_string())
        .args([
            "--listen",
            "127.0.0.1:1",
            "--admin",
            "off",
            "--log-format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log.path()).expect("create the log file"));
    let mut child = cmd.spawn().expect("start systemd-socket-activate");
    let mut last = String::new();
    wait_until(
        "the proxy relays on the passed socket",
        || match echo_through(listen, b"through the passed socket") {
            Ok(()) => true,
            Err(e) => {
                last = e;
                false
            }
        },
    );
    let _ = child.kill();
    let _ = child.wait();
    let lines = json_lines(log.path());
    assert!(
        lines.iter().any(|v| v["level"] == "warn"
            && v["ignored"] == "127.0.0.1:1"
            && v["addr"] == listen.to_string()),
        "no warning that --listen is ignored ({last}):\n{}",
        std::fs::read_to_string(log.path()).unwrap_or_default()
    );
}
