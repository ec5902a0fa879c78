//! Unit tests of the frame module: each codec's rules, and the reader's and
//! writer's buffering, retries and errors.

use std::collections::VecDeque;
use std::error::Error as _;
use std::fmt;
use std::io::{self, Cursor, ErrorKind, Read, Write};

use super::*;

/// One answer of a [`Script`]ed stream.
enum Step {
    Data(&'static [u8]),
    Fail(ErrorKind),
}

/// A `Read` that answers from a script, then reports end of input.
struct Script(VecDeque<Step>);

impl Script {
    fn new(steps: impl IntoIterator<Item = Step>) -> Script {
        Script(steps.into_iter().collect())
    }
}

impl Read for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.pop_front() {
            None => Ok(0),
            Some(Step::Fail(kind)) => Err(kind.into()),
            Some(Step::Data(data)) => {
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                if n < data.len() {
                    self.0.push_front(Step::Data(&data[n..]));
                }
                Ok(n)
            }
        }
    }
}

fn lines(max_len: usize) -> Lines {
    Lines::new(max_len)
}

fn decoded(frame: std::ops::Range<usize>, consumed: usize) -> Option<Decoded> {
    Some(Decoded { frame, consumed })
}

/// The `(limit, claimed)` of a `TooLarge` error; panics on anything else.
fn too_large<T: fmt::Debug>(result: Result<T, FrameError>) -> (usize, usize) {
    match result {
        Err(FrameError::TooLarge { limit, claimed }) => (limit, claimed),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// The `(expected, received)` of a `Truncated` error; panics on anything else.
fn truncated<T: fmt::Debug>(result: Result<T, FrameError>) -> (usize, usize) {
    match result {
        Err(FrameError::Truncated { expected, received }) => (expected, received),
        other => panic!("expected Truncated, got {other:?}"),
    }
}

// ---- Lines ----

#[test]
fn lines_accept_lf_and_crlf_and_keep_an_inner_cr() {
    let codec = lines(10);
    assert_eq!(codec.decode(b"abc\ndef").unwrap(), decoded(0..3, 4));
    assert_eq!(codec.decode(b"abc\r\n").unwrap(), decoded(0..3, 5));
    assert_eq!(codec.decode(b"a\rc\n").unwrap(), decoded(0..3, 4));
    assert_eq!(codec.decode(b"\n").unwrap(), decoded(0..0, 1));
    assert_eq!(codec.decode(b"\r\n").unwrap(), decoded(0..0, 2));
    assert_eq!(codec.decode(b"abc").unwrap(), None);
    assert_eq!(codec.decode(b"").unwrap(), None);
}

#[test]
fn lines_limit_counts_the_line_without_its_ending() {
    let codec = lines(3);
    assert_eq!(codec.decode(b"abc\r\n").unwrap(), decoded(0..3, 5));
    // "abc\r" may still become "abc\r\n": wait for the next byte.
    assert_eq!(codec.decode(b"abc\r").unwrap(), None);
    assert_eq!(too_large(codec.decode(b"abcd\n")), (3, 4));
    // Reported as soon as 4 bytes arrived without a newline.
    assert_eq!(too_large(codec.decode(b"abcd")), (3, 4));
    assert_eq!(too_large(codec.decode(b"abc\rx")), (3, 5));
    // The scan stops at max_len + 2 bytes, whatever follows.
    assert!(matches!(
        codec.decode(&[b'x'; 10_000]),
        Err(FrameError::TooLarge {
            limit: 3,
            claimed: 5
        })
    ));
}

#[test]
fn lines_encode_appends_a_newline_and_refuses_what_would_not_read_back() {
    let codec = lines(5);
    let mut out = b"x\n".to_vec();
    codec.encode(b"hello", &mut out).unwrap();
    codec.encode(b"", &mut out).unwrap();
    assert_eq!(out, b"x\nhello\n\n");
    assert_eq!(too_large(codec.encode(b"toolong", &mut out)), (5, 7));
    assert!(matches!(
        codec.encode(b"a\nb", &mut out),
        Err(FrameError::Malformed(_))
    ));
    assert!(matches!(
        codec.encode(b"ab\r", &mut out),
        Err(FrameError::Malformed(_))
    ));
    assert_eq!(codec.max_encoded_len(), 7);
    assert_eq!(Lines::new(usize::MAX).max_encoded_len(), usize::MAX);
}

#[test]
fn lines_expected_len_is_one_more_byte() {
    assert_eq!(lines(10).expected_len(b"abc"), 4);
}

// ---- LengthPrefixed ----

#[test]
fn length_prefixed_waits_for_header_and_body() {
    let codec = LengthPrefixed::new(16);
    assert_eq!(codec.decode(b"").unwrap(), None);
    assert_eq!(codec.decode(b"\0\0\0").unwrap(), None);
    assert_eq!(codec.decode(b"\0\0\0\x03ab").unwrap(), None);
    assert_eq!(codec.decode(b"\0\0\0\x03abcZ").unwrap(), decoded(4..7, 7));
    assert_eq!(codec.decode(b"\0\0\0\0").unwrap(), decoded(4..4, 4));
    assert_eq!(codec.expected_len(b"\0\0"), 4);
    assert_eq!(codec.expected_len(b"\0\0\0\x03ab"), 7);
}

#[test]
fn length_prefixed_refuses_a_claim_over_the_limit_at_the_header() {
    let codec = LengthPrefixed::new(16);
    assert_eq!(too_large(codec.decode(b"\0\0\0\x11")), (16, 17));
    assert_eq!(
        too_large(codec.decode(b"\xff\xff\xff\xff")),
        (16, 0xffff_ffff)
    );
}

#[test]
fn length_prefixed_encode_writes_a_big_endian_header() {
    let codec = LengthPrefixed::new(300);
    let mut out = Vec::new();
    codec.encode(&[7u8; 258], &mut out).unwrap();
    assert_eq!(&out[..4], &[0, 0, 1, 2]);
    assert_eq!(out.len(), 262);
    assert!(matches!(
        codec.encode(&[0u8; 301], &mut out),
        Err(FrameError::TooLarge {
            limit: 300,
            claimed: 301
        })
    ));
}

#[test]
fn length_prefixed_limit_is_capped_at_what_the_header_can_say() {
    assert_eq!(LengthPrefixed::new(usize::MAX).max_len(), u32::MAX as usize);
    assert_eq!(LengthPrefixed::new(10).max_encoded_len(), 14);
}

// ---- FrameReader ----

#[test]
fn reader_keeps_buffered_bytes_across_would_block_and_timeouts() {
    let script = Script::new([
        Step::Data(b"\0\0"),
        Step::Fail(ErrorKind::WouldBlock),
        Step::Data(b"\0\x05he"),
        Step::Fail(ErrorKind::TimedOut),
        Step::Fail(ErrorKind::Interrupted), // retried inside read_frame
        Step::Data(b"llo\0\0\0\x01"),
        Step::Data(b"!"),
    ]);
    let mut reader = FrameReader::new(script, LengthPrefixed::new(100));
    let e = reader.read_frame().unwrap_err();
    assert!(matches!(&e, FrameError::Io(io) if io.kind() == ErrorKind::WouldBlock));
    assert_eq!(reader.buffer(), b"\0\0");
    let e = reader.read_frame().unwrap_err();
    assert!(matches!(&e, FrameError::Io(io) if io.kind() == ErrorKind::TimedOut));
    assert_eq!(reader.read_frame().unwrap(), Some(&b"hello"[..]));
    assert_eq!(reader.read_frame().unwrap(), Some(&b"!"[..]));
    assert_eq!(reader.read_frame().unwrap(), None);
    assert_eq!(reader.read_frame().unwrap(), None);
}

#[test]
fn reader_reports_truncation_with_what_the_codec_expected() {
    let mut reader = FrameReader::new(&b"\0\0\0\x0aabc"[..], LengthPrefixed::new(100));
    assert_eq!(truncated(reader.read_frame()), (14, 7));
    let mut reader = FrameReader::new(&b"\0\0"[..], LengthPrefixed::new(100));
    assert_eq!(truncated(reader.read_frame()), (4, 2));
}

#[test]
fn a_framing_error_is_returned_again_on_every_call() {
    let mut reader = FrameReader::new(&b"ok\ntoo long\nok\n"[..], lines(4));
    assert_eq!(reader.read_frame().unwrap(), Some(&b"ok"[..]));
    for _ in 0..3 {
        assert!(matches!(
            reader.read_frame(),
            Err(FrameError::TooLarge { limit: 4, .. })
        ));
    }
}

#[test]
fn reader_grows_in_one_step_to_an_announced_frame_and_no_further() {
    let len = 100_000usize;
    let mut input = (len as u32).to_be_bytes().to_vec();
    input.resize(4 + len, b'x');
    let codec = LengthPrefixed::new(1 << 20);
    let mut reader = FrameReader::new(&input[..], codec);
    assert_eq!(reader.read_frame().unwrap().map(<[u8]>::len), Some(len));
    assert_eq!(reader.buffer_capacity(), 4 + len);
    assert!(reader.buffer_capacity() <= reader.buffer_limit());
}

#[test]
fn reader_starts_without_allocating_and_with_one_read_chunk() {
    let mut reader = FrameReader::new(&b"a\n"[..], lines(1 << 20));
    assert_eq!(reader.buffer_capacity(), 0);
    reader.read_frame().unwrap();
    assert_eq!(reader.buffer_capacity(), READ_CHUNK);
}

#[test]
fn has_buffered_frame_never_reads() {
    let mut reader = FrameReader::new(Script::new([Step::Data(b"a\nb\n")]), lines(8));
    assert!(!reader.has_buffered_frame());
    assert_eq!(reader.get_ref().0.len(), 1); // the script was not touched
    assert_eq!(reader.read_frame().unwrap(), Some(&b"a"[..]));
    assert!(reader.has_buffered_frame());
    assert_eq!(reader.read_frame().unwrap(), Some(&b"b"[..]));
    assert!(!reader.has_buffered_frame());
}

/// A codec that breaks its contract: it claims more bytes than it was given.
struct Greedy;

impl Codec for Greedy {
    fn max_frame_len(&self) -> usize {
        8
    }
    fn max_encoded_len(&self) -> usize {
        8
    }
    fn decode(&self, buf: &[u8]) -> Result<Option<Decoded>, FrameError> {
        Ok((!buf.is_empty()).then(|| Decoded {
            frame: 0..buf.len() + 5,
            consumed: buf.len() + 5,
        }))
    }
    fn encode(&self, _: &[u8], _: &mut Vec<u8>) -> Result<(), FrameError> {
        Ok(())
    }
}

/// A codec that breaks its contract: it never finds a frame.
struct Never;

impl Codec for Never {
    fn max_frame_len(&self) -> usize {
        8
    }
    fn max_encoded_len(&self) -> usize {
        8
    }
    fn decode(&self, _: &[u8]) -> Result<Option<Decoded>, FrameError> {
        Ok(None)
    }
    fn encode(&self, _: &[u8], _: &mut Vec<u8>) -> Result<(), FrameError> {
        Ok(())
    }
}

#[test]
fn a_faulty_codec_gets_an_error_not_a_panic_nor_an_unbounded_buffer() {
    let mut reader = FrameReader::new(&b"abc"[..], Greedy);
    assert!(matches!(reader.read_frame(), Err(FrameError::Malformed(_))));

    let endless = io::repeat(b'x');
    let mut reader = FrameReader::new(endless, Never);
    assert!(matches!(
        reader.read_frame(),
        Err(FrameError::TooLarge { limit: 8, claimed }) if claimed == 8 + READ_CHUNK
    ));
    assert_eq!(reader.buffer_capacity(), reader.buffer_limit());
}

#[test]
fn reader_gives_back_its_stream_and_buffer() {
    let mut reader = FrameReader::new(Cursor::new(b"one\ntwo\nrest".to_vec()), lines(8));
    assert_eq!(reader.read_frame().unwrap(), Some(&b"one"[..]));
    assert_eq!(reader.buffer(), b"two\nrest");
    assert_eq!(reader.codec(), &lines(8));
    reader.get_mut().set_position(0);
    assert_eq!(reader.get_ref().position(), 0);
    assert!(format!("{reader:?}").contains("buffered: 8"));
    assert_eq!(reader.into_inner().position(), 0);
}

// ---- FrameWriter ----

/// A `Write` that takes at most `per_call` bytes a call, failing with
/// `fail` first on the calls listed.
struct Trickle {
    out: Vec<u8>,
    per_call: usize,
    calls: usize,
    fail_on: Vec<(usize, ErrorKind)>,
    flushes: usize,
}

impl Trickle {
    fn new(per_call: usize, fail_on: Vec<(usize, ErrorKind)>) -> Trickle {
        Trickle {
            out: Vec::new(),
            per_call,
            calls: 0,
            fail_on,
            flushes: 0,
        }
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.calls += 1;
        if let Some(&(_, kind)) = self.fail_on.iter().find(|(call, _)| *call == self.calls) {
            return Err(kind.into());
        }
        let n = buf.len().min(self.per_call);
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flushes += 1;
        Ok(())
    }
}

#[test]
fn writer_buffers_until_flush_then_writes_once() {
    let mut writer = FrameWriter::new(Trickle::new(usize::MAX, vec![]), lines(16));
    for _ in 0..10 {
        writer.write_frame(b"reply").unwrap();
    }
    assert_eq!(writer.get_ref().calls, 0);
    assert_eq!(writer.buffer().len(), 60);
    writer.flush().unwrap();
    assert_eq!(writer.get_ref().calls, 1);
    assert_eq!(writer.get_ref().flushes, 1);
    assert!(writer.buffer().is_empty());
    assert!(writer.buffer_capacity() >= 60); // kept for the next burst
}

#[test]
fn writer_writes_out_at_the_threshold() {
    let mut writer = FrameWriter::new(
        Trickle::new(usize::MAX, vec![]),
        LengthPrefixed::new(1 << 20),
    );
    let frame = vec![1u8; 1000];
    let mut frames = 0;
    while writer.get_ref().calls == 0 {
        writer.write_frame(&frame).unwrap();
        frames += 1;
    }
    assert_eq!(frames, FLUSH_THRESHOLD.div_ceil(1004));
    assert!(writer.buffer().is_empty());
    assert_eq!(writer.get_ref().flushes, 0);
}

#[test]
fn writer_keeps_unwritten_bytes_after_an_error_and_retries_them() {
    let fail = vec![(2, ErrorKind::WouldBlock), (3, ErrorKind::Interrupted)];
    let mut writer = FrameWriter::new(Trickle::new(3, fail), lines(16));
    writer.write_frame(b"abcdef").unwrap();
    let e = writer.flush().unwrap_err();
    assert!(matches!(&e, FrameError::Io(io) if io.kind() == ErrorKind::WouldBlock));
    assert_eq!(writer.buffer(), b"def\n");
    writer.write_frame(b"gh").unwrap();
    writer.flush().unwrap();
    assert_eq!(writer.get_ref().out, b"abcdef\ngh\n");
}

#[test]
fn writer_refuses_a_frame_without_buffering_any_of_it() {
    let mut writer = FrameWriter::new(Vec::new(), lines(4));
    writer.write_frame(b"ok").unwrap();
    assert!(writer.write_frame(b"a\nb").is_err());
    assert!(writer.write_frame(b"toolong").is_err());
    writer.flush().unwrap();
    assert_eq!(writer.into_inner(), b"ok\n");
}

#[test]
fn writer_reports_a_stream_that_takes_nothing() {
    let mut room = [0u8; 2];
    let mut writer = FrameWriter::new(&mut room[..], lines(4));
    writer.write_frame(b"abc").unwrap();
    let e = writer.flush().unwrap_err();
    assert!(matches!(&e, FrameError::Io(io) if io.kind() == ErrorKind::WriteZero));
    assert_eq!(writer.buffer(), b"c\n");
}

// ---- split ----

#[test]
fn split_echoes_frames_over_one_stream() {
    let mut stream = Cursor::new(b"\0\0\0\x02hi\0\0\0\x03you".to_vec());
    let (mut reader, mut writer) = split(&mut stream, LengthPrefixed::new(8));
    while let Some(frame) = reader.read_frame().unwrap() {
        writer.write_frame(frame).unwrap();
    }
    writer.flush().unwrap();
    drop((reader, writer));
    // The cursor was at the end: the echo was appended.
    assert_eq!(&stream.get_ref()[13..], b"\0\0\0\x02hi\0\0\0\x03you");
}

// ---- FrameError ----

#[test]
fn errors_read_well_and_convert_to_io_errors() {
    let truncated = FrameError::Truncated {
        expected: 10,
        received: 3,
    };
    assert_eq!(
        truncated.to_string(),
        "input ended inside a frame: 3 of 10 bytes received"
    );
    assert_eq!(
        FrameError::Malformed("bad tag".into()).to_string(),
        "malformed frame: bad tag"
    );
    let as_io = io::Error::from(truncated);
    assert_eq!(as_io.kind(), ErrorKind::UnexpectedEof);
    assert!(as_io.get_ref().unwrap().is::<FrameError>());
    let as_io = io::Error::from(FrameError::Malformed("x".into()));
    assert_eq!(as_io.kind(), ErrorKind::InvalidData);
}

#[test]
fn an_io_error_passes_through_unchanged_and_is_printed_once() {
    let inner = io::Error::new(ErrorKind::TimedOut, "read timed out");
    let error = FrameError::from(inner);
    assert_eq!(error.to_string(), "read timed out");
    assert!(error.source().is_none());
    let back = io::Error::from(error);
    assert_eq!(back.kind(), ErrorKind::TimedOut);
    assert_eq!(back.to_string(), "read timed out");
}
