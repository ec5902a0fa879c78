//! In-process tests of the `ingest` example's modules: checking records,
//! opening the file, and the committer behind a fake store that records
//! the order of appends, syncs and replies.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::committer::{Committer, Metrics, Mode, Submitter};
use crate::protocol::{self, Peer};
use crate::record::{self, Refusal};
use crate::store::{self, Store};
use crate::{TempDir, WAIT};

#[test]
fn a_record_is_a_json_object_with_a_printable_id_of_1_to_128_bytes() {
    let long = "x".repeat(128);
    let too_long = "x".repeat(129);
    let cases: &[(&str, Result<&str, Refusal>)] = &[
        (r#"{"id":"r1"}"#, Ok("r1")),
        (r#"{"v":[1,{"id":2}],"id":"r-2_x.y/~!"}"#, Ok("r-2_x.y/~!")),
        (r#"  {"id" : "a\u0062c"}  "#, Ok("abc")),
        (r#"{"id":"a\/b"}"#, Ok("a/b")),
        (&format!(r#"{{"id":"{long}"}}"#), Ok(&long)),
        (r#"{"id":"r1""#, Err(Refusal::InvalidJson)),
        (r#"{"id":"r1"} x"#, Err(Refusal::InvalidJson)),
        ("not json", Err(Refusal::InvalidJson)),
        ("", Err(Refusal::InvalidJson)),
        ("{\"id\":\"\u{e9}\"", Err(Refusal::InvalidJson)),
        (r#"["id","r1"]"#, Err(Refusal::MissingId)),
        ("17", Err(Refusal::MissingId)),
        (r#"{"ID":"r1"}"#, Err(Refusal::MissingId)),
        ("{}", Err(Refusal::MissingId)),
        (r#"{"id":7}"#, Err(Refusal::BadId)),
        (r#"{"id":null}"#, Err(Refusal::BadId)),
        (r#"{"id":["r1"]}"#, Err(Refusal::BadId)),
        (r#"{"id":""}"#, Err(Refusal::BadId)),
        (r#"{"id":"a b"}"#, Err(Refusal::BadId)),
        (r#"{"id":"a\tb"}"#, Err(Refusal::BadId)),
        (r#"{"id":"a\u0020b"}"#, Err(Refusal::BadId)),
        ("{\"id\":\"caf\u{e9}\"}", Err(Refusal::BadId)),
        (&format!(r#"{{"id":"{too_long}"}}"#), Err(Refusal::BadId)),
        (r#"{"id":"a","id":"b"}"#, Err(Refusal::BadId)),
    ];
    for (line, want) in cases {
        let got = record::parse_id(line.as_bytes());
        assert_eq!(got.as_deref(), want.as_deref(), "{line}");
    }
    // Not UTF-8.
    assert_eq!(
        record::parse_id(b"{\"id\":\"\xff\"}"),
        Err(Refusal::InvalidJson)
    );
}

#[test]
fn open_rebuilds_the_ids_and_cuts_a_torn_last_line() {
    let dir = TempDir::new("open");
    let path = dir.path().join("records.jsonl");
    let complete = "{\"id\":\"a\"}\n{\"id\":\"b\",\"v\":1}\r\n{\"id\":\"c\"}\n";
    std::fs::write(&path, format!("{complete}{{\"id\":\"d\",\"v\"")).unwrap();

    let opened = store::open(&path).unwrap();
    assert_eq!(opened.records, 3);
    assert!(!opened.created);
    let ids: HashSet<&str> = opened.ids.iter().map(String::as_str).collect();
    assert_eq!(ids, HashSet::from(["a", "b", "c"]));
    let torn = opened.torn.expect("a torn line");
    assert_eq!(torn.offset, complete.len() as u64);
    assert_eq!(torn.bytes, b"{\"id\":\"d\",\"v\"");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), complete);

    // Appends go after the last complete line.
    let mut file = opened.store;
    file.append(b"{\"id\":\"e\"}\n").unwrap();
    file.sync().unwrap();
    drop(file);
    let again = store::open(&path).unwrap();
    assert_eq!((again.records, again.torn), (4, None));
}

#[test]
fn open_creates_a_missing_file_and_refuses_a_line_that_is_not_a_record() {
    let dir = TempDir::new("open-bad");
    let path = dir.path().join("new.jsonl");
    let opened = store::open(&path).unwrap();
    assert!(opened.created && opened.records == 0 && opened.torn.is_none());
    assert!(path.exists());

    std::fs::write(&path, "{\"id\":\"a\"}\n{\"v\":1}\n{\"id\":\"b\"}\n").unwrap();
    let error = store::open(&path).unwrap_err().to_string();
    assert!(
        error.contains("line 2 (byte 11) is not a record (err missing id)"),
        "{error}"
    );
    assert!(error.contains("cut it at byte 11"), "{error}");
}

// --------------------------------------------------- the committer's order

/// What happened, in one global order: the store's calls and the replies
/// the connections wrote.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Appended(String),
    SyncStarted,
    Synced,
    /// A reply line, by connection.
    Sent(usize, String),
}

type Log = Arc<Mutex<Vec<Event>>>;

fn push(log: &Log, event: Event) {
    log.lock().unwrap().push(event);
}

/// A store that logs each appended record's id and each sync; a sync can
/// be made to wait at a gate, or to fail.
struct FakeStore {
    log: Log,
    /// For the first sync only: told when it starts, then waited on.
    gate: Option<(Sender<()>, Receiver<()>)>,
    fail_sync: bool,
}

impl FakeStore {
    fn new(log: &Log) -> FakeStore {
        FakeStore {
            log: Arc::clone(log),
            gate: None,
            fail_sync: false,
        }
    }
}

impl Store for FakeStore {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        assert_eq!(bytes.last(), Some(&b'\n'), "whole lines only");
        for line in bytes[..bytes.len() - 1].split(|&b| b == b'\n') {
            let id = record::parse_id(line).expect("only records are written");
            push(&self.log, Event::Appended(id));
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        push(&self.log, Event::SyncStarted);
        if let Some((started, release)) = self.gate.take() {
            started.send(()).unwrap();
            release
                .recv_timeout(WAIT)
                .expect("the test releases the sync");
        }
        if self.fail_sync {
            return Err(io::Error::other("the disk is gone"));
        }
        // A disk's latency, so that bursts from several connections meet.
        thread::sleep(Duration::from_micros(300));
        push(&self.log, Event::Synced);
        Ok(())
    }
}

/// A producer's side of a connection: hands out `input` chunk by chunk
/// (one chunk per read, then end of input), logs every reply line.
struct FakePeer {
    conn: usize,
    input: VecDeque<Vec<u8>>,
    log: Log,
    partial: Vec<u8>,
    /// Told when the first chunk is handed out.
    first_read: Option<Sender<()>>,
}

impl Read for FakePeer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(mut chunk) = self.input.pop_front() else {
            return Ok(0);
        };
        if let Some(first_read) = self.first_read.take() {
            let _ = first_read.send(());
        }
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            self.input.push_front(chunk.split_off(n));
        }
        Ok(n)
    }
}

impl Write for FakePeer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).into_owned();
            push(&self.log, Event::Sent(self.conn, text));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Peer for FakePeer {
    fn stop_reading(&self) -> bool {
        false
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn peer(conn: usize, log: &Log, chunks: Vec<Vec<u8>>) -> FakePeer {
    FakePeer {
        conn,
        input: chunks.into(),
        log: Arc::clone(log),
        partial: Vec::new(),
        first_read: None,
    }
}

fn line(id: &str) -> Vec<u8> {
    format!("{{\"id\":\"{id}\",\"v\":0}}\n").into_bytes()
}

fn start(store: FakeStore, mode: Mode) -> Committer {
    let metrics = Metrics::unregistered().unwrap();
    Committer::start(store, HashSet::new(), mode, metrics, |_| {}).unwrap()
}

/// Replays the log and panics at the first `ok` or `dup` sent before a
/// sync that started after its record's append had ended; also checks no
/// record is appended twice. Returns each connection's replies.
fn check_order(log: &[Event]) -> HashMap<usize, Vec<String>> {
    let (mut appended, mut in_sync, mut durable) = (HashSet::new(), Vec::new(), HashSet::new());
    let mut not_synced = Vec::new();
    let mut replies: HashMap<usize, Vec<String>> = HashMap::new();
    for (at, event) in log.iter().enumerate() {
        match event {
            Event::Appended(id) => {
                assert!(appended.insert(id.clone()), "{id} appended twice");
                not_synced.push(id.clone());
            }
            Event::SyncStarted => in_sync = std::mem::take(&mut not_synced),
            Event::Synced => durable.extend(in_sync.drain(..)),
            Event::Sent(conn, reply) => {
                if let Some(id) = reply.strip_prefix("ok ").or(reply.strip_prefix("dup ")) {
                    assert!(
                        durable.contains(id),
                        "event {at}: `{reply}` sent before a sync covered {id}: {log:#?}"
                    );
                }
                replies.entry(*conn).or_default().push(reply.clone());
            }
        }
    }
    replies
}

/// Serves each peer on its own thread; returns when all are done.
fn serve_all(peers: Vec<FakePeer>, submitter: &Submitter) {
    thread::scope(|scope| {
        for peer in peers {
            scope.spawn(move || protocol::serve(peer, submitter, 1024).unwrap());
        }
    });
}

#[test]
fn no_ok_or_dup_is_sent_before_the_sync_that_covers_its_record() {
    for mode in [Mode::Group, Mode::EveryRecord] {
        let log: Log = Arc::default();
        let committer = start(FakeStore::new(&log), mode);
        // 8 connections, each 40 bursts of 5 records, a repeat of the
        // burst's first record and a refusal. Connections 2j and 2j+1 send
        // the same ids at the same time, so duplicates meet their
        // originals in flight.
        let peers = (0..8)
            .map(|conn| {
                let chunks = (0..40)
                    .map(|burst| {
                        let mut chunk = Vec::new();
                        for i in 0..5 {
                            chunk.extend(line(&id_of(conn, burst * 5 + i)));
                        }
                        chunk.extend(line(&id_of(conn, burst * 5)));
                        chunk.extend_from_slice(b"{\"v\":1}\n");
                        chunk
                    })
                    .collect();
                peer(conn, &log, chunks)
            })
            .collect();
        serve_all(peers, &committer.submitter());
        committer.stop();

        let log = log.lock().unwrap();
        let replies = check_order(&log);
        let mut oks: HashMap<String, usize> = HashMap::new();
        for (conn, lines) in &replies {
            assert_eq!(lines.len(), 40 * 7, "connection {conn}");
            for (burst, chunk) in lines.chunks(7).enumerate() {
                for (i, reply) in chunk[..5].iter().enumerate() {
                    let id = id_of(*conn, burst * 5 + i);
                    if *reply == format!("ok {id}") {
                        *oks.entry(id).or_default() += 1;
                    } else {
                        assert_eq!(*reply, format!("dup {id}"));
                    }
                }
                assert_eq!(chunk[5], format!("dup {}", id_of(*conn, burst * 5)));
                assert_eq!(chunk[6], "err missing id", "the refusal keeps its place");
            }
        }
        assert_eq!(oks.len(), 4 * 200, "every id stored");
        assert!(oks.values().all(|&n| n == 1), "each id `ok` once");
        // The most records one sync covered.
        let (mut most, mut since) = (0, 0);
        for event in log.iter() {
            match event {
                Event::Appended(_) => since += 1,
                Event::SyncStarted => most = std::mem::replace(&mut since, 0).max(most),
                _ => {}
            }
        }
        match mode {
            Mode::EveryRecord => assert_eq!(most, 1),
            Mode::Group => assert!(most > 5, "no sync covered two bursts: no group commit"),
        }
    }
}

/// The id of the `n`th record of connection `conn`: the same for 2j and 2j+1.
fn id_of(conn: usize, n: usize) -> String {
    format!("k{}-{n}", conn / 2)
}

#[test]
fn a_dup_of_a_record_waiting_for_its_sync_waits_for_that_sync() {
    let log: Log = Arc::default();
    let (started_tx, started) = bounded(1);
    let (release, release_rx) = bounded(1);
    let mut store = FakeStore::new(&log);
    store.gate = Some((started_tx, release_rx));
    let committer = start(store, Mode::Group);
    let submitter = committer.submitter();
    thread::scope(|scope| {
        let first = peer(0, &log, vec![line("x")]);
        scope.spawn(|| protocol::serve(first, &submitter, 1024).unwrap());
        started.recv_timeout(WAIT).expect("the first sync starts");

        // The same id on another connection, while that sync is stuck.
        let (read_tx, read) = bounded(1);
        let mut second = peer(1, &log, vec![line("x")]);
        second.first_read = Some(read_tx);
        scope.spawn(|| protocol::serve(second, &submitter, 1024).unwrap());
        read.recv_timeout(WAIT)
            .expect("the second connection reads x");
        // A bounded quiet period, not a synchronisation: a committer that
        // answered the dup at once would have sent it by now.
        thread::sleep(Duration::from_millis(200));
        assert_eq!(
            *log.lock().unwrap(),
            [Event::Appended("x".into()), Event::SyncStarted],
            "nothing sent while the sync is stuck"
        );
        release.send(()).unwrap();
    });
    committer.stop();
    let log = log.lock().unwrap();
    let replies = check_order(&log);
    assert_eq!(replies[&0], ["ok x"]);
    assert_eq!(replies[&1], ["dup x"]);
    assert_eq!(log.iter().filter(|e| **e == Event::Synced).count(), 1);
}

#[test]
fn a_failed_sync_acknowledges_nothing_and_stops_the_committer() {
    let log: Log = Arc::default();
    let mut store = FakeStore::new(&log);
    store.fail_sync = true;
    let (fatal_tx, fatal) = bounded(1);
    let metrics = Metrics::unregistered().unwrap();
    let committer = Committer::start(store, HashSet::new(), Mode::Group, metrics, move |e| {
        fatal_tx.send(e.to_string()).unwrap();
    })
    .unwrap();
    let submitter = committer.submitter();
    let error = protocol::serve(peer(0, &log, vec![line("a")]), &submitter, 1024).unwrap_err();
    assert!(error.to_string().contains("committer failed"), "{error}");
    assert_eq!(fatal.recv_timeout(WAIT).unwrap(), "the disk is gone");
    // Later batches fail too, and nothing more is written.
    assert!(protocol::serve(peer(1, &log, vec![line("b")]), &submitter, 1024).is_err());
    committer.stop();
    let log = log.lock().unwrap();
    assert!(!log.iter().any(|e| matches!(e, Event::Sent(..))), "{log:?}");
    assert_eq!(*log, [Event::Appended("a".into()), Event::SyncStarted]);
}
