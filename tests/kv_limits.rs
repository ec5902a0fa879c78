//! The `kv` example's limits and its binary.
//!
//! In-process (the example's modules compiled in with `#[path]`): every
//! protocol error Redis answers with `-ERR Protocol error: ...` before it
//! closes the connection, the bulk, array and inline limits (a length
//! announced over the limit is refused before anything is allocated for
//! it), and requests cut anywhere across reads. The example's binary, as a
//! process: the start-up line with the addresses bound, its flags, and a
//! full server's refusal (`-ERR max number of clients reached`).

mod support;

#[path = "support/binary.rs"]
mod binary;
#[allow(dead_code)]
#[path = "../examples/kv/commands.rs"]
mod commands;
#[path = "support/example.rs"]
mod example;
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
#[path = "support/resp_client.rs"]
mod resp_client;
#[allow(dead_code)]
#[path = "../examples/kv/store.rs"]
mod store;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use binary::Binary;
use protocol::{Kv, REFUSAL};
use resp::{MAX_INLINE, Resp, request_limit};
use resp_client::{Resp as Client, bulk, command};
use support::{http_get, wait_until};
use syncnet::frame::{FrameError, FrameReader, READ_CHUNK};
use syncnet::service::{FramedService, Protocol};
use syncnet::{Server, ServerHandle};

/// `--max-value`'s default: 1 MiB.
const MAX_VALUE: usize = 1 << 20;

/// A kv server in this process, without the expiry sweep.
fn serve(max_value: usize) -> ServerHandle {
    Server::builder()
        .listen("127.0.0.1:0")
        .admin(None)
        .build()
        .expect("server builds")
        .spawn(FramedService::new(Kv::new(
            Arc::new(store::Store::new()),
            max_value,
        )))
        .expect("server starts")
}

/// Sends `request` on a new connection and returns all it reads until the
/// server closes the connection.
fn last_words(addr: SocketAddr, request: &[u8]) -> String {
    let mut client = Client::connect(addr);
    client.send(request);
    String::from_utf8_lossy(&client.until_closed()).into_owned()
}

/// `-ERR Protocol error: why\r\n`.
fn protocol_error(why: &str) -> String {
    format!("-ERR Protocol error: {why}\r\n")
}

#[test]
fn protocol_errors_are_answered_then_the_connection_closes() {
    let server = serve(1024);
    let addr = server.local_addr();
    let cases: &[(&[u8], &str)] = &[
        (b"*2\r\n$3\r\nGET\r\n$1025\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$abc\r\n", "invalid bulk length"),
        (b"*1\r\n$+4\r\nPING\r\n", "invalid bulk length"),
        (b"*1048577\r\n", "invalid multibulk length"),
        (b"*abc\r\n", "invalid multibulk length"),
        (b"*123456789012345678901\r\n", "invalid multibulk length"),
        (b"*2\r\nGET\r\n", "expected '$', got 'G'"),
        (
            b"*1\r\n$4\r\nPINGxx",
            "expected '\\r\\n' after a bulk string",
        ),
        (b"SET \"a b\r\n", "unbalanced quotes in request"),
        (b"SET 'a'b c\r\n", "unbalanced quotes in request"),
    ];
    for (request, why) in cases {
        assert_eq!(
            last_words(addr, request),
            protocol_error(why),
            "{}",
            String::from_utf8_lossy(request)
        );
        // The server goes on serving the next client.
        assert_eq!(Client::connect(addr).call("PING"), "+PONG\r\n");
    }
    // Requests before the bad one are answered first.
    assert_eq!(
        last_words(addr, b"PING\r\nGET a\r\n*1\r\n$-5\r\n"),
        format!("+PONG\r\n$-1\r\n{}", protocol_error("invalid bulk length"))
    );
    // Empty requests are not errors: no reply, as in Redis.
    let mut client = Client::connect(addr);
    client.send(b"\r\n  \r\n*0\r\n*-1\r\nPING\r\n");
    assert_eq!(client.reply(), "+PONG\r\n");
}

#[test]
fn the_bulk_limit_is_max_value() {
    let server = serve(1024);
    let mut client = Client::connect(server.local_addr());
    let largest = vec![b'x'; 1024];
    assert_eq!(client.call_args(&[b"SET", b"k", &largest]), "+OK\r\n");
    // One byte more: refused at its `$1025` line, before the value comes.
    client.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n");
    assert_eq!(
        String::from_utf8_lossy(&client.until_closed()),
        protocol_error("invalid bulk length")
    );
}

