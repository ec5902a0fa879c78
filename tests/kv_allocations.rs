//! The `kv` example's read path allocates nothing per request: serving a
//! round of requests 1100 times costs exactly the allocations of serving it
//! 100 times (the connection's buffers and the keys, made once). Measured
//! with a counting allocator over `FramedService::serve_stream` on an
//! in-memory stream, so the frame reader, the codec, the store, the reply
//! buffer and the request metrics are all in the count. Writes that replace
//! a value of the same size (SET, INCR, EXPIRE of a key that has a time to
//! live) reuse its memory; a new key costs its allocations.

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

use std::sync::Arc;

use allocations::Wire;
use protocol::Kv;
use syncnet::service::FramedService;

#[path = "support/allocations.rs"]
mod allocations;

#[global_allocator]
static ALLOCATOR: allocations::Counting = allocations::Counting;

/// Serves `requests` (RESP, one after the other) `rounds` times over on one
/// connection; returns the allocations made and the bytes written.
fn serve(service: &FramedService<Kv>, requests: &[u8], rounds: usize) -> (usize, usize) {
    let input = requests.repeat(rounds);
    let mut wire = Wire {
        input: &input,
        chunk: 700,
        written: 0,
    };
    let ((), allocations, _) = allocations::measure(|| {
        service.serve_stream(&mut wire).expect("served to the end");
    });
    (allocations, wire.written)
}

/// The allocations of serving `requests` 1100 times over, minus those of
/// serving them 100 times, on a store set up with `setup`.
fn allocations_per_1000_rounds(setup: &[u8], requests: &[u8]) -> usize {
    let service = FramedService::new(Kv::new(Arc::new(store::Store::new()), 1 << 20));
    serve(&service, setup, 1);
    let (few, few_bytes) = serve(&service, requests, 100);
    let (many, many_bytes) = serve(&service, requests, 1100);
    assert!(
        many_bytes > 10 * few_bytes,
        "{many_bytes} vs {few_bytes} bytes written"
    );
    many - few
}

/// The keys the requests below read and write.
const SETUP: &[u8] = b"MSET key:1 hello key:2 world n 1000000\r\nSET t v EX 100\r\n";

#[test]
fn reading_allocates_nothing() {
    let requests = concat!(
        "*1\r\n$4\r\nPING\r\n",
        "PING\r\n",
        "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n",
        "*2\r\n$3\r\nGET\r\n$5\r\nkey:1\r\n",
        "GET missing\r\n",
        "*4\r\n$4\r\nMGET\r\n$5\r\nkey:1\r\n$5\r\nkey:2\r\n$1\r\nx\r\n",
        "EXISTS key:1 key:2 x\r\n",
        "TTL t\r\nTTL key:1\r\nDBSIZE\r\nCONFIG GET save\r\n",
        // Errors are written into the reply buffer too.
        "NOPE a b\r\nGET\r\nINCR key:1\r\n",
    );
    assert_eq!(allocations_per_1000_rounds(SETUP, requests.as_bytes()), 0);
}

#[test]
fn replacing_a_value_in_place_allocates_nothing() {
    let requests = concat!(
        "*3\r\n$3\r\nSET\r\n$5\r\nkey:1\r\n$5\r\nthere\r\n",
        "SET key:2 again\r\n",
        "INCR n\r\nDECR n\r\nINCRBY n 7\r\nDECRBY n 7\r\n",
        "EXPIRE t 200\r\n",
        "MSET key:1 hello key:2 world\r\n",
    );
    assert_eq!(allocations_per_1000_rounds(SETUP, requests.as_bytes()), 0);
}
