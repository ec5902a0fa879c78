//! A closed-loop load client for the rpc example's `forward` (bench/rpc.sh
//! compiles it with `rustc -O`; std only, not part of the crate).
//!
//!     rpc_load ADDR CONNS SECS WARMUP [PID...]
//!
//! Each of CONNS threads keeps one connection to ADDR and sends, one at a
//! time, `{"jsonrpc":"2.0","id":N,"method":"forward","params":{"method":"echo","params":[N]}}`
//! in a length-prefixed frame; the reply must be exactly
//! `{"jsonrpc":"2.0","id":N,"result":[N]}`, else it counts as an error.
//! After WARMUP seconds, SECS seconds are measured: requests, latency
//! percentiles, and the CPU time the PIDs (the servers) used in that window
//! (utime + stime from /proc/PID/stat, 100 ticks per second). Prints one
//! JSON line.

use std::env;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// CPU ticks (utime + stime) of `pid` so far.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the line; `rest` starts at field 3.
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// One connection's requests until `end`; latencies (µs) of those sent
/// after `start`, and the errors.
fn drive(mut stream: TcpStream, start: Instant, end: Instant) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let mut request = Vec::with_capacity(128);
    let mut reply = Vec::with_capacity(128);
    let mut expected = Vec::with_capacity(128);
    let mut id: u64 = 0;
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        id += 1;
        request.clear();
        request.extend_from_slice(&[0; 4]);
        write!(
            request,
            r#"{{"jsonrpc":"2.0","id":{id},"method":"forward","params":{{"method":"echo","params":[{id}]}}}}"#
        )
        .unwrap();
        let len = (request.len() - 4) as u32;
        request[..4].copy_from_slice(&len.to_be_bytes());
        let mut header = [0u8; 4];
        let ok = stream.write_all(&request).is_ok() && stream.read_exact(&mut header).is_ok();
        if !ok {
            return (latencies, errors + 1);
        }
        reply.resize(u32::from_be_bytes(header) as usize, 0);
        if stream.read_exact(&mut reply).is_err() {
            return (latencies, errors + 1);
        }
        let took = sent.elapsed();
        expected.clear();
        write!(expected, r#"{{"jsonrpc":"2.0","id":{id},"result":[{id}]}}"#).unwrap();
        if reply != expected {
            errors += 1;
            if errors == 1 {
                eprintln!("rpc_load: unexpected reply {}", String::from_utf8_lossy(&reply));
            }
        }
        if sent >= start {
            latencies.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        }
    }
    (latencies, errors)
}

fn main() {
    let args: Vec<String> = env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: rpc_load ADDR CONNS SECS WARMUP [PID...]");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let conns: usize = args[2].parse().expect("CONNS");
    let secs: f64 = args[3].parse().expect("SECS");
    let warmup: f64 = args[4].parse().expect("WARMUP");
    let pids = &args[5..];

    // Every connection is opened first; the clock starts once all are.
    let connected = Arc::new(Barrier::new(conns + 1));
    let go = Arc::new(Barrier::new(conns + 1));
    let t0: Arc<OnceLock<Instant>> = Arc::default();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (addr, connected, go, t0) =
                (addr.clone(), Arc::clone(&connected), Arc::clone(&go), Arc::clone(&t0));
            thread::spawn(move || {
                let stream = TcpStream::connect(&addr).expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
                connected.wait();
                go.wait();
                let start = *t0.get().expect("t0 set before go") + Duration::from_secs_f64(warmup);
                drive(stream, start, start + Duration::from_secs_f64(secs))
            })
        })
        .collect();
    connected.wait();
    let t0 = *t0.get_or_init(Instant::now);
    go.wait();
    let start = t0 + Duration::from_secs_f64(warmup);
    let end = start + Duration::from_secs_f64(secs);
    thread::sleep(start.saturating_duration_since(Instant::now()));
    let cpu_before: Vec<u64> = pids.iter().map(|p| cpu_ticks(p)).collect();
    thread::sleep(end.saturating_duration_since(Instant::now()));
    let cpu_after: Vec<u64> = pids.iter().map(|p| cpu_ticks(p)).collect();

    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (l, e) = t.join().expect("a load thread");
        latencies.extend(l);
        errors += e;
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        if latencies.is_empty() {
            return 0;
        }
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i]
    };
    let requests = latencies.len();
    let cpu_secs: Vec<f64> = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|(b, a)| (a - b) as f64 / 100.0)
        .collect();
    let cpu_us_per_req = cpu_secs.iter().sum::<f64>() * 1e6 / requests.max(1) as f64;
    println!(
        "{{\"mode\":\"forward\",\"conns\":{conns},\"secs\":{secs},\"requests\":{requests},\"rps\":{:.1},\"p50_us\":{},\"p99_us\":{},\"max_us\":{},\"errors\":{errors},\"server_cpu_s\":{:?},\"server_cpu_us_per_req\":{cpu_us_per_req:.3}}}",
        requests as f64 / secs,
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(0),
        cpu_secs,
    );
}
