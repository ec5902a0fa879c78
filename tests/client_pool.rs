//! `ClientPool` against in-process syncnet servers: one connection for many
//! calls, the per-address limit, stale connections replaced after a server
//! restart, the checkout timeout, retries only for idempotent calls, the
//! metrics on a server's `/metrics`, deadlines inside a `FramedService`, TLS.

mod support;

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use support::*;
use syncnet::frame::{self, LengthPrefixed, Lines};
use syncnet::service::{Answer, FramedService, Protocol, RequestContext};
use syncnet::{
    Call, ClientPool, ClientTls, Conn, Error, RequestErrorKind, ServerHandle, TlsSettings,
};

const ACCEPTED: &str = "syncnet_connections_accepted_total";
const CODEC: LengthPrefixed = LengthPrefixed::new(64 * 1024);

/// Echoes every length-prefixed frame.
fn echo_frames(conn: &mut Conn) -> io::Result<()> {
    let (mut requests, mut replies) = frame::split(conn, CODEC);
    while let Some(request) = requests.read_frame()? {
        replies.write_frame(request)?;
        replies.flush()?;
    }
    Ok(())
}

/// A pool whose waits are long enough for a loaded machine.
fn pool() -> syncnet::ClientPoolBuilder {
    ClientPool::builder()
        .checkout_timeout(WAIT)
        .connect_timeout(WAIT)
        .read_timeout(WAIT)
        .write_timeout(WAIT)
}

/// One call that must succeed and echo `request`.
fn call_ok(pool: &ClientPool, addr: &str, request: &[u8], call: Call) {
    let mut reply = Vec::new();
    pool.call(addr, &CODEC, request, call, &mut reply)
        .unwrap_or_else(|e| panic!("call to {addr}: {e}"));
    assert_eq!(reply, request);
}

#[test]
fn a_thousand_sequential_calls_use_one_connection() {
    let server = spawn_with(builder(), echo_frames);
    let addr = server.local_addr().to_string();
    let pool = pool().build().unwrap();
    for i in 0..1000 {
        call_ok(
            &pool,
            &addr,
            format!("request {i}").as_bytes(),
            Call::Idempotent,
        );
    }
    assert_eq!(metric(&metrics(&server), ACCEPTED), 1.0);
    let stats = pool.stats();
    assert_eq!((stats.created, stats.reused), (1, 999));
    assert_eq!((stats.idle, stats.in_use), (1, 0));
    server.shutdown();
}

#[test]
fn eight_threads_share_at_most_max_total_connections() {
    // Each reply takes a moment, so that the threads overlap.
    let server = spawn_with(builder(), |conn: &mut Conn| {
        let (mut requests, mut replies) = frame::split(conn, CODEC);
        while let Some(request) = requests.read_frame()? {
            thread::sleep(Duration::from_millis(1));
            replies.write_frame(request)?;
            replies.flush()?;
        }
        Ok(())
    });
    let addr = server.local_addr().to_string();
    let pool = pool().max_total_per_addr(4).build().unwrap();
    thread::scope(|scope| {
        for t in 0..8 {
            let (pool, addr) = (&pool, &addr);
            scope.spawn(move || {
                for i in 0..50 {
                    let request = format!("thread {t} call {i}");
                    call_ok(pool, addr, request.as_bytes(), Call::NotIdempotent);
                }
            });
        }
    });
    let accepted = metric(&metrics(&server), ACCEPTED);
    assert!((1.0..=4.0).contains(&accepted), "{accepted} connections");
    let stats = pool.stats();
    assert!(stats.created <= 4, "{stats:?}");
    assert_eq!(stats.created + stats.reused, 8 * 50);
    assert_eq!(stats.in_use, 0);
    server.shutdown();
}

#[test]
fn a_connection_to_a_restarted_server_is_replaced_without_an_error() {
    let server = spawn_with(builder(), echo_frames);
    let addr = server.local_addr();
    let pool = pool().build().unwrap();
    call_ok(&pool, &addr.to_string(), b"before", Call::NotIdempotent);
    server.shutdown(); // closes the pooled connection
    let restarted = spawn_on(addr, echo_frames);

    // Not idempotent: it succeeds because the stale connection was found
    // before the request was sent, not by a retry.
    call_ok(&pool, &addr.to_string(), b"after", Call::NotIdempotent);
    let stats = pool.stats();
    assert_eq!((stats.replaced, stats.created, stats.reused), (1, 2, 0));
    assert_eq!(metric(&metrics(&restarted), ACCEPTED), 1.0);
    restarted.shutdown();
}

/// The text format of `registry`.
fn encode(registry: &syncnet::prometheus::Registry) -> String {
    syncnet::prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("metrics encode")
}

