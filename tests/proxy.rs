//! `syncnet::proxy::Proxy` and `syncnet proxy`: bytes both ways, half-closes,
//! balancing, failover, PROXY headers to the upstream, the close line.
//! Everything on 127.0.0.1; upstreams are syncnet servers or written here.

#[path = "support/binary.rs"]
mod binary;
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use support::{WAIT, builder, connect, metric, metrics, random_bytes, spawn_echo, spawn_with};
use syncnet::proxy::{Balance, Proxy, ProxyBuilder, Version};
use syncnet::{Conn, ServerHandle};

/// A proxy server on 127.0.0.1:0 (admin endpoint on) running `proxy`,
/// whose metrics go in the server's registry.
fn spawn_proxy(proxy: ProxyBuilder) -> ServerHandle {
    let server = builder().build().expect("server builds");
    let proxy = proxy
        .metrics(&server.metrics_registry())
        .build()
        .expect("proxy builds");
    server.spawn(proxy).expect("server starts")
}

/// An address where nothing listens (a port just closed).
fn dead_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// An upstream that writes `name` to each connection, then echoes.
fn spawn_named(name: &'static [u8]) -> ServerHandle {
    spawn_with(builder(), move |conn: &mut Conn| {
        conn.write_all(name)?;
        syncnet::echo(conn)
    })
}

/// Connects through the proxy and reads the one-byte name of the upstream.
fn which_upstream(proxy: SocketAddr) -> (TcpStream, u8) {
    let mut client = connect(proxy);
    let mut name = [0u8; 1];
    client.read_exact(&mut name).expect("the upstream's name");
    (client, name[0])
}

#[test]
fn a_mebibyte_echoes_intact_through_the_proxy() {
    let upstream = spawn_echo(builder());
    let proxy = spawn_proxy(Proxy::builder().upstream(upstream.local_addr().to_string()));
    let data = random_bytes(1 << 20);
    let client = connect(proxy.local_addr());
    let mut writer = client.try_clone().unwrap();
    let sent = data.clone();
    let sending = thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(data.len());
    (&client).read_to_end(&mut back).expect("read the echo");
    sending.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echo differs");
    proxy.shutdown();
    upstream.shutdown();
}

#[test]
fn a_half_closed_client_gets_the_whole_reply_then_eof() {
    // An upstream that answers only once it sees end of input.
    let reply: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let expected = reply.clone();
    let upstream = spawn_with(builder(), move |conn: &mut Conn| {
        let mut request = Vec::new();
        conn.read_to_end(&mut request)?;
        assert_eq!(request, b"question");
        conn.write_all(&reply)?;
        Ok(())
    });
    let echo = spawn_echo(builder());
    for addr in [upstream.local_addr(), echo.local_addr()] {
        let proxy = spawn_proxy(Proxy::builder().upstream(addr.to_string()));
        let mut client = connect(proxy.local_addr());
        client.write_all(b"question").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).expect("the reply, then EOF");
        if addr == echo.local_addr() {
            assert_eq!(got, b"question");
        } else {
            assert!(got == expected, "reply of {} bytes differs", got.len());
        }
        proxy.shutdown();
    }
    upstream.shutdown();
    echo.shutdown();
}

#[test]
fn round_robin_alternates() {
    let a = spawn_named(b"A");
    let b = spawn_named(b"B");
    let proxy = spawn_proxy(
        Proxy::builder()
            .upstream(a.local_addr().to_string())
            .upstream(b.local_addr().to_string())
            .balance(Balance::RoundRobin),
    );
    let names: Vec<u8> = (0..6)
        .map(|_| which_upstream(proxy.local_addr()).1)
        .collect();
    for pair in names.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "round robin sent in a row to one: {names:?}"
        );
    }
    proxy.shutdown();
}

