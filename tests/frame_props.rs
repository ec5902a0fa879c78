//! Property tests of `syncnet::frame`: for both codecs, what the reader
//! returns does not depend on how the stream cuts the bytes (down to 1-byte
//! reads, with `WouldBlock` in between); encoding then decoding gives the
//! frames back; and arbitrary bytes never panic nor push the reader's buffer
//! past its documented limit.

use std::io::{self, ErrorKind, Read, Write};

use proptest::collection::vec;
use proptest::prelude::*;
use syncnet::frame::{Codec, FrameError, FrameReader, FrameWriter, LengthPrefixed, Lines};

/// A `Read` over `data` that returns it in pieces of the sizes in `cuts`
/// (used in turn, round and round), answering `WouldBlock` once before each
/// piece whose flag is set.
struct Cut<'a> {
    data: &'a [u8],
    cuts: Vec<(usize, bool)>,
    next: usize,
    blocked: bool,
}

impl<'a> Cut<'a> {
    fn new(data: &'a [u8], cuts: Vec<(usize, bool)>) -> Cut<'a> {
        Cut {
            data,
            cuts,
            next: 0,
            blocked: false,
        }
    }
}

impl Read for Cut<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (size, block) = self.cuts[self.next % self.cuts.len()];
        if block && !self.blocked && !self.data.is_empty() {
            self.blocked = true;
            return Err(ErrorKind::WouldBlock.into());
        }
        self.blocked = false;
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// A `Write` that takes at most the sizes in `cuts` per call (in turn).
struct Trickle {
    out: Vec<u8>,
    cuts: Vec<usize>,
    next: usize,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.cuts[self.next % self.cuts.len()].min(buf.len());
        self.next += 1;
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What one `read_frame` call gave, comparable across runs. `TooLarge`
/// keeps only the limit: for a line, the bytes seen so far depend on the
/// cuts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Frame(Vec<u8>),
    End,
    TooLarge { limit: usize },
    Truncated { expected: usize, received: usize },
    Malformed,
}

/// Reads until the end or the first framing error, retrying `WouldBlock`,
/// and checks the buffer bound after every call.
fn read_all<R: Read, C: Codec>(mut reader: FrameReader<R, C>) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    loop {
        let result = reader.read_frame();
        let outcome = match result {
            Ok(Some(frame)) => Outcome::Frame(frame.to_vec()),
            Ok(None) => Outcome::End,
            Err(FrameError::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                assert!(reader.buffer_capacity() <= reader.buffer_limit());
                continue;
            }
            Err(FrameError::TooLarge { limit, claimed }) => {
                assert!(claimed > limit, "claimed {claimed} <= limit {limit}");
                Outcome::TooLarge { limit }
            }
            Err(FrameError::Truncated { expected, received }) => {
                assert!(expected > received);
                Outcome::Truncated { expected, received }
            }
            Err(FrameError::Malformed(_)) => Outcome::Malformed,
            Err(other) => panic!("unexpected error: {other}"),
        };
        assert!(
            reader.buffer_capacity() <= reader.buffer_limit(),
            "buffer {} over its limit {}",
            reader.buffer_capacity(),
            reader.buffer_limit()
        );
        let last = !matches!(outcome, Outcome::Frame(_));
        outcomes.push(outcome);
        if last {
            return outcomes;
        }
    }
}

fn encode_all<C: Codec>(codec: C, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut writer = FrameWriter::new(Vec::new(), codec);
    for frame in frames {
        writer.write_frame(frame).expect("a frame within the limit");
    }
    writer.flush().expect("writing to a Vec");
    writer.into_inner()
}

fn expected(frames: &[Vec<u8>]) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = frames.iter().cloned().map(Outcome::Frame).collect();
    outcomes.push(Outcome::End);
    outcomes
}

/// Lines the `Lines` codec can write: no `\n`, no trailing `\r`.
fn a_line() -> impl Strategy<Value = Vec<u8>> {
    vec(prop_oneof![Just(b'\r'), Just(b'x'), any::<u8>()], 0..40).prop_map(|mut line| {
        line.retain(|&b| b != b'\n');
        while line.last() == Some(&b'\r') {
            line.pop();
        }
        line
    })
}

/// Read sizes: all 1-byte reads, or a mix of small and larger pieces, some
/// preceded by `WouldBlock`.
fn cuts() -> impl Strategy<Value = Vec<(usize, bool)>> {
    prop_oneof![
        Just(vec![(1, false)]),
        vec((1usize..=1, any::<bool>()), 1..4),
        vec((1usize..=70, any::<bool>()), 1..8),
        vec((1usize..=20_000, any::<bool>()), 1..4),
    ]
}