#[test]
fn a_checkout_beyond_the_limit_fails_after_the_checkout_timeout() {
    let server = spawn_with(builder(), echo_frames);
    let addr = server.local_addr().to_string();
    let registry = syncnet::prometheus::Registry::new();
    let timeout = Duration::from_millis(300);
    let pool = pool()
        .max_total_per_addr(1)
        .checkout_timeout(timeout)
        .metrics(&registry)
        .build()
        .unwrap();
    let held = pool.get(&addr).unwrap();

    let started = Instant::now();
    let error = pool.get(&addr).unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(2),
        "failed after {waited:?}"
    );
    assert!(
        matches!(&error, Error::PoolExhausted { addr: a, limit: 1, .. } if *a == addr),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains(&addr) && message.contains("all 1 (max_total_per_addr)"));
    assert_eq!(pool.stats().checkout_timeouts, 1);
    let text = encode(&registry);
    assert_eq!(
        metric(&text, "syncnet_client_pool_checkout_timeouts_total"),
        1.0
    );

    // Once the lease is back, the next checkout gets it.
    drop(held);
    call_ok(&pool, &addr, b"free again", Call::Idempotent);
    server.shutdown();
}

/// A server that closes the connection of the first request it reads,
/// without replying, and echoes every later one; counts the requests.
fn flaky_server(seen: &Arc<AtomicUsize>) -> ServerHandle {
    let seen = Arc::clone(seen);
    spawn_with(builder(), move |conn: &mut Conn| {
        let (mut requests, mut replies) = frame::split(conn, CODEC);
        while let Some(request) = requests.read_frame()? {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                return Ok(()); // drops the connection mid-call
            }
            replies.write_frame(request)?;
            replies.flush()?;
        }
        Ok(())
    })
}

#[test]
fn a_call_that_is_not_idempotent_is_never_sent_twice() {
    let seen = Arc::new(AtomicUsize::new(0));
    let server = flaky_server(&seen);
    let addr = server.local_addr().to_string();
    let pool = pool().build().unwrap();
    let mut reply = Vec::new();
    let error = pool
        .call(&addr, &CODEC, b"pay", Call::NotIdempotent, &mut reply)
        .unwrap_err();
    match &error {
        Error::Call {
            addr: a,
            attempts,
            source,
        } => {
            assert_eq!((a.as_str(), *attempts), (addr.as_str(), 1));
            assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof, "{source}");
        }
        other => panic!("expected Error::Call, got {other:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the server saw one request");
    // The broken connection was closed, not kept.
    assert_eq!((pool.stats().idle, pool.stats().in_use), (0, 0));
    call_ok(&pool, &addr, b"next", Call::NotIdempotent);
    server.shutdown();
}

#[test]
fn an_idempotent_call_is_sent_again_on_a_new_connection() {
    let seen = Arc::new(AtomicUsize::new(0));
    let server = flaky_server(&seen);
    let addr = server.local_addr().to_string();
    let pool = pool().build().unwrap();
    call_ok(&pool, &addr, b"read", Call::Idempotent);
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "the server saw two requests"
    );
    assert_eq!(metric(&metrics(&server), ACCEPTED), 2.0);
    let stats = pool.stats();
    assert_eq!((stats.created, stats.idle, stats.in_use), (2, 1, 0));
    server.shutdown();
}

#[test]
fn the_metrics_appear_on_another_servers_metrics_endpoint() {
    let upstream = spawn_with(builder(), echo_frames);
    let addr = upstream.local_addr().to_string();
    let front = builder().build().unwrap();
    let pool = pool().metrics(&front.metrics_registry()).build().unwrap();
    let front = front.spawn(echo_frames).unwrap();
    for _ in 0..3 {
        call_ok(&pool, &addr, b"counted", Call::Idempotent);
    }
    let idle = "syncnet_client_pool_connections{state=\"idle\"}";
    let in_use = "syncnet_client_pool_connections{state=\"in_use\"}";
    let text = metrics(&front);
    assert_eq!(metric(&text, "syncnet_client_pool_created_total"), 1.0);
    assert_eq!(metric(&text, "syncnet_client_pool_reused_total"), 2.0);
    assert_eq!(metric(&text, "syncnet_client_pool_replaced_total"), 0.0);
    assert_eq!(
        metric(&text, "syncnet_client_pool_checkout_timeouts_total"),
        0.0
    );
    assert_eq!((metric(&text, idle), metric(&text, in_use)), (1.0, 0.0));

    let lease = pool.get(&addr).unwrap();
    let text = metrics(&front);
    assert_eq!((metric(&text, idle), metric(&text, in_use)), (0.0, 1.0));
    drop(lease);
    front.shutdown();
    upstream.shutdown();
}