#[test]
fn least_conn_picks_the_upstream_with_fewer_connections() {
    let a = spawn_named(b"A");
    let b = spawn_named(b"B");
    let (a_addr, b_addr) = (a.local_addr().to_string(), b.local_addr().to_string());
    let proxy = spawn_proxy(Proxy::builder().upstream(&a_addr).upstream(&b_addr));
    let addr_of = |name: u8| if name == b'A' { &a_addr } else { &b_addr };
    let active = |name: u8| {
        metric(
            &metrics(&proxy),
            &format!(
                "syncnet_upstream_connections_active{{upstream=\"{}\"}}",
                addr_of(name)
            ),
        )
    };
    // Hold two connections on one upstream: every new one goes to the other.
    let (_first, busy) = which_upstream(proxy.local_addr());
    let (second, other) = which_upstream(proxy.local_addr());
    assert_ne!(busy, other);
    drop(second);
    support::wait_until("the closed connection is no longer active", || {
        active(other) == 0.0
    });
    // `busy` still holds one, `other` none: the next goes to `other`,
    // whichever turn it is.
    for _ in 0..2 {
        let (client, name) = which_upstream(proxy.local_addr());
        assert_eq!(name, other, "least-conn chose the busier upstream");
        drop(client);
        support::wait_until("the closed connection is no longer active", || {
            active(other) == 0.0
        });
    }
    assert_eq!(active(busy), 1.0);
    proxy.shutdown();
}

#[test]
fn a_dead_upstream_is_skipped_counted_and_shown_down() {
    let live = spawn_named(b"L");
    let dead = dead_addr().to_string();
    let proxy = spawn_proxy(
        Proxy::builder()
            .upstream(&dead)
            .upstream(live.local_addr().to_string())
            .balance(Balance::RoundRobin)
            .upstream_down(Duration::from_secs(60)),
    );
    for _ in 0..4 {
        let (_client, name) = which_upstream(proxy.local_addr());
        assert_eq!(name, b'L');
    }
    let text = metrics(&proxy);
    let failures = metric(
        &text,
        &format!("syncnet_upstream_connect_failures_total{{upstream=\"{dead}\"}}"),
    );
    assert_eq!(failures, 1.0, "tried once, then skipped while down");
    assert_eq!(
        metric(
            &text,
            &format!("syncnet_upstream_up{{upstream=\"{dead}\"}}")
        ),
        0.0
    );
    let live_up = format!("syncnet_upstream_up{{upstream=\"{}\"}}", live.local_addr());
    assert_eq!(metric(&text, &live_up), 1.0);
    proxy.shutdown();
}

#[test]
fn with_every_upstream_dead_the_client_is_closed_soon() {
    let connect_timeout = Duration::from_millis(500);
    let proxy = spawn_proxy(
        Proxy::builder()
            .upstream(dead_addr().to_string())
            .upstream(dead_addr().to_string())
            .connect_timeout(connect_timeout),
    );
    let started = Instant::now();
    let mut client = connect(proxy.local_addr());
    support::expect_closed_within(&mut client, connect_timeout + Duration::from_secs(1));
    assert!(started.elapsed() < connect_timeout + Duration::from_secs(1));
    let text = metrics(&proxy);
    assert_eq!(
        metric(&text, "syncnet_connections_closed_total{reason=\"error\"}"),
        1.0
    );
    proxy.shutdown();
}

/// What [`header_upstream`] received: the header, then the body.
type Received = thread::JoinHandle<(Vec<u8>, Vec<u8>)>;

/// An upstream written here: accepts one connection, reads `header_len`
/// bytes (or, for 0, a v1 line) and then `body_len` bytes; returns both.
fn header_upstream(header_len: usize, body_len: usize) -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reading = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut header = Vec::new();
        if header_len == 0 {
            let mut byte = [0u8; 1];
            while !header.ends_with(b"\r\n") && header.len() < 108 {
                stream.read_exact(&mut byte).unwrap();
                header.push(byte[0]);
            }
        } else {
            header.resize(header_len, 0);
            stream.read_exact(&mut header).unwrap();
        }
        let mut body = vec![0u8; body_len];
        stream.read_exact(&mut body).unwrap();
        stream.write_all(b"ok").unwrap();
        (header, body)
    });
    (addr, reading)
}

#[test]
fn proxy_headers_name_the_client_before_its_bytes() {
    for version in [Version::V1, Version::V2] {
        let header_len = if version == Version::V1 { 0 } else { 28 };
        let (upstream, reading) = header_upstream(header_len, 5);
        let proxy = spawn_proxy(
            Proxy::builder()
                .upstream(upstream.to_string())
                .send_proxy_protocol(Some(version)),
        );
        let mut client = connect(proxy.local_addr());
        client.write_all(b"hello").unwrap();
        let mut ok = [0u8; 2];
        client.read_exact(&mut ok).unwrap();
        let (header, body) = reading.join().unwrap();
        assert_eq!(body, b"hello");
        let source = client.local_addr().unwrap();
        let destination = proxy.local_addr();
        match version {
            Version::V1 => assert_eq!(
                String::from_utf8(header).unwrap(),
                format!(
                    "PROXY TCP4 127.0.0.1 127.0.0.1 {} {}\r\n",
                    source.port(),
                    destination.port()
                )
            ),
            Version::V2 => {
                let mut expected =
                    b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00\x00\x01\x7f\x00\x00\x01"
                        .to_vec();
                expected.extend_from_slice(&source.port().to_be_bytes());
                expected.extend_from_slice(&destination.port().to_be_bytes());
                assert_eq!(header, expected);
            }
        }
        proxy.shutdown();
    }
}

