//! A custom line protocol with shared state: a tiny key-value store.
//!
//! Commands, one per line: `SET key value`, `GET key`, `DEL key`. Try it with
//! `cargo run --example kv_server` and `nc 127.0.0.1 4000`.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

use syncnet::{Conn, Server};

/// Longest line we accept; a longer one closes the connection.
const MAX_LINE: usize = 4096;

fn main() -> Result<(), syncnet::Error> {
    syncnet::init_logging(syncnet::LogFormat::Auto);
    // Shared by every worker thread: an Arc around a Mutex.
    let store: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    Server::builder()
        .listen("127.0.0.1:4000")
        .workers(64)
        .admin(None)
        .build()?
        .run(move |conn: &mut Conn| serve(conn, &store))
}

/// Reads commands line by line and answers each: plain blocking code.
fn serve(conn: &mut Conn, store: &Mutex<HashMap<String, String>>) -> io::Result<()> {
    let mut reader = BufReader::new(&mut *conn);
    let mut replies = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        let n = Read::take(&mut reader, MAX_LINE as u64).read_line(&mut line)?;
        if n == 0 {
            return Ok(()); // the client closed
        }
        if !line.ends_with('\n') {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        replies.clear();
        answer(line.trim_end(), store, &mut replies);
        reader.get_mut().write_all(&replies)?;
    }
}

fn answer(command: &str, store: &Mutex<HashMap<String, String>>, out: &mut Vec<u8>) {
    let mut words = command.splitn(3, ' ');
    let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
    let reply = match (words.next(), words.next(), words.next()) {
        (Some("SET"), Some(key), Some(value)) => {
            store.insert(key.to_string(), value.to_string());
            "OK".to_string()
        }
        (Some("GET"), Some(key), None) => store
            .get(key)
            .map_or_else(|| "NOT_FOUND".to_string(), |v| format!("VALUE {v}")),
        (Some("DEL"), Some(key), None) => match store.remove(key) {
            Some(_) => "DELETED".to_string(),
            None => "NOT_FOUND".to_string(),
        },
        _ => "ERROR expected SET key value | GET key | DEL key".to_string(),
    };
    out.extend_from_slice(reply.as_bytes());
    out.push(b'\n');
}
