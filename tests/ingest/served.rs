//! In-process tests of the `ingest` example's connection loop: the
//! example's handler on a syncnet server over a real file, driven by a
//! plain TCP client.

use std::net::SocketAddr;
use std::path::Path;

use syncnet::{Conn, Server, ServerHandle};

use crate::committer::{Committer, Metrics, Mode};
use crate::support::{connect, expect_closed_by_server};
use crate::{TempDir, exchange, protocol, store};

/// The example's handler on an in-process server, over a real file.
pub struct Served {
    handle: Option<ServerHandle>,
    committer: Option<Committer>,
    metrics: Metrics,
}

impl Served {
    pub fn start(file: &Path, max_record: usize) -> Served {
        let opened = store::open(file).unwrap();
        let metrics = Metrics::unregistered().unwrap();
        let committer = Committer::start(
            opened.store,
            opened.ids,
            Mode::Group,
            metrics.clone(),
            |e| panic!("the committer failed: {e}"),
        )
        .unwrap();
        let submitter = committer.submitter();
        let handle = Server::builder()
            .listen("127.0.0.1:0")
            .admin(None)
            .build()
            .unwrap()
            .spawn(move |conn: &mut Conn| protocol::serve(conn, &submitter, max_record))
            .unwrap();
        Served {
            handle: Some(handle),
            committer: Some(committer),
            metrics,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.handle.as_ref().unwrap().local_addr()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
        }
        if let Some(committer) = self.committer.take() {
            committer.stop();
        }
    }
}

#[test]
fn every_reply_in_order_and_the_file_holds_the_records_byte_for_byte() {
    let dir = TempDir::new("replies");
    let file = dir.path().join("records.jsonl");
    let served = Served::start(&file, 1024);
    let mut stream = connect(served.addr());
    let input = concat!(
        "{\"id\":\"a\",\"v\":1}\n",
        "{ \"v\" : [1,2], \"id\":\"b\" }\r\n",
        "{\"id\":\"a\",\"v\":2}\n",
        "not json\n",
        "[\"id\"]\n",
        "{\"v\":1}\n",
        "{\"id\":7}\n",
        "{\"id\":\"has space\"}\n",
        "{\"id\":\"\"}\n",
        "{\"id\":\"c\\u0064\"}\n",
        "{\"id\":\"b\"}\n",
    );
    let replies = exchange(&mut stream, input.as_bytes(), 11);
    assert_eq!(
        replies,
        [
            "ok a",
            "ok b",
            "dup a",
            "err invalid json",
            "err missing id",
            "err missing id",
            "err bad id",
            "err bad id",
            "err bad id",
            "ok cd",
            "dup b",
        ]
    );
    // The connection stays open after refusals.
    assert_eq!(exchange(&mut stream, b"{\"id\":\"e\"}\n", 1), ["ok e"]);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        concat!(
            "{\"id\":\"a\",\"v\":1}\n",
            "{ \"v\" : [1,2], \"id\":\"b\" }\n",
            "{\"id\":\"c\\u0064\"}\n",
            "{\"id\":\"e\"}\n",
        )
    );
    // A dup on another connection, after the record is durable.
    let mut other = connect(served.addr());
    assert_eq!(exchange(&mut other, b"{\"id\":\"e\"}\n", 1), ["dup e"]);
    let (records, dups, fsyncs) = served.metrics.counts();
    assert_eq!((records, dups), (4, 3));
    assert!((1..=4).contains(&fsyncs), "{fsyncs} syncs");
}

#[test]
fn a_line_over_max_record_gets_err_too_long_then_the_connection_closes() {
    let dir = TempDir::new("too-long");
    let file = dir.path().join("records.jsonl");
    let served = Served::start(&file, 100);
    let mut stream = connect(served.addr());
    // Exactly 100 bytes is served; the records before the long line are
    // acknowledged first.
    let exact = format!("{{\"id\":\"x\",\"pad\":\"{}\"}}", "p".repeat(100 - 19));
    assert_eq!(exact.len(), 100);
    let mut input = format!("{exact}\n{{\"id\":\"y\"}}\n").into_bytes();
    input.extend(vec![b'z'; 50_000]);
    input.extend_from_slice(b"\n{\"id\":\"never\"}\n");
    assert_eq!(
        exchange(&mut stream, &input, 3),
        ["ok x", "ok y", "err too long"]
    );
    expect_closed_by_server(&mut stream);
    let stored = std::fs::read_to_string(&file).unwrap();
    assert_eq!(stored, format!("{exact}\n{{\"id\":\"y\"}}\n"));
}
