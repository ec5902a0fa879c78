//! The `kv` example (`examples/kv`): a key-value server speaking Redis's
//! protocol (RESP2).
//!
//! The example's modules are compiled into this test (`#[path]`) and served
//! in-process, for the exact reply bytes of every command and error (the
//! expected bytes are what redis-server 7.0 answers to the same requests),
//! pipelining, transactions, and expiry (lazy and by the sweep). The
//! protocol limits and the example's binary (start-up line, flags, a full
//! server's refusal) are tested in `tests/kv_limits.rs`.

mod support;

#[allow(dead_code)]
#[path = "../examples/kv/commands.rs"]
mod commands;
#[path = "support/kv_exchanges.rs"]
mod kv_exchanges;
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
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kv_exchanges::EXCHANGES;
use protocol::{Kv, REFUSAL};
use resp_client::{Resp as Client, bulk, command};
use support::{WAIT, wait_until};
use syncnet::service::FramedService;
use syncnet::{Server, ServerHandle};

/// `--max-value`'s default: 1 MiB.
const MAX_VALUE: usize = 1 << 20;

/// A kv server in this process; `sweep`: how often the expiry sweep runs
/// (`None`: no sweep, expiry only on access).
fn serve(max_value: usize, sweep: Option<Duration>) -> ServerHandle {
    let store = Arc::new(store::Store::new());
    if let Some(every) = sweep {
        store::spawn_sweeper(&store, every).expect("start the sweep");
    }
    Server::builder()
        .listen("127.0.0.1:0")
        .admin(None)
        .reject_reply(REFUSAL)
        .build()
        .expect("server builds")
        .spawn(FramedService::new(Kv::new(store, max_value)))
        .expect("server starts")
}

#[test]
fn every_command_and_error_gets_the_bytes_redis_sends() {
    let server = serve(MAX_VALUE, None);
    let mut client = Client::connect(server.local_addr());
    for (request, reply) in EXCHANGES {
        assert_eq!(client.call(request), *reply, "{request}");
    }
    // The same as arrays of bulk strings; the connection stayed usable
    // after every error above.
    for (request, reply) in EXCHANGES.iter().take(30) {
        let args: Vec<&[u8]> = request.split(' ').map(str::as_bytes).collect();
        assert_eq!(client.call_args(&args), *reply, "{request} as an array");
    }
}

#[test]
fn unknown_commands_are_named_with_their_first_arguments_cut_at_128_bytes() {
    let server = serve(MAX_VALUE, None);
    let mut client = Client::connect(server.local_addr());
    let long = "x".repeat(200);
    assert_eq!(
        client.call(&format!("{long} a b")),
        format!(
            "-ERR unknown command '{}', with args beginning with: 'a' 'b' \r\n",
            "x".repeat(128)
        )
    );
    assert_eq!(
        client.call(&format!("FOO {long} {long}")),
        format!(
            "-ERR unknown command 'FOO', with args beginning with: '{}' \r\n",
            "x".repeat(128)
        )
    );
    // A client's `\r\n` never breaks the error line.
    assert_eq!(
        client.call_args(&[b"NO\r\nPE", b"a\nb"]),
        "-ERR unknown command 'NO  PE', with args beginning with: 'a b' \r\n"
    );
    assert_eq!(client.call("PING"), "+PONG\r\n");
}

#[test]
fn values_are_binary_safe_up_to_the_limit() {
    let server = serve(MAX_VALUE, None);
    let mut client = Client::connect(server.local_addr());
    let odd: &[u8] = b"a\r\nb\0c\xff$-1\r\n*2";
    assert_eq!(client.call_args(&[b"SET", odd, odd]), "+OK\r\n");
    let mut want = format!("${}\r\n", odd.len()).into_bytes();
    want.extend_from_slice(odd);
    want.extend_from_slice(b"\r\n");
    client.send_args(&[b"GET", odd]);
    assert_eq!(client.reply_bytes(), want);

    let largest = vec![b'v'; MAX_VALUE];
    assert_eq!(client.call_args(&[b"SET", b"big", &largest]), "+OK\r\n");
    client.send_args(&[b"GET", b"big"]);
    assert_eq!(
        client.reply_bytes().len(),
        "$1048576\r\n".len() + MAX_VALUE + 2
    );
    assert_eq!(client.call("DBSIZE"), ":2\r\n");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = serve(MAX_VALUE, None);
    let mut client = Client::connect(server.local_addr());
    let mut burst = Vec::new();
    for i in 1..=2000 {
        if i % 2 == 0 {
            burst.extend_from_slice(b"INCR counter\r\n");
        } else {
            burst.extend_from_slice(&command(&[b"INCR", b"counter"]));
        }
    }
    burst.extend_from_slice(b"GET counter\r\n");
    // Written from another thread: the replies come while it writes.
    let mut writer = client.stream().try_clone().unwrap();
    let sending = thread::spawn(move || writer.write_all(&burst));
    for i in 1..=2000 {
        assert_eq!(client.reply(), format!(":{i}\r\n"));
    }
    assert_eq!(client.reply(), bulk("2000"));
    sending.join().unwrap().expect("the burst was sent");
}

