//! [`Resp`]: RESP2 requests as syncnet frames.
//!
//! One frame is one whole request, in either of the two forms Redis reads:
//!
//! - an array of bulk strings, `*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`: the frame
//!   is every byte of it, from `*` to the last `\r\n` (the arguments are
//!   picked out by [`crate::request::parse`]);
//! - an inline command, `GET k\r\n` (`\n` alone also ends it): the frame is
//!   the line without its line ending.
//!
//! A reply is already RESP when the protocol writes it, so encoding copies
//! it as it is.
//!
//! # Limits, checked before anything is buffered for them
//!
//! | what | limit | error (then the connection closes) |
//! | --- | --- | --- |
//! | elements in an array | [`MAX_ELEMENTS`] | `invalid multibulk length` |
//! | one bulk string | `--max-value` | `invalid bulk length` |
//! | an inline command | [`MAX_INLINE`] | `too big inline request` |
//! | a whole array request | [`request_limit`] | `too big request` (a `TooLarge` frame error) |
//!
//! The texts are Redis's; [`crate::protocol`] sends them as
//! `-ERR Protocol error: ...`.

use std::cell::Cell;

use syncnet::frame::{Codec, Decoded, FrameError};

use crate::request::{Line, number_line};

/// The longest inline command, its line ending not counted: 64 KiB (Redis's
/// `PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE: usize = 64 * 1024;

/// The most elements one request array may have (Redis 6's limit).
pub const MAX_ELEMENTS: i64 = 1024 * 1024;

/// The largest whole request (an array with all its bulk strings) read
/// with bulk strings of up to `max_value` bytes: 64 MiB, or more when two
/// values (a key and a value) need more.
pub fn request_limit(max_value: usize) -> usize {
    (64 << 20).max(max_value.saturating_mul(2).saturating_add(64 * 1024))
}

/// RESP2 requests (arrays of bulk strings, or inline commands) as frames.
///
/// A codec serves one connection. It remembers how far its last look into
/// an unfinished array got, so that a large request arriving in many reads
/// is scanned once, not once per read ([`Codec::resume_decode`]), and the
/// request it last found, which the reader asks for twice; that memory
/// never changes what it decodes.
#[derive(Debug)]
pub struct Resp {
    /// The longest bulk string: `--max-value`.
    max_bulk: usize,
    /// The largest array request: [`request_limit`].
    max_request: usize,
    /// Where the last look into an unfinished array stopped.
    progress: Cell<Progress>,
    /// The request the last call found, if it found one.
    found: Cell<Option<Found>>,
}

/// A request found in a buffer, remembered by the buffer's address and
/// length: the reader asks twice about the same request (first whether
/// one is buffered, then for it), and the second answer is this one.
///
/// Only the call right after the one that found it may use it, once. The
/// reader changes its buffer's bytes only after a call that found nothing,
/// and after taking a request it asks about the bytes after it, at another
/// address: the same address and length always mean the same bytes.
#[derive(Debug, Clone, Copy)]
struct Found {
    address: usize,
    len: usize,
    frame_end: usize,
    consumed: usize,
}

/// How far a look into an unfinished array got.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// The length of the buffer it looked at; 0 when nothing is saved.
    seen: usize,
    /// Where the next element (its `$` line) starts.
    pos: usize,
    /// Elements still to come.
    remaining: usize,
    /// The bytes the request needs in all, as far as it tells.
    needed: usize,
}

impl Resp {
    /// Bulk strings of at most `max_bulk` bytes; whole array requests of at
    /// most [`request_limit`]`(max_bulk)`.
    pub fn new(max_bulk: usize) -> Resp {
        Resp {
            max_bulk,
            max_request: request_limit(max_bulk),
            progress: Cell::new(Progress::default()),
            found: Cell::new(None),
        }
    }

    /// The request at the start of `buf`, from [`Found`] when the last
    /// call found it; `checked` as in [`Codec::resume_decode`].
    fn look(&self, buf: &[u8], checked: usize) -> Result<Option<Decoded>, FrameError> {
        let (address, len) = (buf.as_ptr() as usize, buf.len());
        if let Some(found) = self.found.take()
            && (found.address, found.len) == (address, len)
        {
            return Ok(Some(Decoded {
                frame: 0..found.frame_end,
                consumed: found.consumed,
            }));
        }
        let saved = self.progress.get();
        let result = match buf.first() {
            None => Ok(None),
            Some(b'*') if checked > 0 && saved.seen == checked => self.array(buf, Some(saved)),
            Some(b'*') => {
                self.progress.set(Progress::default());
                self.array(buf, None)
            }
            Some(_) => inline(buf, checked),
        };
        if let Ok(Some(decoded)) = &result {
            self.found.set(Some(Found {
                address,
                len,
                frame_end: decoded.frame.end,
                consumed: decoded.consumed,
            }));
        }
        result
    }

