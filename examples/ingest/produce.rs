//! `ingest produce`: the load generator. Sends records `0..N` (record `k`
//! has id `{prefix}{k}` and is padded to `--size` bytes) over `P`
//! connections — connection `p` sends the records with `k % P == p` — with
//! at most `W` unacknowledged per connection. A connection that fails is
//! opened again and its unacknowledged records are sent again (the server
//! answers `dup` for those it had stored); after `--retry-for` without
//! success the producer gives up. The report is one JSON line on stdout.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use syncnet::frame::{FrameReader, Lines};
use syncnet::parse_duration;

use crate::record::MAX_ID_LEN;

/// The flags of `ingest produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// The server
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:4200")]
    connect: String,
    /// Connections, one thread each
    #[arg(long, value_name = "P", default_value_t = 8, value_parser = positive)]
    producers: usize,
    /// Records to send in all
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    records: u64,
    /// Most unacknowledged records per connection
    #[arg(long, value_name = "W", default_value_t = 64, value_parser = positive)]
    window: usize,
    /// Record k has id PREFIX + k
    #[arg(long, value_name = "S", default_value = "r")]
    id_prefix: String,
    /// Bytes per record (line ending not counted), reached with a "pad" member
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    size: usize,
    /// Append the id of every acknowledged record (`ok` or `dup`) to this file, one per line
    #[arg(long, value_name = "PATH")]
    acked_file: Option<PathBuf>,
    /// Keep reconnecting this long after a connection fails, then give up (exit 1)
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    retry_for: Duration,
}

/// A count of at least 1.
pub fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// What every producer thread reads.
struct Plan<'a> {
    args: &'a ProduceArgs,
    addr: SocketAddr,
    /// `{"id":"` and the prefix, JSON-escaped.
    head: Vec<u8>,
    acked: Option<Mutex<File>>,
}

/// One producer thread's results.
#[derive(Default)]
struct Tally {
    acked: u64,
    dups: u64,
    errors: u64,
    /// Send-to-acknowledgement time of each acknowledged record, in µs.
    latencies: Vec<u32>,
    /// Why the thread gave up, if it did.
    gave_up: Option<String>,
}

