//! The Grafana dashboard against a real Prometheus: Debian's `prometheus`
//! scrapes, every second, `syncnet serve` with TLS and the `rpc` example;
//! the test drives traffic that includes each rejection and close reason the
//! panels show (denied, per-IP limit, rate limit, overload, TLS handshake
//! failures; clean closes, resets and idle timeouts) and rpc requests, then runs
//! every panel's query of `deploy/grafana-dashboard.json` through
//! Prometheus's HTTP API and requires each to return a sample with a value.
//! Skipped when `prometheus` is not installed (a failure when CI=true).

#[path = "support/binary.rs"]
mod binary;
#[path = "support/example.rs"]
mod example;
mod support;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use binary::Binary;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;
use support::pki::{Pki, TempDir};
use support::{WAIT, connect_from};

/// How long the panels' queries may take, all together, to return data.
const QUERIES: Duration = Duration::from_secs(30);

/// The `prometheus` executable, or `None` (after saying why) when it is not
/// installed and CI is not set.
fn prometheus_path() -> Option<PathBuf> {
    support::outside::require_program("prometheus", "prometheus")
}

/// GET `path` over HTTP/1.0 (so the body is never chunked): (status, body).
fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: prometheus\r\n\r\n").map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| e.to_string())?;
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {reply:?}"))?;
    let body = reply
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// `text` percent-encoded for a query string.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus in the foreground with its data in a temp dir; killed and
/// reaped on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` every second, and waits until
    /// it is ready. A port picked free may be taken before Prometheus binds
    /// it: then it exits, and another port is tried (three in all).
    fn start(exe: &Path, targets: &[SocketAddr]) -> Prometheus {
        let mut dir = TempDir::new();
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = dir.write(
            "prometheus.yml",
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: syncnet\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        );
        let mut log = String::new();
        for _ in 0..3 {
            let addr = free_port();
            let log_path = dir.path().join("prometheus.log");
            let log_file = std::fs::File::create(&log_path).expect("create the log file");
            let child = Command::new(exe)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .expect("start prometheus");
            let mut prometheus = Prometheus { child, addr, dir };
            if prometheus.wait_ready() {
                return prometheus;
            }
            log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let _ = prometheus.child.kill();
            let _ = prometheus.child.wait();
            dir = std::mem::replace(&mut prometheus.dir, TempDir::new());
        }
        panic!("prometheus did not become ready; its log:\n{log}");
    }

    /// Polls `/-/ready` until it answers 200 (true), or the process exits or
    /// [`WAIT`] passes (false).
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            if matches!(http_get(self.addr, "/-/ready"), Ok((200, _))) {
                return true;
            }
            // The poll interval, under the deadline above.
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The result of an instant query: each sample's labels and value
    /// (NaN and infinities as such).
    fn query(&self, expr: &str) -> Result<Vec<(Value, f64)>, String> {
        let path = format!("/api/v1/query?query={}", url_encode(expr));
        let (status, body) = http_get(self.addr, &path)?;
        let reply: Value =
            serde_json::from_str(&body).map_err(|e| format!("{status} {body:?}: {e}"))?;
        if status != 200 || reply["status"] != "success" {
            return Err(format!("{status}: {body}"));
        }
        let samples = reply["data"]["result"]
            .as_array()
            .ok_or_else(|| format!("not a vector: {body}"))?;
        Ok(samples
            .iter()
            .map(|s| {
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (s["metric"].clone(), value)
            })
            .collect())
    }

    /// Polls `expr` until `accept` approves its samples, or `deadline`
    /// passes: returns the last samples either way.
    fn poll(
        &self,
        expr: &str,
        deadline: Instant,
        accept: impl Fn(&[(Value, f64)]) -> bool,
    ) -> Result<Vec<(Value, f64)>, String> {
        loop {
            let got = self.query(expr);
            if matches!(&got, Ok(samples) if accept(samples)) || Instant::now() >= deadline {
                return got;
            }
            // The poll interval, under the deadline above.
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address no one listens on right now.
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address")
}

/// Every panel query of the dashboard, with Grafana's variables filled in
/// as a dashboard with every instance selected would: `$__rate_interval`
/// as `1m`, each template variable (`$instance`) as `.*`.
fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    let variables: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .map(|list| list.iter().filter_map(|v| v["name"].as_str()).collect())
        .unwrap_or_default();
    let mut panels: Vec<&Value> = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        panels.push(panel);
        // A collapsed row holds its panels.
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    let mut queries = Vec::new();
    for panel in panels {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        for target in targets {
            let mut expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?}: a target without expr"))
                .replace("$__rate_interval", "1m");
            for name in &variables {
                expr = expr
                    .replace(&format!("${{{name}}}"), ".*")
                    .replace(&format!("${name}"), ".*");
            }
            assert!(
                !expr.contains('$'),
                "panel {title:?}: unknown variable in {expr}"
            );
            queries.push((title.clone(), expr));
        }
    }
    queries
}

