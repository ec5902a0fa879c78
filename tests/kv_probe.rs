//! User time per request of the `kv` example, without the network: the
//! protocol served by `FramedService::serve_stream` on an in-memory stream
//! that delivers 16 pipelined requests per read (as `redis-benchmark -P 16`
//! does) and drops the replies. Prints nanoseconds per request (best of 7
//! runs of 3.2 million requests); asserts nothing. BENCHMARKS.md quotes it:
//!
//! ```sh
//! cargo test --release --test kv_probe -- --ignored --nocapture
//! ```

#[allow(dead_code)]
#[path = "../examples/kv/commands.rs"]
mod commands;
#[allow(dead_code)]
#[path = "../examples/kv/protocol.rs"]
mod protocol;
#[allow(dead_code)]
#[path = "../examples/kv/reply.rs"]
mod reply;
#[allow(dead_code)]
#[path = "../examples/kv/request.rs"]
mod request;
#[allow(dead_code)]
#[path = "../examples/kv/resp.rs"]
mod resp;
#[allow(dead_code)]
#[path = "../examples/kv/store.rs"]
mod store;

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use syncnet::service::FramedService;

/// Requests per read.
const PIPELINE: usize = 16;
/// Reads per run.
const READS: usize = 200_000;

/// Gives the same burst `reads` times, then the end of input; drops writes.
struct Repeat {
    burst: Vec<u8>,
    reads: usize,
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reads == 0 {
            return Ok(0);
        }
        self.reads -= 1;
        let n = self.burst.len().min(buf.len());
        buf[..n].copy_from_slice(&self.burst[..n]);
        Ok(n)
    }
}

impl Write for Repeat {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `args` as a RESP array of bulk strings.
fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
#[ignore = "a measurement: run it with --release --ignored --nocapture"]
fn user_time_per_pipelined_request() {
    let service = FramedService::new(protocol::Kv::new(Arc::new(store::Store::new()), 1 << 20));
    // redis-benchmark's requests (its default key, a 3-byte value).
    let tests: [(&str, Vec<u8>); 4] = [
        ("PING_INLINE", b"PING\r\n".to_vec()),
        ("PING_MBULK", command(&[b"PING"])),
        ("SET", command(&[b"SET", b"key:__rand_int__", b"xxx"])),
        ("GET", command(&[b"GET", b"key:__rand_int__"])),
    ];
    let mut best = [f64::MAX; 4];
    for _ in 0..7 {
        for (i, (_, request)) in tests.iter().enumerate() {
            let mut stream = Repeat {
                burst: request.repeat(PIPELINE),
                reads: READS,
            };
            let started = Instant::now();
            service.serve_stream(&mut stream).expect("served");
            let ns = started.elapsed().as_nanos() as f64 / (READS * PIPELINE) as f64;
            best[i] = best[i].min(ns);
        }
    }
    for ((name, _), ns) in tests.iter().zip(best) {
        println!("{name}: {ns:.0} ns of user time per request");
    }
}
