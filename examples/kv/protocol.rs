//! [`Kv`]: Redis's protocol as a syncnet [`Protocol`]: one request per
//! frame ([`Resp`]), its reply written straight into the reused reply
//! buffer; the connection's own commands (`MULTI`, `EXEC`, `DISCARD`,
//! `QUIT`); protocol errors and the refusal of a full server in Redis's
//! words.

use std::ops::Range;
use std::sync::Arc;

use syncnet::RequestErrorKind;
use syncnet::frame::FrameError;
use syncnet::service::{Answer, Protocol, RequestContext};

use crate::commands::{self, Cmd, Spec};
use crate::reply;
use crate::request::{self, Args, Source};
use crate::resp::{Resp, request_limit};
use crate::store::{Db, Store};

/// What a client of a full server reads before the connection closes
/// (`Builder::reject_reply`): Redis's words.
pub const REFUSAL: &[u8] = b"-ERR max number of clients reached\r\n";

/// The key-value protocol: RESP2 requests on a shared [`Store`].
#[derive(Debug)]
pub struct Kv {
    store: Arc<Store>,
    /// The longest bulk string a request may carry: `--max-value`.
    max_value: usize,
}

impl Kv {
    /// Serves `store`, reading bulk strings of at most `max_value` bytes.
    pub fn new(store: Arc<Store>, max_value: usize) -> Kv {
        Kv { store, max_value }
    }

    /// `EXEC`: runs the queued commands with every shard locked, so no
    /// other client sees or changes the store in between, and answers the
    /// array of their replies.
    fn exec(&self, tx: &mut Transaction, out: &mut Vec<u8>) -> Answer {
        if tx.dirty {
            tx.end();
            reply::error(
                out,
                "EXECABORT Transaction discarded because of previous errors.",
            );
            return Answer::Error(RequestErrorKind::Malformed);
        }
        {
            let mut all = self.store.lock_all();
            let mut db = Db::Locked(&mut all);
            reply::array(out, tx.commands.len());
            for (spec, args) in &tx.commands {
                let args = Args::new(&tx.data, &tx.ranges[args.clone()]);
                commands::run(spec, args, &mut db, out);
            }
        }
        tx.end();
        Answer::Reply
    }
}

/// What a connection remembers between requests: buffers reused for every
/// request, and its transaction.
#[derive(Debug, Default)]
pub struct Session {
    /// The arguments of the request being answered, as positions.
    ranges: Vec<Range<usize>>,
    /// The unquoted arguments of an inline command with quotes.
    scratch: Vec<u8>,
    /// The transaction (`MULTI` ... `EXEC`).
    tx: Transaction,
}

/// A transaction: the commands queued since `MULTI`, with copies of their
/// arguments.
#[derive(Debug, Default)]
struct Transaction {
    /// Between `MULTI` and `EXEC` or `DISCARD`.
    active: bool,
    /// A command was refused while queuing: `EXEC` will discard them all.
    dirty: bool,
    /// The queued arguments' bytes, one after the other.
    data: Vec<u8>,
    /// Each queued argument's position in `data`.
    ranges: Vec<Range<usize>>,
    /// Each queued command, with the positions of its arguments in `ranges`.
    commands: Vec<(&'static Spec, Range<usize>)>,
}

impl Transaction {
    /// `MULTI`.
    fn begin(&mut self) {
        self.active = true;
        self.dirty = false;
    }

    /// Queues `args` for `spec`; false (and nothing queued) when the queue
    /// would hold more than `limit` bytes of arguments.
    fn queue(&mut self, spec: &'static Spec, args: Args<'_>, limit: usize) -> bool {
        let bytes: usize = args.iter_from(0).map(<[u8]>::len).sum();
        if self.data.len().saturating_add(bytes) > limit {
            return false;
        }
        let first = self.ranges.len();
        for arg in args.iter_from(0) {
            let start = self.data.len();
            self.data.extend_from_slice(arg);
            self.ranges.push(start..self.data.len());
        }
        self.commands.push((spec, first..self.ranges.len()));
        true
    }

    /// `EXEC` or `DISCARD`: forgets the queue, keeping small buffers for
    /// the next transaction.
    fn end(&mut self) {
        if self.data.capacity() > 64 * 1024 {
            *self = Transaction::default();
        } else {
            self.active = false;
            self.data.clear();
            self.ranges.clear();
            self.commands.clear();
        }
    }
}

/// `-ERR Protocol error: why`: Redis's reply before it closes a
/// connection whose input it cannot read.
fn protocol_error(out: &mut Vec<u8>, why: &str) {
    reply::error_parts(out, &[b"ERR Protocol error: ", why.as_bytes()]);
}

impl Protocol for Kv {
    type Codec = Resp;
    type Session = Session;

    fn codec(&self) -> Resp {
        Resp::new(self.max_value)
    }

    fn answer(
        &self,
        session: &mut Session,
        request: &[u8],
        _: &RequestContext,
        out: &mut Vec<u8>,
    ) -> Answer {
        let Session {
            ranges,
            scratch,
            tx,
        } = session;
        let base = match request::parse(request, ranges, scratch) {
            Ok(Source::Frame) => request,
            Ok(Source::Scratch) => scratch.as_slice(),
            Err(why) => {
                protocol_error(out, why);
                return Answer::Close;
            }
        };
        let args = Args::new(base, ranges);
        if args.is_empty() {
            // An empty line or array: Redis answers nothing.
            return Answer::NoReply;
        }
        let spec = match commands::check(args, out) {
            Ok(spec) => spec,
            Err(refused) => {
                tx.dirty |= tx.active;
                return refused;
            }
        };
        let refuse = |out: &mut Vec<u8>, text: &str| {
            reply::error(out, text);
            Answer::Error(RequestErrorKind::Malformed)
        };
        match spec.cmd {
            Cmd::Quit => {
                reply::ok(out);
                Answer::Close
            }
            Cmd::Multi if tx.active => refuse(out, "ERR MULTI calls can not be nested"),
            Cmd::Multi => {
                tx.begin();
                reply::ok(out);
                Answer::Reply
            }
            Cmd::Exec if !tx.active => refuse(out, "ERR EXEC without MULTI"),
            Cmd::Exec => self.exec(tx, out),
            Cmd::Discard if !tx.active => refuse(out, "ERR DISCARD without MULTI"),
            Cmd::Discard => {
                tx.end();
                reply::ok(out);
                Answer::Reply
            }
            _ if tx.active => {
                if tx.queue(spec, args, request_limit(self.max_value)) {
                    reply::simple(out, "QUEUED");
                    Answer::Reply
                } else {
                    tx.dirty = true;
                    refuse(out, "ERR transaction too large")
                }
            }
            _ => commands::run(spec, args, &mut Db::Store(&self.store), out),
        }
    }

    /// `-ERR Protocol error: ...` with Redis's reason (`invalid bulk
    /// length`, `invalid multibulk length`, `too big inline request`, ...);
    /// the connection then closes. Nothing when the input was cut short.
    fn bad_frame(&self, error: &FrameError, out: &mut Vec<u8>) {
        match error {
            FrameError::Malformed(why) => protocol_error(out, why),
            FrameError::TooLarge { .. } => protocol_error(out, "too big request"),
            _ => {}
        }
    }
}
