//! `Conn::split`: a read half and a write half used by two threads at once,
//! over plain TCP and TLS, with half-closes passed on.

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::mpsc;
use std::thread;

use support::pki::Pki;
use support::*;
use syncnet::{Client, ClientTls, Conn, TlsSettings};

/// Echoes through two threads: the read half feeds a channel, the write
/// half (on a second thread) drains it; end of input from the client ends
/// the writer, which half-closes.
fn two_thread_echo(conn: &mut Conn) -> std::io::Result<()> {
    let (mut reader, mut writer) = conn.split();
    thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(16);
        let sender = scope.spawn(move || -> std::io::Result<()> {
            for chunk in rx {
                writer.write_all(&chunk)?;
                writer.flush()?;
            }
            writer.shutdown_write()
        });
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
        drop(tx);
        sender.join().expect("the writer thread does not panic")
    })
}

#[test]
fn a_mebibyte_crosses_both_halves_at_once_over_plain_tcp() {
    let server = spawn_with(builder(), two_thread_echo);
    let stream = connect(server.local_addr());
    let data = random_bytes(1 << 20);
    let mut to_server = stream.try_clone().unwrap();
    let payload = data.clone();
    // Written while the echo is read: neither side's buffers can hold 1 MiB.
    let writer = thread::spawn(move || {
        to_server.write_all(&payload).unwrap();
        to_server.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    let mut from_server = stream;
    from_server.set_read_timeout(Some(WAIT)).unwrap();
    from_server
        .read_to_end(&mut back)
        .expect("the echo, then end of input (the server's half-close)");
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the echo differs from what was sent");
    let text = metrics(&server);
    assert_eq!(
        metric(&text, "syncnet_bytes_received_total"),
        (1 << 20) as f64
    );
    wait_metric(&server, "syncnet_bytes_sent_total", (1 << 20) as f64);
}

#[test]
fn both_halves_work_over_tls_and_the_half_close_arrives() {
    let pki = Pki::new();
    let settings = TlsSettings {
        cert: pki.server.cert.clone(),
        key: pki.server.key.clone(),
        ..TlsSettings::default()
    };
    let server = spawn_with(builder().tls(settings), two_thread_echo);
    let tls = ClientTls {
        ca: Some(pki.ca.clone()),
        ..ClientTls::default()
    };
    let mut client =
        Client::connect_tls(&server.local_addr().to_string(), WAIT, &tls).expect("TLS connect");
    for i in 0..200 {
        let line = format!("line {i} {}\n", "x".repeat(i * 10));
        client.write_all(line.as_bytes()).unwrap();
        let mut back = vec![0u8; line.len()];
        client.read_exact(&mut back).expect("the echo over TLS");
        assert_eq!(back, line.as_bytes());
    }
    client.shutdown_write().unwrap();
    let mut rest = Vec::new();
    client
        .read_to_end(&mut rest)
        .expect("end of input after the client's half-close");
    assert!(rest.is_empty());
}