proptest! {
    #[test]
    fn lines_read_the_same_however_the_bytes_are_cut(
        frames in vec(a_line(), 0..30),
        cuts in cuts(),
    ) {
        let codec = Lines::new(40);
        let wire = encode_all(codec, &frames);
        prop_assert_eq!(read_all(FrameReader::new(&wire[..], codec)), expected(&frames));
        prop_assert_eq!(read_all(FrameReader::new(Cut::new(&wire, cuts), codec)), expected(&frames));
    }

    #[test]
    fn crlf_lines_read_like_lf_lines(frames in vec(a_line(), 0..30), cuts in cuts()) {
        let wire: Vec<u8> = frames.iter().flat_map(|f| [&f[..], b"\r\n"].concat()).collect();
        let reader = FrameReader::new(Cut::new(&wire, cuts), Lines::new(40));
        prop_assert_eq!(read_all(reader), expected(&frames));
    }

    #[test]
    fn length_prefixed_reads_the_same_however_the_bytes_are_cut(
        frames in vec(vec(any::<u8>(), 0..300), 0..30),
        cuts in cuts(),
    ) {
        let codec = LengthPrefixed::new(300);
        let wire = encode_all(codec, &frames);
        prop_assert_eq!(read_all(FrameReader::new(&wire[..], codec)), expected(&frames));
        prop_assert_eq!(read_all(FrameReader::new(Cut::new(&wire, cuts), codec)), expected(&frames));
    }

    #[test]
    fn a_large_frame_arriving_in_pieces_reads_back(
        len in 0usize..200_000,
        cuts in vec((1usize..=20_000, any::<bool>()), 1..4),
    ) {
        let frames = vec![vec![7u8; len], b"after".to_vec()];
        let codec = LengthPrefixed::new(200_000);
        let wire = encode_all(codec, &frames);
        prop_assert_eq!(read_all(FrameReader::new(Cut::new(&wire, cuts), codec)), expected(&frames));
    }

    #[test]
    fn writer_output_does_not_depend_on_how_the_stream_takes_it(
        frames in vec(vec(any::<u8>(), 0..3000), 0..60),
        cuts in vec(1usize..=70_000, 1..5),
        flush_every in 1usize..10,
    ) {
        let codec = LengthPrefixed::new(3000);
        let stream = Trickle { out: Vec::new(), cuts, next: 0 };
        let mut writer = FrameWriter::new(stream, codec);
        for (i, frame) in frames.iter().enumerate() {
            writer.write_frame(frame).unwrap();
            if i % flush_every == 0 {
                writer.flush().unwrap();
            }
        }
        writer.flush().unwrap();
        prop_assert_eq!(writer.into_inner().out, encode_all(codec, &frames));
    }

    #[test]
    fn lines_encode_then_decode_round_trips(line in a_line(), rest in vec(any::<u8>(), 0..10)) {
        let codec = Lines::new(40);
        let mut wire = Vec::new();
        codec.encode(&line, &mut wire).unwrap();
        let consumed = wire.len();
        wire.extend_from_slice(&rest);
        let found = codec.decode(&wire).unwrap().expect("a whole line");
        prop_assert_eq!(&wire[found.frame], &line[..]);
        prop_assert_eq!(found.consumed, consumed);
    }

    #[test]
    fn length_prefixed_encode_then_decode_round_trips(
        frame in vec(any::<u8>(), 0..300),
        rest in vec(any::<u8>(), 0..10),
    ) {
        let codec = LengthPrefixed::new(300);
        let mut wire = Vec::new();
        codec.encode(&frame, &mut wire).unwrap();
        prop_assert_eq!(wire.len(), 4 + frame.len());
        wire.extend_from_slice(&rest);
        let found = codec.decode(&wire).unwrap().expect("a whole frame");
        prop_assert_eq!(&wire[found.frame], &frame[..]);
        prop_assert_eq!(found.consumed, 4 + frame.len());
    }

    #[test]
    fn resuming_a_decode_answers_like_decoding_afresh(
        bytes in vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(0u8), any::<u8>()], 0..200),
        split in any::<prop::sample::Index>(),
        max_len in 0usize..64,
    ) {
        let checked = split.index(bytes.len() + 1);
        let lines = Lines::new(max_len);
        if matches!(lines.decode(&bytes[..checked]), Ok(None)) {
            prop_assert_eq!(
                format!("{:?}", lines.resume_decode(&bytes, checked)),
                format!("{:?}", lines.decode(&bytes))
            );
        }
        let length = LengthPrefixed::new(max_len);
        if matches!(length.decode(&bytes[..checked]), Ok(None)) {
            prop_assert_eq!(
                format!("{:?}", length.resume_decode(&bytes, checked)),
                format!("{:?}", length.decode(&bytes))
            );
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_stay_within_the_buffer_limit(
        bytes in vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(0u8), any::<u8>()], 0..2000),
        max_len in 0usize..64,
        cuts in cuts(),
    ) {
        let uncut = read_all(FrameReader::new(&bytes[..], Lines::new(max_len)));
        let cut = read_all(FrameReader::new(Cut::new(&bytes, cuts.clone()), Lines::new(max_len)));
        prop_assert_eq!(uncut, cut);

        let uncut = read_all(FrameReader::new(&bytes[..], LengthPrefixed::new(max_len)));
        let cut = read_all(FrameReader::new(Cut::new(&bytes, cuts), LengthPrefixed::new(max_len)));
        prop_assert_eq!(uncut, cut);
    }

    #[test]
    fn an_endless_stream_of_garbage_is_stopped_within_the_limit(
        byte in any::<u8>().prop_filter("not a newline", |&b| b != b'\n'),
        max_len in 0usize..100_000,
    ) {
        let result = read_all(FrameReader::new(io::repeat(byte), Lines::new(max_len)));
        prop_assert_eq!(result, vec![Outcome::TooLarge { limit: max_len }]);
    }
}