// ------------------------------------------------------------ the traffic

/// A TLS connection from the test.
type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A client config trusting the test CA.
fn client_config(pki: &Pki) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_file_iter(&pki.ca).expect("read the CA") {
        roots
            .add(der.expect("a CA certificate"))
            .expect("a usable CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS session from the local address `from`, past its handshake, with
/// one echo done.
fn tls_session(from: Ipv4Addr, addr: SocketAddr, config: &Arc<ClientConfig>) -> Tls {
    let tcp = connect_from(from, addr);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    tls_echo(&mut tls, b"hello\n");
    tls
}

/// `data` over `tls` and back.
fn tls_echo(tls: &mut Tls, data: &[u8]) {
    tls.write_all(data).expect("write over TLS");
    let mut back = vec![0u8; data.len()];
    tls.read_exact(&mut back).expect("read the echo over TLS");
    assert_eq!(back, data);
}

/// Reads until the server closes `stream` (end of input or an error), at
/// most [`WAIT`].
fn until_closed(stream: &mut impl Read) {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the server did not close the connection within {WAIT:?}")
            }
            Err(_) => return,
        }
    }
}

/// What the server runs with: the reasons below each have a flag to hit.
const SERVE_FLAGS: [&str; 14] = [
    "--workers",
    "6",
    "--queue",
    "0",
    "--tls-handshake-timeout",
    "2s",
    "--idle-timeout",
    "2s",
    "--deny",
    "127.0.0.2",
    "--max-conns-per-ip",
    "2",
    "--conn-rate-per-ip",
    "2",
];

/// Drives `syncnet serve` through each rejection and close reason the
/// dashboard shows. Returns the connections to keep open until the end
/// (they end later, by timeout).
fn drive_serve(addr: SocketAddr, config: &Arc<ClientConfig>) -> Vec<Box<dyn Send>> {
    let mut kept: Vec<Box<dyn Send>> = Vec::new();
    // eof, and bytes both ways: sessions that end cleanly.
    for last in 1..=3 {
        let mut tls = tls_session(Ipv4Addr::new(127, 0, 1, last), addr, config);
        tls_echo(&mut tls, &support::random_bytes(16 * 1024));
        tls.conn.send_close_notify();
        tls.flush().expect("send close_notify");
        let _ = tls.sock.shutdown(Shutdown::Write);
        until_closed(&mut tls);
    }
    // error: a session the client resets (SO_LINGER 0, then close).
    let tls = tls_session(Ipv4Addr::new(127, 0, 1, 4), addr, config);
    socket2::SockRef::from(&tls.sock)
        .set_linger(Some(Duration::ZERO))
        .expect("set SO_LINGER");
    drop(tls);
    // idle_timeout: a session that goes quiet (closed after 2 s).
    kept.push(Box::new(tls_session(
        Ipv4Addr::new(127, 0, 1, 10),
        addr,
        config,
    )));
    // denied: the deny list.
    for _ in 0..2 {
        until_closed(&mut connect_from(Ipv4Addr::new(127, 0, 0, 2), addr));
    }
    // per_ip_limit: a third connection from an address that holds two
    // (the count is checked before the rate: its burst of 2 is spent).
    for _ in 0..2 {
        kept.push(Box::new(tls_session(
            Ipv4Addr::new(127, 0, 0, 3),
            addr,
            config,
        )));
    }
    until_closed(&mut connect_from(Ipv4Addr::new(127, 0, 0, 3), addr));
    // tls (not TLS at all), then rate_limit: ten in a row from one address
    // (2 a second, burst 2), each closed before the next, so that the
    // count limit is never what refuses them.
    for _ in 0..10 {
        let mut plain = connect_from(Ipv4Addr::new(127, 0, 0, 4), addr);
        let _ = plain.write_all(b"GET / HTTP/1.0\r\n\r\n");
        until_closed(&mut plain);
    }
    // overload: more silent connections than workers, with no queue; the
    // silent ones end as `tls` at the handshake timeout.
    for last in 1..=8 {
        kept.push(Box::new(connect_from(Ipv4Addr::new(127, 0, 2, last), addr)));
    }
    kept
}