#[test]
fn the_binary_logs_upstream_and_bytes_on_close() {
    let upstream = spawn_echo(builder());
    let up = upstream.local_addr().to_string();
    let mut cmd = binary::command();
    cmd.args([
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--upstream",
        &up,
    ]);
    let mut proxy = binary::Binary::start(cmd);
    let mut client = connect(proxy.listen);
    client.write_all(b"twelve bytes").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"twelve bytes");
    let line = proxy.expect_json("the proxy's close line", |v| {
        v["msg"] == "connection closed" && v.get("upstream").is_some()
    });
    assert_eq!(line["upstream"], up.as_str());
    assert_eq!(line["bytes_in"], 12);
    assert_eq!(line["bytes_out"], 12);
    assert_eq!(line["reason"], "eof");
    assert!(line.get("duration_ms").is_some(), "{line}");
    upstream.shutdown();
}

#[test]
fn the_binary_refuses_a_proxy_without_upstream() {
    let out = binary::command().args(["proxy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--upstream"), "{stderr}");
}

/// Kills and reaps a child process on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `redis-cli PING` through the proxy to a real `redis-server`. Skipped
/// (with a message) when Redis is not installed, except under `CI=true`.
#[test]
fn redis_cli_pings_through_the_proxy() {
    use std::process::{Command, Stdio};
    let have = |program: &str| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !have("redis-server") || !have("redis-cli") {
        support::outside::missing("`redis-server` or `redis-cli`", "redis-server, redis-tools");
        return;
    }
    let port = dead_addr().port().to_string();
    let redis = Reaped(
        Command::new("redis-server")
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server"),
    );
    let upstream = format!("127.0.0.1:{port}");
    support::wait_until("redis-server accepts", || {
        TcpStream::connect(&upstream).is_ok()
    });
    let proxy = spawn_proxy(Proxy::builder().upstream(&upstream));
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p"])
        .arg(proxy.local_addr().port().to_string())
        .arg("PING")
        .output()
        .expect("run redis-cli");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "PONG",
        "{out:?}"
    );

    // redis-benchmark through the proxy completes without errors.
    if have("redis-benchmark") || support::outside::in_ci() {
        let out = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(proxy.local_addr().port().to_string())
            .args(["-t", "ping,set,get", "-n", "20000", "-q"])
            .output()
            .expect("run redis-benchmark");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(!text.to_lowercase().contains("error"), "{text}");
        for test in ["PING_INLINE", "SET", "GET"] {
            assert!(text.contains(test), "{test} missing: {text}");
        }
    } else {
        eprintln!("skipped redis-benchmark: not installed");
    }
    proxy.shutdown();

    // TLS termination: a TLS client reaches the plain Redis through the proxy.
    let pki = support::pki::Pki::new();
    let tls = syncnet::TlsSettings {
        cert: pki.server.cert.clone(),
        key: pki.server.key.clone(),
        ..syncnet::TlsSettings::default()
    };
    let server = builder().tls(tls).build().expect("TLS proxy builds");
    let tls_proxy = Proxy::builder()
        .upstream(&upstream)
        .metrics(&server.metrics_registry())
        .build()
        .expect("proxy builds");
    let tls_proxy = server.spawn(tls_proxy).expect("TLS proxy starts");
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(&pki.ca)
        .args(["-h", "localhost", "-p"])
        .arg(tls_proxy.local_addr().port().to_string())
        .args(["SET", "through", "tls"])
        .output()
        .expect("run redis-cli --tls");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK", "{out:?}");
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port, "GET", "through"])
        .output()
        .expect("run redis-cli");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "tls",
        "the value reached the plain Redis: {out:?}"
    );
    tls_proxy.shutdown();
    drop(redis);
}

