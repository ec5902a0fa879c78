//! `examples/proxy_by_name`: mTLS clients are routed by their certificate
//! name — `reporting.internal` to the replica, everyone else to the primary.

#[path = "support/example.rs"]
mod example;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use support::pki::{Pair, Pki};
use support::*;
use syncnet::{Client, ClientTls, Conn};

/// An upstream that answers every connection with its name, then closes.
fn upstream(name: &'static str) -> syncnet::ServerHandle {
    spawn_with(builder(), move |conn: &mut Conn| -> std::io::Result<()> {
        conn.write_all(name.as_bytes())?;
        conn.flush()
    })
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn route_of(addr: &str, pki: &Pki, cert: &Pair) -> String {
    let tls = ClientTls {
        ca: Some(pki.ca.clone()),
        cert: Some(cert.cert.clone()),
        key: Some(cert.key.clone()),
        server_name: Some("localhost".into()),
    };
    let mut client = Client::connect_tls(addr, WAIT, &tls).expect("TLS connect to the proxy");
    let mut reply = String::new();
    client
        .read_to_string(&mut reply)
        .expect("the upstream's name");
    reply
}

#[test]
fn clients_are_routed_by_their_certificate_name() {
    let pki = Pki::new();
    let primary = upstream("primary");
    let replica = upstream("replica");
    let reporting = pki.leaf("reporting", &["reporting.internal"], "reporting.internal");
    let mut child = Killed(
        Command::new(example::proxy_by_name_exe())
            .args(["--listen", "127.0.0.1:0"])
            .arg("--cert")
            .arg(&pki.server.cert)
            .arg("--key")
            .arg(&pki.server.key)
            .arg("--client-ca")
            .arg(&pki.ca)
            .args(["--primary", &primary.local_addr().to_string()])
            .args(["--replica", &replica.local_addr().to_string()])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the example"),
    );
    let stderr = child.0.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let listen = lines
        .by_ref()
        .take(50)
        .map_while(Result::ok)
        .find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(&line).ok()?;
            v["listen"].as_str().map(str::to_owned)
        })
        .expect("the start-up line with the listen address");

    assert_eq!(route_of(&listen, &pki, &reporting), "replica");
    assert_eq!(route_of(&listen, &pki, &pki.allowed), "primary");
    assert_eq!(route_of(&listen, &pki, &reporting), "replica");
}