/// `payload` with its 4-byte big-endian length in front (the rpc framing).
fn frame(payload: &str) -> Vec<u8> {
    let mut framed = u32::try_from(payload.len())
        .expect("a small frame")
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(payload.as_bytes());
    framed
}

/// Calls the rpc example: quick `add`s, a few `sleep`s (so the latency
/// quantiles differ) and malformed requests (a request error).
fn drive_rpc(addr: SocketAddr) {
    let mut stream = support::connect(addr);
    let mut calls: Vec<String> = (0..200)
        .map(|id| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"add","params":[1,2]}}"#))
        .collect();
    calls.extend(
        (0..5).map(|id| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"sleep","params":[20]}}"#)),
    );
    calls.extend((0..3).map(|_| "{not json".to_owned()));
    for call in &calls {
        stream.write_all(&frame(call)).expect("send an rpc request");
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).expect("an rpc reply");
        let mut reply = vec![0u8; u32::from_be_bytes(header) as usize];
        stream.read_exact(&mut reply).expect("an rpc reply");
    }
}

/// The label values of `label` among samples with a value above zero.
fn positive(samples: &[(Value, f64)], label: &str) -> BTreeSet<String> {
    samples
        .iter()
        .filter(|(_, v)| *v > 0.0)
        .filter_map(|(m, _)| m[label].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_panel_query_returns_data_from_a_real_prometheus() {
    let Some(exe) = prometheus_path() else {
        return;
    };
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana-dashboard.json"),
        )
        .expect("read deploy/grafana-dashboard.json"),
    )
    .expect("the dashboard is JSON");
    let queries = panel_queries(&dashboard);

    let pki = Pki::new();
    let mut flags = vec![
        "--tls-cert",
        pki.server.cert.to_str().unwrap(),
        "--tls-key",
        pki.server.key.to_str().unwrap(),
    ];
    flags.extend(SERVE_FLAGS);
    let serve = Binary::serve(&flags);
    let mut rpc_cmd = Command::new(example::rpc_exe());
    binary::clean_env(&mut rpc_cmd);
    rpc_cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ]);
    let rpc = Binary::start(rpc_cmd);
    let prometheus = Prometheus::start(&exe, &[serve.admin_addr(), rpc.admin_addr()]);

    // A first scrape of both before any traffic, so that rates see it rise.
    let up = prometheus.poll("up == 1", Instant::now() + WAIT, |s| s.len() == 2);
    assert!(
        matches!(&up, Ok(s) if s.len() == 2),
        "both targets up: {up:?}"
    );

    let config = client_config(&pki);
    let _kept = drive_serve(serve.listen, &config);
    drive_rpc(rpc.listen);

    // The reasons driven reach Prometheus (the panels sum by reason, so
    // one would do for a sample; these are all checked to be there).
    let deadline = Instant::now() + QUERIES;
    let want_rejected: BTreeSet<String> =
        ["denied", "overload", "per_ip_limit", "rate_limit", "tls"]
            .map(str::to_owned)
            .into();
    let rejected = prometheus.poll(
        "sum by (reason) (increase(syncnet_connections_rejected_total[1m]))",
        deadline,
        |s| positive(s, "reason").is_superset(&want_rejected),
    );
    let got = positive(rejected.as_deref().unwrap_or_default(), "reason");
    assert!(
        got.is_superset(&want_rejected),
        "rejections by reason: {got:?}, wanted {want_rejected:?}: {rejected:?}"
    );
    let want_closed: BTreeSet<String> = ["eof", "error", "idle_timeout"].map(str::to_owned).into();
    let closed = prometheus.poll(
        "sum by (reason) (increase(syncnet_connections_closed_total[1m]))",
        deadline,
        |s| positive(s, "reason").is_superset(&want_closed),
    );
    let got = positive(closed.as_deref().unwrap_or_default(), "reason");
    assert!(
        got.is_superset(&want_closed),
        "closes by reason: {got:?}, wanted {want_closed:?}: {closed:?}"
    );

    // Every panel's query returns at least one sample with a value.
    let mut empty = Vec::new();
    for (title, expr) in &queries {
        let got = prometheus.poll(expr, deadline, |s| s.iter().any(|(_, v)| v.is_finite()));
        if !matches!(&got, Ok(s) if s.iter().any(|(_, v)| v.is_finite())) {
            empty.push(format!("{title}: {expr}\n  -> {got:?}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panel queries without data:\n{}",
        empty.join("\n")
    );
    assert!(queries.len() >= 15, "only {} queries", queries.len());
}
