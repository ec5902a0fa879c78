//! `FramedService`: pipelined requests answered in order with one flush per
//! burst, the request metrics, the request-rate limit, deadlines, and frame
//! errors answered in the protocol's words before the close.

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::*;
use syncnet::frame::{FrameError, LengthPrefixed, Lines};
use syncnet::service::{Answer, FramedService, Protocol, RequestContext};
use syncnet::{Conn, RequestErrorKind};

const REQUESTS: &str = "syncnet_requests_total";

fn errors(kind: &str) -> String {
    format!("syncnet_request_errors_total{{kind=\"{kind}\"}}")
}

/// A line protocol for the tests: `ECHO x` → `x`; `SLEEP ms` → `slept`
/// after sleeping; `LEFT` → the milliseconds left before the deadline (or
/// `none`); `FAIL` → an error reply; `QUIT` → `bye`, then close.
struct TestLines;

impl Protocol for TestLines {
    type Codec = Lines;
    type Session = ();

    fn codec(&self) -> Lines {
        Lines::new(4096)
    }

    fn answer(&self, _: &mut (), line: &[u8], cx: &RequestContext, reply: &mut Vec<u8>) -> Answer {
        let text = String::from_utf8_lossy(line);
        let (command, argument) = text.split_once(' ').unwrap_or((&text, ""));
        match command {
            "ECHO" => reply.extend_from_slice(argument.as_bytes()),
            "SLEEP" => {
                let ms = argument.parse().unwrap_or(0);
                std::thread::sleep(Duration::from_millis(ms));
                reply.extend_from_slice(b"slept");
            }
            "LEFT" => {
                let left = syncnet::service::time_left();
                assert_eq!(left.is_some(), cx.time_left().is_some());
                let text = left.map_or("none".to_string(), |d| d.as_millis().to_string());
                reply.extend_from_slice(text.as_bytes());
            }
            "FAIL" => {
                reply.extend_from_slice(b"ERR failed");
                return Answer::Error(RequestErrorKind::Handler);
            }
            "QUIT" => {
                reply.extend_from_slice(b"bye");
                return Answer::Close;
            }
            _ => {
                reply.extend_from_slice(b"ERR unknown command");
                return Answer::Error(RequestErrorKind::Malformed);
            }
        }
        Answer::Reply
    }

    fn busy(&self, _: &mut (), _: &[u8], why: RequestErrorKind, reply: &mut Vec<u8>) -> Answer {
        reply.extend_from_slice(format!("BUSY {}", why.as_str()).as_bytes());
        Answer::Reply
    }

    fn bad_frame(&self, error: &FrameError, reply: &mut Vec<u8>) {
        let what = match error {
            FrameError::TooLarge { .. } => "too large",
            _ => "bad frame",
        };
        reply.extend_from_slice(format!("ERR {what}").as_bytes());
    }
}

fn line_client(addr: std::net::SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = connect(addr);
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("a reply line");
    line.trim_end().to_string()
}

/// Counts the `write` calls a stream gets.
struct CountingWrites<'a> {
    conn: &'a mut Conn,
    writes: &'a AtomicUsize,
}

impl Read for CountingWrites<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.conn.read(buf)
    }
}

impl Write for CountingWrites<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.conn.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.conn.flush()
    }
}

#[test]
fn a_pipelined_burst_is_answered_in_order_with_few_writes() {
    let writes = Arc::new(AtomicUsize::new(0));
    let service = FramedService::new(TestLines);
    let counted = Arc::clone(&writes);
    let server = spawn_with(builder(), move |conn: &mut Conn| {
        let mut stream = CountingWrites {
            conn,
            writes: &counted,
        };
        service.serve_stream(&mut stream)
    });
    let (mut stream, mut reader) = line_client(server.local_addr());
    let burst: String = (0..1000).map(|i| format!("ECHO {i}\n")).collect();
    stream.write_all(burst.as_bytes()).unwrap();
    for i in 0..1000 {
        assert_eq!(
            read_line(&mut reader),
            i.to_string(),
            "replies in request order"
        );
    }
    let writes = writes.load(Ordering::SeqCst);
    assert!(writes <= 50, "1000 pipelined replies took {writes} writes");
    assert!(writes >= 1);
    server.shutdown();
}

#[test]
fn requests_and_their_errors_are_counted_and_the_connection_stays_open() {
    let server = spawn_with(builder(), FramedService::new(TestLines));
    let (mut stream, mut reader) = line_client(server.local_addr());
    stream.write_all(b"ECHO a\nFAIL\nNOPE\nECHO b\n").unwrap();
    assert_eq!(read_line(&mut reader), "a");
    assert_eq!(read_line(&mut reader), "ERR failed");
    assert_eq!(read_line(&mut reader), "ERR unknown command");
    assert_eq!(read_line(&mut reader), "b");
    let text = metrics(&server);
    assert_eq!(metric(&text, REQUESTS), 4.0);
    assert_eq!(metric(&text, &errors("handler")), 1.0);
    assert_eq!(metric(&text, &errors("malformed")), 1.0);
    assert_eq!(metric(&text, "syncnet_request_duration_seconds_count"), 4.0);
    // QUIT answers, then closes.
    stream.write_all(b"QUIT\n").unwrap();
    assert_eq!(read_line(&mut reader), "bye");
    expect_closed_by_server(&mut stream);
    server.shutdown();
}