/// An in-memory connection: each read returns the next chunk, then end of
/// input; writes are counted.
struct Scripted {
    chunks: Vec<Vec<u8>>,
    written: Vec<u8>,
    writes: usize,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.chunks.is_empty() {
            return Ok(0);
        }
        let chunk = &mut self.chunks[0];
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        chunk.drain(..n);
        if chunk.is_empty() {
            self.chunks.remove(0);
        }
        Ok(n)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_burst_of_requests_is_answered_with_one_write() {
    let service = FramedService::new(Kv::new(Arc::new(store::Store::new()), MAX_VALUE));
    let burst: Vec<u8> = (0..100)
        .flat_map(|i| command(&[b"SET", format!("k{i}").as_bytes(), b"v"]))
        .collect();
    let mut stream = Scripted {
        chunks: vec![burst, b"GET k7\r\nGET k8\r\nPING\r\n".to_vec()],
        written: Vec::new(),
        writes: 0,
    };
    service.serve_stream(&mut stream).expect("served");
    let mut want = "+OK\r\n".repeat(100);
    want.push_str("$1\r\nv\r\n$1\r\nv\r\n+PONG\r\n");
    assert_eq!(String::from_utf8_lossy(&stream.written), want);
    assert_eq!(stream.writes, 2, "one write per burst");
}

#[test]
fn transactions_queue_and_run_atomically() {
    let server = serve(MAX_VALUE, None);
    let addr = server.local_addr();
    let mut setup = Client::connect(addr);
    assert_eq!(setup.call("MSET a 0 b 0"), "+OK\r\n");
    // A writer keeps a and b equal, in transactions and with MSET; readers
    // must never see them differ.
    let writer = thread::spawn(move || {
        let mut client = Client::connect(addr);
        for i in 1..=300 {
            let tx = format!("MULTI\r\nINCR a\r\nINCR b\r\nEXEC\r\nMSET a {i}x b {i}x\r\n");
            client.send(tx.as_bytes());
            for want in ["+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n"] {
                assert_eq!(client.reply(), want);
            }
            assert!(client.reply().starts_with("*2\r\n:"));
            assert_eq!(client.reply(), "+OK\r\n");
            assert_eq!(client.call(&format!("MSET a {i} b {i}")), "+OK\r\n");
        }
    });
    let mut reader = Client::connect(addr);
    let mut seen = 0;
    while !writer.is_finished() && seen < 100_000 {
        let reply = reader.call("MGET a b");
        let values: Vec<&str> = reply.split("\r\n").collect();
        assert_eq!(values[2], values[4], "a and b differ: {reply:?}");
        seen += 1;
    }
    writer.join().expect("the writer's replies");
    assert_eq!(reader.call("MGET a b"), "*2\r\n$3\r\n300\r\n$3\r\n300\r\n");
}

#[test]
fn expired_keys_go_on_access_without_a_sweep() {
    let server = serve(MAX_VALUE, None);
    let mut client = Client::connect(server.local_addr());
    assert_eq!(client.call("SET a 1 PX 30"), "+OK\r\n");
    assert_eq!(client.call("SET b 1 PX 30"), "+OK\r\n");
    assert_eq!(client.call("SET c 1"), "+OK\r\n");
    assert_eq!(client.call("EXPIRE c 1000"), ":1\r\n");
    assert_eq!(client.call("TTL c"), ":1000\r\n");
    // Polled under a deadline: `a` goes when it is read after its time.
    wait_until("GET a finds it expired", || {
        client.call("GET a") == "$-1\r\n"
    });
    // `b` has expired too, but nobody touched it and there is no sweep:
    // it still counts, as in Redis, until it is accessed.
    assert_eq!(client.call("DBSIZE"), ":2\r\n");
    assert_eq!(client.call("EXISTS b"), ":0\r\n");
    assert_eq!(client.call("DBSIZE"), ":1\r\n");
    assert_eq!(client.call("TTL a"), ":-2\r\n");
    // SET without EX clears a time to live; INCR keeps it.
    assert_eq!(client.call("SET c 5"), "+OK\r\n");
    assert_eq!(client.call("TTL c"), ":-1\r\n");
    assert_eq!(client.call("EXPIRE c 50"), ":1\r\n");
    assert_eq!(client.call("INCR c"), ":6\r\n");
    assert_eq!(client.call("TTL c"), ":50\r\n");
}

#[test]
fn the_sweep_removes_expired_keys_nobody_reads() {
    let server = serve(MAX_VALUE, Some(Duration::from_millis(10)));
    let mut client = Client::connect(server.local_addr());
    let mut burst = Vec::new();
    for i in 0..2000 {
        burst.extend_from_slice(format!("SET short{i} v PX 50\r\n").as_bytes());
    }
    burst.extend_from_slice(b"SET kept v\r\nSET later v EX 1000\r\n");
    client.send(&burst);
    for _ in 0..2002 {
        assert_eq!(client.reply(), "+OK\r\n");
    }
    // Only DBSIZE is asked: the keys go without being read.
    let mut size = String::new();
    wait_until("DBSIZE drops to the 2 keys left", || {
        size = client.call("DBSIZE");
        size == ":2\r\n"
    });
    assert_eq!(
        client.call("MGET kept later short1"),
        "*3\r\n$1\r\nv\r\n$1\r\nv\r\n$-1\r\n"
    );
}

#[test]
fn store_sweep_is_bounded_per_pass_and_gives_memory_back() {
    let store = store::Store::new();
    let soon = store::now_ms() + 1;
    {
        let mut all = store.lock_all();
        for i in 0..20_000 {
            let key = format!("k{i}");
            all.shard(key.as_bytes())
                .set(key.as_bytes(), b"v", Some(soon));
        }
    }
    let deadline = Instant::now() + WAIT;
    while store::now_ms() <= soon {
        assert!(Instant::now() < deadline, "the clock did not move");
        thread::yield_now();
    }
    // 32 shards x 16 steps x 20 keys at most per pass.
    let first = store.sweep();
    assert!(
        first > 0 && first <= 32 * 16 * 20,
        "first pass removed {first}"
    );
    let mut passes = 1;
    while store.lock_all().len() > 0 {
        assert!(passes < 1000, "still {} keys", store.lock_all().len());
        store.sweep();
        passes += 1;
    }
    assert!(passes >= 2, "20 000 keys in one pass");
}