/// On shutdown the client's reads end, the upstream gets end of input, and
/// its reply still reaches the client before both close.
#[test]
fn the_drain_passes_end_of_input_on_and_the_reply_back() {
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let upstream = spawn_with(builder(), move |conn: &mut Conn| {
        let mut question = [0u8; 8];
        conn.read_exact(&mut question)?;
        let _ = got_tx.send(());
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest)?;
        conn.write_all(b"answer after end of input")?;
        Ok(())
    });
    let proxy = spawn_proxy(Proxy::builder().upstream(upstream.local_addr().to_string()));
    let mut client = connect(proxy.local_addr());
    client.write_all(b"question").unwrap();
    got_rx
        .recv_timeout(WAIT)
        .expect("the upstream got the question");
    let draining = thread::spawn(move || proxy.shutdown());
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).expect("the reply, then EOF");
    assert_eq!(reply, b"answer after end of input");
    draining.join().unwrap();
    upstream.shutdown();
}

/// The idle timeout counts from the last byte in either direction: a client
/// that only listens to a talking upstream is not idle.
#[test]
fn a_listening_client_is_not_idle_while_the_upstream_talks() {
    let upstream = spawn_with(builder(), |conn: &mut Conn| {
        for _ in 0..8 {
            conn.write_all(b"x")?;
            // Pacing, not synchronisation: 8 × 100 ms spans 2.7 idle timeouts.
            thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    });
    let server = builder()
        .idle_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let proxy = Proxy::builder()
        .upstream(upstream.local_addr().to_string())
        .build()
        .unwrap();
    let proxy = server.spawn(proxy).unwrap();
    let mut client = connect(proxy.local_addr());
    let mut got = Vec::new();
    client.read_to_end(&mut got).expect("every byte, then EOF");
    assert_eq!(got, b"xxxxxxxx");
    proxy.shutdown();
    upstream.shutdown();
}

/// The newest PostgreSQL server binaries Debian installed
/// (`/usr/lib/postgresql/VERSION/bin`), if any.
fn postgres_bin() -> Option<std::path::PathBuf> {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists() && bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// `psql -c 'select 1'` through the proxy to a PostgreSQL server the test
/// starts (as the `postgres` user, which PostgreSQL requires, on a loopback
/// port, with a data directory of its own). Skipped with a message when
/// PostgreSQL or psql is missing, except under `CI=true`.
#[test]
fn psql_selects_through_the_proxy() {
    use std::process::{Command, Stdio};
    let psql_ok = Command::new("psql")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let (Some(bin), true) = (postgres_bin(), psql_ok) else {
        support::outside::missing("PostgreSQL (server binaries) or `psql`", "postgresql");
        return;
    };
    let data = std::env::temp_dir().join(format!("syncnet-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).expect("create the data directory");
    let chown = Command::new("chown")
        .args(["-R", "postgres:postgres"])
        .arg(&data)
        .status()
        .expect("chown the data directory");
    assert!(chown.success());
    let as_postgres = |program: &str| {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin.join(program));
        cmd
    };
    let init = as_postgres("initdb")
        .args(["-D"])
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run initdb");
    assert!(init.success(), "initdb failed");
    let port = dead_addr().port().to_string();
    // pg_ctl starts the server in the background and waits (-w) until it
    // accepts; the guard stops it (immediate mode) however the test ends.
    let options = format!("-p {port} -h 127.0.0.1 -k {}", data.display());
    let started = as_postgres("pg_ctl")
        .args(["-D"])
        .arg(&data)
        .args(["-o", &options, "-l"])
        .arg(data.join("log"))
        .args(["-w", "start"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run pg_ctl start");
    assert!(started.success(), "pg_ctl start failed");
    struct Stop<F: FnMut()>(F);
    impl<F: FnMut()> Drop for Stop<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let _postgres = Stop(|| {
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&data);
    });
    let upstream = format!("127.0.0.1:{port}");
    support::wait_until("postgres accepts", || TcpStream::connect(&upstream).is_ok());
    let proxy = spawn_proxy(Proxy::builder().upstream(&upstream));
    // postgres may accept before it is ready: retry psql a bounded number of times.
    let deadline = Instant::now() + WAIT;
    let out = loop {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(proxy.local_addr().port().to_string())
            .args(["-U", "postgres", "-tA", "-c", "select 1"])
            .output()
            .expect("run psql");
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        thread::sleep(Duration::from_millis(200)); // poll interval while postgres starts
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{out:?}");
    proxy.shutdown();
}