#[test]
fn inline_commands_are_limited_to_64_kib() {
    let server = serve(MAX_VALUE);
    let addr = server.local_addr();
    let text = "x".repeat(MAX_INLINE - "ECHO ".len());
    let mut client = Client::connect(addr);
    assert_eq!(client.call(&format!("ECHO {text}")), bulk(&text));
    // One byte more, with or without its line ending yet.
    let over = format!("ECHO x{text}");
    assert_eq!(
        last_words(addr, format!("{over}\r\n").as_bytes()),
        protocol_error("too big inline request")
    );
    assert_eq!(
        last_words(addr, over.as_bytes()),
        protocol_error("too big inline request")
    );
}

#[test]
fn a_claimed_length_is_refused_before_anything_is_allocated() {
    let claims: &[(&[u8], &str)] = &[
        (b"*2\r\n$3\r\nGET\r\n$1073741824\r\n", "invalid bulk length"),
        (b"*2147483648\r\n", "invalid multibulk length"),
    ];
    for (input, why) in claims {
        let mut reader = FrameReader::new(*input, Resp::new(MAX_VALUE));
        match reader.read_frame() {
            Err(FrameError::Malformed(text)) => assert_eq!(text, *why),
            other => panic!("{other:?}"),
        }
        assert!(reader.buffer_capacity() <= READ_CHUNK);
    }
}

/// An array of `count` bulk strings of 64 bytes, made as it is read.
struct Elements {
    head: Vec<u8>,
    count: usize,
}

impl Read for Elements {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.head.is_empty() && self.count > 0 {
            self.head = command(&[&[b'v'; 64]])[4..].to_vec(); // `$64\r\n...\r\n`
            self.count -= 1;
        }
        let n = self.head.len().min(buf.len());
        buf[..n].copy_from_slice(&self.head[..n]);
        self.head.drain(..n);
        Ok(n)
    }
}

#[test]
fn a_whole_request_over_the_limit_is_refused() {
    // 1 048 576 elements of 64 bytes: 74 MB, over the 64 MiB limit.
    let elements = Elements {
        head: b"*1048576\r\n".to_vec(),
        count: 1 << 20,
    };
    let mut reader = FrameReader::new(elements, Resp::new(MAX_VALUE));
    let limit = request_limit(MAX_VALUE);
    assert_eq!(limit, 64 << 20);
    match reader.read_frame() {
        Err(FrameError::TooLarge { limit: l, claimed }) => {
            assert_eq!(l, limit);
            assert!(claimed > limit);
        }
        other => panic!("{other:?}"),
    }
    assert!(reader.buffer_capacity() <= reader.buffer_limit());
    // The peer's last words.
    let kv = Kv::new(Arc::new(store::Store::new()), MAX_VALUE);
    let mut out = Vec::new();
    kv.bad_frame(
        &FrameError::TooLarge {
            limit,
            claimed: limit + 1,
        },
        &mut out,
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        protocol_error("too big request")
    );
}

/// Gives its input `step(i)` bytes at a time.
struct Trickle<'a> {
    input: &'a [u8],
    reads: usize,
    step: fn(usize) -> usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.step)(self.reads)
            .max(1)
            .min(buf.len())
            .min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        self.reads += 1;
        Ok(n)
    }
}

#[test]
fn requests_cut_anywhere_across_reads_are_read_whole() {
    let mut input = Vec::new();
    let mut want: Vec<Vec<u8>> = Vec::new();
    for i in 0..50 {
        let array = command(&[b"SET", format!("key{i}").as_bytes(), &vec![b'v'; i * 37]]);
        input.extend_from_slice(&array);
        want.push(array);
        input.extend_from_slice(format!("GET key{i}\r\n").as_bytes());
        want.push(format!("GET key{i}").into_bytes());
    }
    // A large array last: with one byte per read, scanning it again from
    // its start at every read would take minutes.
    let many: Vec<&[u8]> = std::iter::repeat_n(&b"abc"[..], 20_000).collect();
    let array = command(&many);
    input.extend_from_slice(&array);
    want.push(array);
    let steps: [fn(usize) -> usize; 4] = [
        |_| 1,
        |i| i % 7 + 1,
        |i| (i * 7919) % 4096 + 1,
        |_| usize::MAX,
    ];
    for step in steps {
        let trickle = Trickle {
            input: &input,
            reads: 0,
            step,
        };
        let mut reader = FrameReader::new(trickle, Resp::new(MAX_VALUE));
        for (i, frame) in want.iter().enumerate() {
            let got = reader.read_frame().expect("a frame").expect("not the end");
            assert_eq!(got, &frame[..], "frame {i}");
        }
        assert!(reader.read_frame().expect("the end").is_none());
    }
}