/// Runs `produce`: exit 0 when every record was acknowledged (`ok` or
/// `dup`), 1 when not, 2 for unusable arguments.
pub fn main(args: &ProduceArgs) -> ExitCode {
    let plan = match Plan::new(args) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("ingest produce: {message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let tallies: Vec<Tally> = thread::scope(|scope| {
        let threads: Vec<_> = (0..args.producers)
            .map(|p| {
                scope.spawn({
                    let plan = &plan;
                    move || plan.producer(p)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join().unwrap_or_else(|_| Tally {
                    gave_up: Some("panicked".into()),
                    ..Tally::default()
                })
            })
            .collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let mut total = Tally::default();
    for (p, tally) in tallies.into_iter().enumerate() {
        total.acked += tally.acked;
        total.dups += tally.dups;
        total.errors += tally.errors;
        total.latencies.extend(tally.latencies);
        if let Some(why) = tally.gave_up {
            eprintln!("ingest produce: producer {p} gave up: {why}");
        }
    }
    total.latencies.sort_unstable();
    let percentile = |q: f64| {
        let n = total.latencies.len();
        let at = ((n as f64 * q).ceil() as usize).clamp(1, n.max(1)) - 1;
        total
            .latencies
            .get(at)
            .map_or(0.0, |&us| f64::from(us) / 1000.0)
    };
    let done = total.acked + total.dups;
    // In this order, whatever the JSON library would do.
    let report = format!(
        "{{\"records\":{},\"acked\":{},\"dups\":{},\"errors\":{},\"secs\":{:.3},\"records_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        args.records,
        total.acked,
        total.dups,
        total.errors,
        secs,
        done as f64 / secs.max(1e-9),
        percentile(0.50),
        percentile(0.99),
    );
    println!("{report}");
    if done == args.records {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

impl<'a> Plan<'a> {
    fn new(args: &'a ProduceArgs) -> Result<Plan<'a>, String> {
        let addr = args
            .connect
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("--connect {}: not an address", args.connect))?;
        let last_id = format!("{}{}", args.id_prefix, args.records.saturating_sub(1));
        if !crate::record::is_valid_id(&last_id) {
            return Err(format!(
                "--id-prefix {:?}: ids must be 1 to {MAX_ID_LEN} printable ASCII bytes without spaces",
                args.id_prefix
            ));
        }
        let mut head = br#"{"id":""#.to_vec();
        for &b in args.id_prefix.as_bytes() {
            if b == b'"' || b == b'\\' {
                head.push(b'\\');
            }
            head.push(b);
        }
        let acked = match &args.acked_file {
            Some(path) => Some(Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("--acked-file {}: {e}", path.display()))?,
            )),
            None => None,
        };
        Ok(Plan {
            args,
            addr,
            head,
            acked,
        })
    }

    /// Appends record `k`, with its newline, to `out`.
    fn encode(&self, k: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.head);
        let _ = write!(out, "{k}\"");
        // `,"pad":"` + padding + `"}`: 10 bytes around the padding.
        let pad = self.args.size.saturating_sub(out.len() - start + 10);
        if pad > 0 {
            out.extend_from_slice(br#","pad":""#);
            out.resize(out.len() + pad, b'x');
            out.push(b'"');
        }
        out.extend_from_slice(b"}\n");
    }

    /// One producer: connects, sends, reconnects after failures, until
    /// all its records are acknowledged or it gives up.
    fn producer(&self, p: usize) -> Tally {
        let mut sender = Sender {
            plan: self,
            step: self.args.producers as u64,
            next: p as u64,
            inflight: VecDeque::with_capacity(self.args.window),
            retry_until: None,
            tally: Tally::default(),
        };
        while !sender.finished() {
            let stream = match sender.connect() {
                Ok(stream) => stream,
                Err(why) => {
                    sender.tally.gave_up = Some(why);
                    break;
                }
            };
            if sender.run(&stream).is_err() {
                let retry_for = self.args.retry_for;
                sender
                    .retry_until
                    .get_or_insert_with(|| Instant::now() + retry_for);
            }
        }
        sender.tally
    }
}

/// One producer thread's state, kept across its connections.
struct Sender<'a> {
    plan: &'a Plan<'a>,
    /// The number of producers: this one sends `next`, `next + step`, ...
    step: u64,
    /// The next record never sent yet.
    next: u64,
    /// Sent and not yet acknowledged: (record, when sent), in order.
    inflight: VecDeque<(u64, Instant)>,
    /// Set by a failure; cleared by an acknowledgement.
    retry_until: Option<Instant>,
    tally: Tally,
}

impl Sender<'_> {
    fn finished(&self) -> bool {
        self.next >= self.plan.args.records && self.inflight.is_empty()
    }

    /// A new connection, retried until `retry_until` (set here at the
    /// first failure).
    fn connect(&mut self) -> Result<TcpStream, String> {
        let (addr, retry_for) = (self.plan.addr, self.plan.args.retry_for);
        let timeout = retry_for.max(Duration::from_secs(1));
        loop {
            let error = match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    stream
                        .set_read_timeout(Some(timeout))
                        .and_then(|()| stream.set_write_timeout(Some(timeout)))
                        .map_err(|e| format!("setting timeouts: {e}"))?;
                    return Ok(stream);
                }
                Err(e) => e,
            };
            let until = *self
                .retry_until
                .get_or_insert_with(|| Instant::now() + retry_for);
            if Instant::now() >= until {
                return Err(format!(
                    "no connection to {addr} for {retry_for:?}: {error}"
                ));
            }
            // Pacing between attempts, bounded by `until` above.
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends (first what is still unacknowledged), reads acknowledgements,
    /// until every record of this producer is acknowledged or the
    /// connection fails.
    fn run(&mut self, stream: &TcpStream) -> io::Result<()> {
        let plan = self.plan;
        let mut replies = FrameReader::new(stream, Lines::new(MAX_ID_LEN + 16));
        let mut out = Vec::new();
        let now = Instant::now();
        for (k, sent) in &mut self.inflight {
            plan.encode(*k, &mut out);
            *sent = now;
        }
        let mut acked_ids = Vec::new();
        loop {
            let now = Instant::now();
            while self.inflight.len() < plan.args.window && self.next < plan.args.records {
                plan.encode(self.next, &mut out);
                self.inflight.push_back((self.next, now));
                self.next += self.step;
            }
            if !out.is_empty() {
                (&mut &*stream).write_all(&out)?;
                out.clear();
            }
            if self.inflight.is_empty() {
                return Ok(());
            }
            let first = replies
                .read_frame()?
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            self.acknowledge(first, &mut acked_ids);
            while replies.has_buffered_frame() {
                match replies.read_frame()? {
                    Some(reply) => self.acknowledge(reply, &mut acked_ids),
                    None => break,
                }
            }
            self.retry_until = None;
            if let Some(file) = &plan.acked {
                let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = file.write_all(&acked_ids) {
                    // Not the connection's failure: say so, keep sending.
                    eprintln!("ingest produce: writing --acked-file: {e}");
                }
            }
            acked_ids.clear();
        }
    }

    /// Matches one reply with the oldest record in flight; the id of an
    /// acknowledged one goes, with a newline, onto `acked_ids`.
    fn acknowledge(&mut self, reply: &[u8], acked_ids: &mut Vec<u8>) {
        let Some((k, sent)) = self.inflight.pop_front() else {
            self.tally.errors += 1; // a reply to nothing
            return;
        };
        let start = acked_ids.len();
        acked_ids.extend_from_slice(self.plan.args.id_prefix.as_bytes());
        let _ = write!(acked_ids, "{k}");
        let id = &acked_ids[start..];
        if reply.strip_prefix(b"ok ") == Some(id) {
            self.tally.acked += 1;
        } else if reply.strip_prefix(b"dup ") == Some(id) {
            self.tally.dups += 1;
        } else {
            // `err ...`, or not the reply this record should get.
            self.tally.errors += 1;
            acked_ids.truncate(start);
            return;
        }
        acked_ids.push(b'\n');
        let micros = sent.elapsed().as_micros();
        self.tally
            .latencies
            .push(u32::try_from(micros).unwrap_or(u32::MAX));
    }
}
