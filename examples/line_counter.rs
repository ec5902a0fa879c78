//! `line_counter`: a protocol of your own in a few lines — newline-delimited
//! text commands, written from the crate docs alone (`syncnet::service`,
//! `syncnet::frame`).
//!
//! | request     | reply                                              |
//! |-------------|----------------------------------------------------|
//! | `INCR key`  | the key's new count (`1` the first time)           |
//! | `GET key`   | the key's count (`0` for a key never incremented)  |
//! | `TIME`      | seconds since the Unix epoch, e.g. `1764489600.123`|
//! | other       | `ERR ...`; the connection stays open               |
//!
//! A line longer than 256 bytes gets `ERR line too long` and the connection
//! closes (the server keeps serving everyone else). `\n` and `\r\n` line
//! endings both work, and pipelined requests are answered in order.
//! `FramedService` counts every request in `/metrics`
//! (`syncnet_requests_total`, `syncnet_request_errors_total{kind}`,
//! `syncnet_request_duration_seconds`) and gives each one a deadline.
//!
//! ```sh
//! cargo run --example line_counter -- [--listen ADDR] [--admin ADDR|off]
//! printf 'INCR a\nINCR a\nGET a\nTIME\n' | nc -q1 127.0.0.1 3000   # 1, 2, 2, the time
//! ```

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use syncnet::frame::{FrameError, Lines};
use syncnet::service::{Answer, FramedService, Protocol, RequestContext};
use syncnet::{LogFormat, RequestErrorKind, Server};

/// The longest request line, in bytes (line ending not counted).
const MAX_LINE: usize = 256;
/// The most distinct keys kept: memory a client can make us hold is bounded.
const MAX_KEYS: usize = 10_000;
/// Each request is answered within this or gets `ERR busy`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// The protocol: counters shared by every connection. `FramedService` owns
/// it and lends it to all workers, so shared state lives right here.
#[derive(Default)]
struct LineCounter {
    counts: Mutex<HashMap<String, u64>>,
}

impl LineCounter {
    /// The reply to one well-formed line, or the `ERR` text and its kind.
    fn reply(&self, line: &str) -> Result<String, (&'static str, RequestErrorKind)> {
        const USAGE: &str = "ERR usage: INCR <key> | GET <key> | TIME";
        let mut words = line.split_whitespace();
        let counts = || self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        match (words.next(), words.next(), words.next()) {
            (Some("INCR"), Some(key), None) => {
                let mut counts = counts();
                if counts.len() >= MAX_KEYS && !counts.contains_key(key) {
                    return Err(("ERR too many keys", RequestErrorKind::Handler));
                }
                let count = counts.entry(key.to_string()).or_insert(0);
                *count = count.saturating_add(1);
                Ok(count.to_string())
            }
            (Some("GET"), Some(key), None) => {
                Ok(counts().get(key).copied().unwrap_or(0).to_string())
            }
            (Some("TIME"), None, None) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                Ok(format!("{}.{:03}", now.as_secs(), now.subsec_millis()))
            }
            _ => Err((USAGE, RequestErrorKind::Malformed)),
        }
    }
}

impl Protocol for LineCounter {
    type Codec = Lines;
    type Session = ();

    fn codec(&self) -> Lines {
        Lines::new(MAX_LINE)
    }

    fn answer(
        &self,
        _: &mut (),
        request: &[u8],
        _: &RequestContext,
        reply: &mut Vec<u8>,
    ) -> Answer {
        let answered = match std::str::from_utf8(request) {
            Ok(line) => self.reply(line),
            Err(_) => Err(("ERR request is not UTF-8", RequestErrorKind::Malformed)),
        };
        match answered {
            Ok(text) => {
                reply.extend_from_slice(text.as_bytes());
                Answer::Reply
            }
            Err((text, kind)) => {
                reply.extend_from_slice(text.as_bytes());
                Answer::Error(kind)
            }
        }
    }

    /// Past the deadline (or over a rate limit): say so, keep the connection.
    fn busy(&self, _: &mut (), _: &[u8], _: RequestErrorKind, reply: &mut Vec<u8>) -> Answer {
        reply.extend_from_slice(b"ERR busy, retry later");
        Answer::Reply
    }

    /// A line we could not read: the last words before the close.
    fn bad_frame(&self, error: &FrameError, reply: &mut Vec<u8>) {
        if let FrameError::TooLarge { limit, .. } = error {
            reply.extend_from_slice(format!("ERR line too long (max {limit} bytes)").as_bytes());
        }
    }
}

/// `--listen ADDR` and `--admin ADDR|off`, or a usage message.
fn parse_args() -> Result<(String, Option<String>), String> {
    let (mut listen, mut admin) = (
        "127.0.0.1:3000".to_string(),
        Some("127.0.0.1:9464".to_string()),
    );
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = value,
            "--admin" => admin = (value != "off").then_some(value),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((listen, admin))
}

fn main() -> ExitCode {
    let (listen, admin) = match parse_args() {
        Ok(parsed) => parsed,
        Err(why) => {
            eprintln!("error: {why}\nusage: line_counter [--listen ADDR] [--admin ADDR|off]");
            return ExitCode::from(2);
        }
    };
    // The start-up line (with the bound address), one line per connection.
    syncnet::init_logging(LogFormat::Auto);
    let service = FramedService::new(LineCounter::default()).request_timeout(REQUEST_TIMEOUT);
    // `run` serves until SIGINT/SIGTERM, then drains open connections.
    let served = Server::builder()
        .listen(listen)
        .admin(admin.as_deref())
        .build()
        .and_then(|server| server.run(service));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
        }
    }
}