// ------------------------------------------------------ the real process

/// The example's binary on 127.0.0.1:0 with JSON logs and `extra` flags,
/// past its start-up line.
fn kv_serve(extra: &[&str]) -> Binary {
    let mut cmd = kv_command(&["--listen", "127.0.0.1:0", "--log-format", "json"]);
    cmd.args(extra);
    Binary::start(cmd)
}

/// The example's binary with `args`, in a clean environment.
fn kv_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(example::kv_exe());
    binary::clean_env(&mut cmd);
    cmd.args(args);
    cmd
}

#[test]
fn the_binary_logs_the_addresses_it_bound() {
    let server = kv_serve(&[]);
    assert_eq!(
        server.startup["msg"],
        format!("syncnet listening on {}", server.listen)
    );
    assert_ne!(server.listen.port(), 0, "the real port: {}", server.startup);
    assert_eq!(server.startup["admin"], "off", "admin is off by default");
    assert_eq!(server.startup["workers"], 512);
    let mut client = Client::connect(server.listen);
    assert_eq!(client.call("SET k v"), "+OK\r\n");
    assert_eq!(client.call("GET k"), bulk("v"));
    client.send(b"QUIT\r\n");
    assert_eq!(client.until_closed(), b"+OK\r\n");

    let with_admin = kv_serve(&["--admin", "127.0.0.1:0", "--workers", "8"]);
    let admin = with_admin.admin_addr();
    assert_ne!(admin.port(), 0);
    assert_eq!(with_admin.startup["workers"], 8);
    let (status, body) = http_get(admin, "/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
}

#[test]
fn a_full_server_refuses_new_clients_in_redis_words() {
    let server = kv_serve(&["--workers", "1", "--queue", "0"]);
    let mut first = Client::connect(server.listen);
    assert_eq!(first.call("PING"), "+PONG\r\n"); // it holds the only worker
    let mut second = Client::connect(server.listen);
    assert_eq!(second.until_closed(), REFUSAL);
    assert_eq!(REFUSAL, b"-ERR max number of clients reached\r\n");
    // Once the first leaves, a new client is served.
    first.send(b"QUIT\r\n");
    assert_eq!(first.until_closed(), b"+OK\r\n");
    wait_until("a new client is served", || {
        let mut client = support::connect(server.listen);
        let _ = client.write_all(b"PING\r\n");
        let mut reply = [0u8; 7];
        client.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    });
}

#[test]
fn max_value_sets_the_bulk_limit_and_bad_flags_exit_2() {
    let server = kv_serve(&["--max-value", "16"]);
    let mut client = Client::connect(server.listen);
    assert_eq!(client.call_args(&[b"SET", b"k", &[b'v'; 16]]), "+OK\r\n");
    assert_eq!(
        last_words(server.listen, &command(&[b"SET", b"k", &[b'v'; 17]])),
        protocol_error("invalid bulk length")
    );
    let kib = kv_serve(&["--max-value", "1KiB"]);
    let mut client = Client::connect(kib.listen);
    assert_eq!(client.call_args(&[b"SET", b"k", &[b'v'; 1024]]), "+OK\r\n");

    for bad in ["0", "abc", "1GiB", "513MiB", "-1", "1 MiB"] {
        let out = binary::run(kv_command(&[&format!("--max-value={bad}")]), b"");
        assert_eq!(out.code(), 2, "--max-value {bad}: {}", out.stderr);
        assert!(out.stderr.contains("--max-value"), "{}", out.stderr);
    }
}

#[test]
fn the_binary_sweeps_expired_keys() {
    let server = kv_serve(&[]);
    let mut client = Client::connect(server.listen);
    let burst: String = (0..100).map(|i| format!("SET k{i} v PX 20\r\n")).collect();
    client.send(burst.as_bytes());
    for _ in 0..100 {
        assert_eq!(client.reply(), "+OK\r\n");
    }
    wait_until("DBSIZE drops to 0", || client.call("DBSIZE") == ":0\r\n");
}
