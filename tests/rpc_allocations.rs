//! The `rpc` example's request path allocates nothing per request: serving
//! a round of requests 1100 times costs exactly the allocations of serving
//! it 100 times (the connection's buffers, grown once), except the one
//! allocation serde_json makes for params nested two levels deep. Measured
//! with a counting allocator over `FramedService::serve_stream` on an
//! in-memory stream, so the frame reader, the protocol, the reply buffer
//! and the request metrics are all in the count.

#[allow(dead_code)]
#[path = "../examples/rpc/methods.rs"]
mod methods;
#[allow(dead_code)]
#[path = "../examples/rpc/protocol.rs"]
mod protocol;
#[allow(dead_code)]
#[path = "../examples/rpc/upstream.rs"]
mod upstream;

use allocations::Wire;
use protocol::JsonRpc;
use syncnet::service::FramedService;

#[path = "support/allocations.rs"]
mod allocations;

#[global_allocator]
static ALLOCATOR: allocations::Counting = allocations::Counting;

/// `requests`, each framed, `rounds` times over.
fn wire(requests: &[&[u8]], rounds: usize) -> Vec<u8> {
    let mut once = Vec::new();
    for request in requests {
        let len = u32::try_from(request.len()).unwrap();
        once.extend_from_slice(&len.to_be_bytes());
        once.extend_from_slice(request);
    }
    once.repeat(rounds)
}

/// Serves `requests` `rounds` times over on one connection; returns the
/// allocations made and the bytes written.
fn serve(service: &FramedService<JsonRpc>, requests: &[&[u8]], rounds: usize) -> (usize, usize) {
    let input = wire(requests, rounds);
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
/// serving them 100 times: what 1000 rounds cost beyond the connection's
/// set-up and its buffers' growth.
fn allocations_per_1000_rounds(requests: &[&[u8]]) -> usize {
    let service = FramedService::new(JsonRpc::new());
    let (few, few_bytes) = serve(&service, requests, 100);
    let (many, many_bytes) = serve(&service, requests, 1100);
    assert!(
        many_bytes > 10 * few_bytes,
        "{many_bytes} vs {few_bytes} bytes written"
    );
    many - few
}

#[test]
fn serving_a_request_allocates_nothing() {
    let requests: [&[u8]; 8] = [
        br#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[1,2.5,"x",null,true]}"#,
        br#"{"jsonrpc":"2.0","id":"two","method":"add","params":[1,2,3]}"#,
        br#"{"jsonrpc":"2.0","id":3,"method":"add","params":[0.5,2]}"#,
        br#"{"jsonrpc":"2.0","id":4,"method":"nope"}"#,
        br#"{"jsonrpc":"2.0","method":"echo","params":1}"#,
        br#"{"jsonrpc":"2.0","id":null,"method":"echo","traceparent":"00-ab-cd-01"}"#,
        br#"{"method":"echo","params":{"k":"v"},"id":6,"jsonrpc":"2.0"}"#,
        br#"{"jsonrpc":"2.0","id":7,"method":"sleep","params":[0]}"#,
    ];
    assert_eq!(allocations_per_1000_rounds(&requests), 0);
}

#[test]
fn nested_params_cost_serde_json_one_allocation() {
    // To capture a `RawValue`, serde_json skips the value and keeps the
    // brackets it is inside on a stack in the deserializer's scratch
    // buffer, which each `from_str` creates anew: params nested two levels
    // deep or more cost that one allocation. (Error replies cost what
    // serde_json's boxed errors cost; they are not counted here.)
    let nested: [&[u8]; 1] =
        [br#"{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":[1,2,"x"],"b":{"c":null}}}"#];
    assert_eq!(allocations_per_1000_rounds(&nested), 1000);
}