    /// An array request at the start of `buf`, from its header on or, when
    /// `resume` says where an earlier look stopped, from there.
    fn array(&self, buf: &[u8], resume: Option<Progress>) -> Result<Option<Decoded>, FrameError> {
        // Nothing saved before the header was whole: read it again.
        let (mut pos, mut remaining) = match resume.filter(|saved| saved.remaining > 0) {
            Some(saved) => (saved.pos, saved.remaining),
            None => match header(buf, 0, "invalid multibulk length")? {
                None => return self.incomplete(buf, 0, 0, buf.len() + 1),
                Some((count, _)) if count > MAX_ELEMENTS => {
                    return Err(malformed("invalid multibulk length"));
                }
                // `*0` and `*-1`: a request without arguments (no reply).
                Some((count, next)) if count <= 0 => return Ok(Some(found(next))),
                Some((count, next)) => (next, usize::try_from(count).unwrap_or(0)),
            },
        };
        while remaining > 0 {
            let Some(&first) = buf.get(pos) else {
                return self.incomplete(buf, pos, remaining, pos + 1);
            };
            if first != b'$' {
                return Err(malformed(&format!(
                    "expected '$', got '{}'",
                    char::from(first)
                )));
            }
            let Some((len, data)) = header(buf, pos, "invalid bulk length")? else {
                return self.incomplete(buf, pos, remaining, buf.len() + 1);
            };
            let len = usize::try_from(len)
                .ok()
                .filter(|&len| len <= self.max_bulk)
                .ok_or_else(|| malformed("invalid bulk length"))?;
            let end = data + len + 2;
            if end > self.max_request {
                return Err(FrameError::TooLarge {
                    limit: self.max_request,
                    claimed: end,
                });
            }
            if buf.len() < end {
                return self.incomplete(buf, pos, remaining, end);
            }
            if &buf[data + len..end] != b"\r\n" {
                return Err(malformed("expected '\\r\\n' after a bulk string"));
            }
            pos = end;
            remaining -= 1;
        }
        self.progress.set(Progress::default());
        Ok(Some(found(pos)))
    }

    /// An array not complete yet: remembers where the look stopped, unless
    /// the request already fills the largest buffer allowed.
    fn incomplete(
        &self,
        buf: &[u8],
        pos: usize,
        remaining: usize,
        needed: usize,
    ) -> Result<Option<Decoded>, FrameError> {
        if buf.len() >= self.max_request {
            return Err(FrameError::TooLarge {
                limit: self.max_request,
                claimed: needed.max(buf.len() + 1),
            });
        }
        self.progress.set(Progress {
            seen: buf.len(),
            pos,
            remaining,
            needed,
        });
        Ok(None)
    }
}

/// An inline command at the start of `buf`, looking for its `\n` from
/// `from` on (the bytes before hold none).
fn inline(buf: &[u8], from: usize) -> Result<Option<Decoded>, FrameError> {
    let window = &buf[..buf.len().min(MAX_INLINE + 2)];
    let from = from.min(window.len());
    match window[from..].iter().position(|&byte| byte == b'\n') {
        Some(at) => {
            let newline = from + at;
            let line = &window[..newline];
            let len = line.strip_suffix(b"\r").unwrap_or(line).len();
            if len > MAX_INLINE {
                return Err(malformed("too big inline request"));
            }
            Ok(Some(Decoded {
                frame: 0..len,
                consumed: newline + 1,
            }))
        }
        None => {
            // A last `\r` may be the start of `\r\n`.
            if window.strip_suffix(b"\r").unwrap_or(window).len() > MAX_INLINE {
                return Err(malformed("too big inline request"));
            }
            Ok(None)
        }
    }
}

/// The number on the `*N\r\n` or `$N\r\n` line at `at` (whose first byte
/// is the `*` or `$`) and where the next line starts; `None` when the line
/// is not complete yet; `invalid` as the error when it is not a number.
fn header(buf: &[u8], at: usize, invalid: &str) -> Result<Option<(i64, usize)>, FrameError> {
    match number_line(buf, at + 1) {
        Line::Number(n, next) => Ok(Some((n, next))),
        Line::Incomplete => Ok(None),
        Line::Invalid => Err(malformed(invalid)),
    }
}

/// A request taking the first `len` bytes of the buffer, all of them its frame.
fn found(len: usize) -> Decoded {
    Decoded {
        frame: 0..len,
        consumed: len,
    }
}

/// A protocol error with Redis's words for it.
fn malformed(why: &str) -> FrameError {
    FrameError::Malformed(why.to_string())
}

impl Codec for Resp {
    /// The largest array request.
    fn max_frame_len(&self) -> usize {
        self.max_request
    }

    /// The largest request of either form, with its line ending.
    fn max_encoded_len(&self) -> usize {
        self.max_request.max(MAX_INLINE + 2)
    }

    fn decode(&self, buf: &[u8]) -> Result<Option<Decoded>, FrameError> {
        self.look(buf, 0)
    }

    /// Goes on where the last look stopped: for an inline command, the
    /// search for `\n` after `checked`; for an array, the element it was
    /// waiting for.
    fn resume_decode(&self, buf: &[u8], checked: usize) -> Result<Option<Decoded>, FrameError> {
        self.look(buf, checked)
    }

    /// For an array, up to the end of the bulk string being received, so
    /// the reader grows its buffer for a large value in one step.
    fn expected_len(&self, partial: &[u8]) -> usize {
        let saved = self.progress.get();
        if partial.first() == Some(&b'*') && saved.seen == partial.len() {
            saved.needed.max(partial.len() + 1)
        } else {
            partial.len() + 1
        }
    }

    /// Copies the reply as it is: the protocol wrote it in RESP already.
    /// Replies are made by the server, not claimed by a peer: no limit.
    fn encode(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        out.extend_from_slice(frame);
        Ok(())
    }
}
