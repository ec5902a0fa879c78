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
