//! Echo: bytes come back intact, alone and under concurrency.

mod support;

use std::io::{Read, Write};
use std::thread;

use rand::RngExt;
use support::*;

#[test]
fn one_mebibyte_of_random_bytes_echoes_intact() {
    let server = spawn_echo(builder());
    let mut data = vec![0u8; 1 << 20];
    rand::rng().fill(&mut data[..]);
    let mut client = connect(server.local_addr());
    let writer = {
        let mut client = client.try_clone().unwrap();
        let data = data.clone();
        thread::spawn(move || {
            client.write_all(&data).unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
        })
    };
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "echoed bytes differ");
    server.shutdown();
}

#[test]
fn two_hundred_concurrent_clients_each_get_their_bytes_back() {
    const CLIENTS: usize = 200;
    const SIZE: usize = 64 * 1024;
    let server = spawn_echo(builder().workers(256));
    let addr = server.local_addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            thread::spawn(move || {
                let data = random_bytes(SIZE);
                let mut client = connect(addr);
                let writer = {
                    let mut client = client.try_clone().unwrap();
                    let data = data.clone();
                    thread::spawn(move || {
                        client.write_all(&data).unwrap();
                        client.shutdown(std::net::Shutdown::Write).unwrap();
                    })
                };
                let mut back = Vec::with_capacity(SIZE);
                client.read_to_end(&mut back).unwrap();
                writer.join().unwrap();
                back == data
            })
        })
        .collect();
    let intact = clients
        .into_iter()
        .map(|c| c.join().expect("client thread"))
        .filter(|ok| *ok)
        .count();
    assert_eq!(intact, CLIENTS, "some clients got different bytes back");
    wait_metric(
        &server,
        "syncnet_connections_closed_total{reason=\"eof\"}",
        CLIENTS as f64,
    );
    let text = metrics(&server);
    assert_eq!(
        metric(&text, "syncnet_connections_accepted_total"),
        CLIENTS as f64
    );
    assert_eq!(
        metric(&text, "syncnet_bytes_received_total"),
        (CLIENTS * SIZE) as f64
    );
    assert_eq!(
        metric(&text, "syncnet_bytes_sent_total"),
        (CLIENTS * SIZE) as f64
    );
    server.shutdown();
}
