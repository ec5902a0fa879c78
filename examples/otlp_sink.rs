//! # `otlp_sink`: an OTLP/HTTP endpoint that accepts spans and drops them
//!
//! For measuring what exporting costs the exporter (`bench/trace.sh`): it
//! answers every `POST` with `200 OK` and an empty body (an empty
//! `ExportTraceServiceResponse`) without decoding it. Blocking, a thread
//! per connection. Prints `listening on ADDR` once bound; on SIGINT or
//! SIGTERM it exits. Its counts, `requests=N bytes=N`, go to stderr every
//! 5 s while requests come in.
//!
//! ```sh
//! cargo run --release --example otlp_sink -- 127.0.0.1:4318
//! ```

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// Requests and body bytes received.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
}

fn main() -> ExitCode {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4318".to_string());
    let listener = match TcpListener::bind(&addr) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("otlp_sink: cannot listen on {addr}: {e}");
            return ExitCode::from(1);
        }
    };
    match listener.local_addr() {
        Ok(bound) => eprintln!("listening on {bound}"),
        Err(e) => eprintln!("listening (address unknown: {e})"),
    }
    let counts = Arc::new(Counts::default());
    let reporter = Arc::clone(&counts);
    thread::spawn(move || report(&reporter));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let counts = Arc::clone(&counts);
        thread::spawn(move || {
            let _ = serve(stream, &counts);
        });
    }
    ExitCode::SUCCESS
}

/// Prints the counts every 5 s while they change.
fn report(counts: &Counts) {
    let mut last = 0;
    loop {
        thread::sleep(Duration::from_secs(5));
        let requests = counts.requests.load(Ordering::Relaxed);
        if requests != last {
            let bytes = counts.bytes.load(Ordering::Relaxed);
            eprintln!("requests={requests} bytes={bytes}");
            last = requests;
        }
    }
}

/// Answers the requests of one connection until it closes.
fn serve(stream: TcpStream, counts: &Counts) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        // The head: lines up to an empty one; only Content-Length matters.
        let mut length = 0usize;
        let mut lines = 0;
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(()); // closed
            }
            let header = line.trim_end();
            if header.is_empty() {
                if lines == 0 {
                    continue;
                }
                break;
            }
            lines += 1;
            if lines > 100 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value
                    .trim()
                    .parse()
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad length"))?;
            }
        }
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
        counts.requests.fetch_add(1, Ordering::Relaxed);
        counts.bytes.fetch_add(length as u64, Ordering::Relaxed);
        writer.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        )?;
    }
}