#[test]
fn the_request_rate_limit_answers_busy_and_keeps_the_connection() {
    let server = spawn_with(builder(), FramedService::new(TestLines).request_rate(100));
    let (mut stream, mut reader) = line_client(server.local_addr());
    let started = Instant::now();
    let burst: String = (0..1000).map(|i| format!("ECHO {i}\n")).collect();
    stream.write_all(burst.as_bytes()).unwrap();
    let mut served = 0;
    for i in 0..1000 {
        match read_line(&mut reader).as_str() {
            "BUSY rate_limit" => {}
            other => {
                assert_eq!(other, i.to_string());
                served += 1;
            }
        }
    }
    let t = started.elapsed().as_secs_f64();
    let most = 100.0 + 100.0 * t + 1.0;
    assert!(
        (100..=most as usize).contains(&served),
        "{served} of 1000 served in {t:.3} s under 100/s"
    );
    let (line, more_busy) = echo_line(&mut stream, &mut reader);
    assert_eq!(line, "still open");
    wait_metric(
        &server,
        &errors("rate_limit"),
        (1000 - served + more_busy) as f64,
    );
    server.shutdown();
}

/// Sends `ECHO still open` until it is not refused (the bucket refills at
/// 100/s); returns the reply and how many refusals came first.
fn echo_line(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>) -> (String, usize) {
    let deadline = Instant::now() + WAIT;
    let mut busy = 0;
    loop {
        stream.write_all(b"ECHO still open\n").unwrap();
        let line = read_line(reader);
        if line != "BUSY rate_limit" || Instant::now() > deadline {
            return (line, busy);
        }
        busy += 1;
        std::thread::sleep(Duration::from_millis(20)); // the pace under test
    }
}

#[test]
fn a_request_past_its_deadline_is_answered_busy() {
    let timeout = Duration::from_millis(200);
    let server = spawn_with(
        builder(),
        FramedService::new(TestLines).request_timeout(timeout),
    );
    let (mut stream, mut reader) = line_client(server.local_addr());
    stream.write_all(b"LEFT\nSLEEP 400\nECHO after\n").unwrap();
    let left: u64 = read_line(&mut reader).parse().expect("milliseconds left");
    assert!(left <= 200, "time left {left} ms of a 200 ms deadline");
    assert_eq!(read_line(&mut reader), "BUSY deadline");
    assert_eq!(
        read_line(&mut reader),
        "after",
        "the connection stays usable"
    );
    let text = metrics(&server);
    assert_eq!(metric(&text, &errors("deadline")), 1.0);
    assert_eq!(metric(&text, REQUESTS), 3.0);
    server.shutdown();
}

#[test]
fn without_a_timeout_there_is_no_deadline() {
    let server = spawn_with(builder(), FramedService::new(TestLines));
    let (mut stream, mut reader) = line_client(server.local_addr());
    stream.write_all(b"LEFT\n").unwrap();
    assert_eq!(read_line(&mut reader), "none");
    server.shutdown();
}

#[test]
fn a_line_over_the_limit_gets_the_protocols_error_then_a_close() {
    let server = spawn_with(builder(), FramedService::new(TestLines));
    let addr = server.local_addr();
    let (mut stream, mut reader) = line_client(addr);
    let long = vec![b'x'; 100 * 1024];
    // The server may close before reading all of it: a failed write is fine.
    let _ = stream.write_all(&long);
    assert_eq!(read_line(&mut reader), "ERR too large");
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    wait_metric(&server, &errors("frame_too_large"), 1.0);
    wait_metric(
        &server,
        "syncnet_connections_closed_total{reason=\"error\"}",
        1.0,
    );
    // The next client is served.
    let (mut next, mut next_reader) = line_client(addr);
    next.write_all(b"ECHO next\n").unwrap();
    assert_eq!(read_line(&mut next_reader), "next");
    server.shutdown();
}

/// Length-prefixed frames of at most 1 MiB.
struct Binary;

impl Protocol for Binary {
    type Codec = LengthPrefixed;
    type Session = ();
    fn codec(&self) -> LengthPrefixed {
        LengthPrefixed::new(1 << 20)
    }
    fn answer(&self, _: &mut (), frame: &[u8], _: &RequestContext, reply: &mut Vec<u8>) -> Answer {
        reply.extend_from_slice(frame);
        Answer::Reply
    }
}

#[test]
fn a_huge_length_prefix_closes_that_connection_and_others_are_served() {
    let server = spawn_with(builder(), FramedService::new(Binary));
    let addr = server.local_addr();
    let mut liar = connect(addr);
    liar.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
    expect_closed_by_server(&mut liar);
    wait_metric(&server, &errors("frame_too_large"), 1.0);

    let mut honest = connect(addr);
    honest.write_all(&5u32.to_be_bytes()).unwrap();
    honest.write_all(b"hello").unwrap();
    let mut reply = [0u8; 9];
    honest.read_exact(&mut reply).unwrap();
    assert_eq!(&reply[..4], &5u32.to_be_bytes());
    assert_eq!(&reply[4..], b"hello");
    server.shutdown();
}