/// Forwards each line to an upstream through the pool and reports each
/// call's result and duration on `results`.
struct Forward {
    pool: ClientPool,
    upstream: String,
    results: Mutex<mpsc::Sender<(Result<(), Error>, Duration)>>,
}

impl Protocol for Forward {
    type Codec = Lines;
    type Session = ();

    fn codec(&self) -> Lines {
        Lines::new(1024)
    }

    fn answer(&self, _: &mut (), line: &[u8], _: &RequestContext, reply: &mut Vec<u8>) -> Answer {
        let started = Instant::now();
        let mut upstream_reply = Vec::new();
        let result = self.pool.call(
            &self.upstream,
            &CODEC,
            line,
            Call::Idempotent,
            &mut upstream_reply,
        );
        let failed = result.is_err();
        let sender = self.results.lock().unwrap_or_else(|p| p.into_inner());
        let _ = sender.send((result, started.elapsed()));
        if failed {
            reply.extend_from_slice(b"ERR upstream");
            return Answer::Error(RequestErrorKind::Handler);
        }
        reply.extend_from_slice(&upstream_reply);
        Answer::Reply
    }

    fn busy(&self, _: &mut (), _: &[u8], why: RequestErrorKind, reply: &mut Vec<u8>) -> Answer {
        reply.extend_from_slice(format!("BUSY {}", why.as_str()).as_bytes());
        Answer::Reply
    }
}

#[test]
fn a_call_inside_a_handler_gives_up_at_the_requests_deadline() {
    // An upstream that reads everything and never answers.
    let upstream = spawn_with(builder(), |conn: &mut Conn| {
        io::copy(conn, &mut io::sink()).map(drop)
    });
    let (results, calls) = mpsc::channel();
    let forward = Forward {
        // The pool's own timeouts are far longer than the deadline.
        pool: pool().build().unwrap(),
        upstream: upstream.local_addr().to_string(),
        results: Mutex::new(results),
    };
    let deadline = Duration::from_millis(300);
    let front = spawn_with(
        builder(),
        FramedService::new(forward).request_timeout(deadline),
    );

    let mut stream = connect(front.local_addr());
    let mut replies = BufReader::new(stream.try_clone().unwrap());
    let started = Instant::now();
    stream.write_all(b"hello\n").unwrap();
    let mut line = String::new();
    replies.read_line(&mut line).expect("an answer");
    let answered = started.elapsed();

    let (result, took) = calls.recv_timeout(WAIT).expect("the handler called");
    let slack = Duration::from_millis(500);
    assert!(
        took >= deadline - Duration::from_millis(50) && took < deadline + slack,
        "the call took {took:?}"
    );
    match result {
        Err(Error::Call { source, .. }) => {
            assert_eq!(source.kind(), io::ErrorKind::TimedOut, "{source}")
        }
        other => panic!("expected a timed-out call, got {other:?}"),
    }
    assert!(answered < deadline + slack, "answered after {answered:?}");
    assert_eq!(line.trim_end(), "BUSY deadline");
    front.shutdown();
    upstream.shutdown();
}

#[test]
fn a_connect_failure_names_the_address() {
    // A port nobody listens on: bind one, note it, close it.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let pool = pool().build().unwrap();
    let mut reply = Vec::new();
    let error = pool
        .call(&addr, &CODEC, b"anyone?", Call::Idempotent, &mut reply)
        .unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
    assert!(error.to_string().contains(&addr), "{error}");
}

#[test]
fn calls_over_tls_reuse_one_connection() {
    let pki = support::pki::Pki::new();
    let server = spawn_with(
        builder().tls(TlsSettings {
            cert: pki.server.cert.clone(),
            key: pki.server.key.clone(),
            ..TlsSettings::default()
        }),
        echo_frames,
    );
    let addr = server.local_addr().to_string();
    let pool = pool()
        .tls(ClientTls {
            ca: Some(pki.ca.clone()),
            cert: None,
            key: None,
            server_name: None,
        })
        .build()
        .unwrap();
    for i in 0..20 {
        call_ok(
            &pool,
            &addr,
            format!("secret {i}").as_bytes(),
            Call::Idempotent,
        );
    }
    assert_eq!(metric(&metrics(&server), ACCEPTED), 1.0);
    assert_eq!(pool.stats().created, 1);
    server.shutdown();

    // Unusable TLS files are reported by build(), naming the setting.
    let error = ClientPool::builder()
        .tls(ClientTls::default())
        .build()
        .unwrap_err();
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
}
