//! The limits of `syncnet::frame`, measured with a counting allocator: a
//! huge claimed length is refused without allocating it, a long line is cut
//! off, truncation and `\r\n` are handled, reading and writing allocate
//! nothing once warm, and `has_buffered_frame` lets a request loop answer a
//! pipelined burst with one `write`.

use std::io::{self, Read, Write};

use syncnet::frame::{
    self, FrameError, FrameReader, FrameWriter, LengthPrefixed, Lines, READ_CHUNK,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

#[path = "support/allocations.rs"]
mod allocations;

#[global_allocator]
static ALLOCATOR: allocations::Counting = allocations::Counting;

fn header(len: usize) -> [u8; 4] {
    u32::try_from(len).expect("a u32 length").to_be_bytes()
}

#[test]
fn a_64_mib_claim_against_a_1_mib_limit_is_refused_without_allocating_it() {
    let mut input = header(64 * MIB).to_vec();
    input.extend_from_slice(&[0u8; 4 * KIB]); // the start of the "body"

    let ((result, capacity), _, bytes) = allocations::measure(|| {
        let mut reader = FrameReader::new(&input[..], LengthPrefixed::new(MIB));
        let result = reader.read_frame().map(|frame| frame.map(<[u8]>::to_vec));
        (result, reader.buffer_capacity())
    });
    assert!(
        matches!(
            result,
            Err(FrameError::TooLarge { limit, claimed }) if limit == MIB && claimed == 64 * MIB
        ),
        "{result:?}"
    );
    assert!(bytes <= 2 * READ_CHUNK, "{bytes} bytes allocated");
    assert!(capacity <= READ_CHUNK);
}

#[test]
fn the_allocation_count_is_real_a_legal_1_mib_claim_gets_its_buffer() {
    // The counterpart of the test above: a claim within the limit does grow
    // the buffer, and the counter sees it.
    let input = header(MIB);
    let (result, _, bytes) = allocations::measure(|| {
        let mut reader = FrameReader::new(&input[..], LengthPrefixed::new(MIB));
        reader.read_frame().map(|frame| frame.map(<[u8]>::len))
    });
    assert!(matches!(
        result,
        Err(FrameError::Truncated { expected, received: 4 }) if expected == MIB + 4
    ));
    assert!(bytes >= MIB, "{bytes} bytes allocated");
}

#[test]
fn a_100_kib_line_against_a_4_kib_limit_is_too_large() {
    let mut input = vec![b'a'; 100 * KIB];
    input.push(b'\n');
    let ((result, capacity, limit), _, bytes) = allocations::measure(|| {
        let mut reader = FrameReader::new(&input[..], Lines::new(4 * KIB));
        let result = reader.read_frame().map(|frame| frame.map(<[u8]>::len));
        (result, reader.buffer_capacity(), reader.buffer_limit())
    });
    assert!(
        matches!(
            result,
            Err(FrameError::TooLarge { limit, claimed }) if limit == 4 * KIB && claimed > 4 * KIB
        ),
        "{result:?}"
    );
    assert!(capacity <= limit);
    assert!(
        bytes <= 4 * KIB + 2 + 2 * READ_CHUNK,
        "{bytes} bytes allocated"
    );
}

/// A `Read` that gives one byte per call, as a peer trickling a line would.
struct OneByte<'a>(&'a [u8]);

impl Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some((&first, rest)) = self.0.split_first() else {
            return Ok(0);
        };
        match buf.first_mut() {
            Some(slot) => *slot = first,
            None => return Ok(0),
        }
        self.0 = rest;
        Ok(1)
    }
}

#[test]
fn a_long_line_trickling_in_one_byte_at_a_time_costs_linear_time() {
    // Rescanning the whole partial line after every byte would compare
    // ~2^37 bytes here (minutes); resuming the scan takes milliseconds.
    let mut input = vec![b'a'; 512 * KIB];
    input.extend_from_slice(b"\r\n");
    let started = std::time::Instant::now();
    let mut reader = FrameReader::new(OneByte(&input), Lines::new(MIB));
    assert_eq!(
        reader.read_frame().unwrap().map(<[u8]>::len),
        Some(512 * KIB)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_frame_cut_short_by_the_end_of_input_is_truncated() {
    let cases: [(&[u8], usize, usize); 3] = [
        (b"\x00\x00", 4, 2),                  // inside the header
        (b"\x00\x00\x00\x0ahello", 14, 9),    // inside the body
        (b"\x00\x00\x00\x01!\x00\x00", 4, 2), // a whole frame, then a cut header
    ];
    for (input, expected, received) in cases {
        let mut reader = FrameReader::new(input, LengthPrefixed::new(MIB));
        let result = loop {
            match reader.read_frame() {
                Ok(Some(_)) => continue,
                other => break other.map(|frame| frame.map(<[u8]>::to_vec)),
            }
        };
        assert!(
            matches!(result, Err(FrameError::Truncated { expected: e, received: r }) if e == expected && r == received),
            "{input:?}: {result:?}"
        );
    }
    let mut reader = FrameReader::new(&b"whole\nhalf"[..], Lines::new(100));
    assert_eq!(reader.read_frame().unwrap(), Some(&b"whole"[..]));
    let error = reader.read_frame().unwrap_err();
    assert!(matches!(
        error,
        FrameError::Truncated {
            expected: 5,
            received: 4
        }
    ));
    assert_eq!(io::Error::from(error).kind(), io::ErrorKind::UnexpectedEof);
}

#[test]
fn crlf_and_lf_lines_are_both_accepted() {
    let mut reader = FrameReader::new(&b"HELO\r\nMAIL\nQUIT\r\n\r\n"[..], Lines::new(16));
    assert_eq!(reader.read_frame().unwrap(), Some(&b"HELO"[..]));
    assert_eq!(reader.read_frame().unwrap(), Some(&b"MAIL"[..]));
    assert_eq!(reader.read_frame().unwrap(), Some(&b"QUIT"[..]));
    assert_eq!(reader.read_frame().unwrap(), Some(&b""[..]));
    assert_eq!(reader.read_frame().unwrap(), None);
}

/// A stream whose reads return at most `piece` bytes of `input`, and whose
/// writes are counted and thrown away.
struct Duplex<'a> {
    input: &'a [u8],
    piece: usize,
    reads: usize,
    writes: Vec<usize>,
}

impl<'a> Duplex<'a> {
    fn new(input: &'a [u8], piece: usize) -> Duplex<'a> {
        Duplex {
            input,
            piece,
            reads: 0,
            writes: Vec::with_capacity(4096),
        }
    }
}

impl Read for Duplex<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        let n = buf.len().min(self.piece).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Duplex<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes.push(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn reading_frames_allocates_nothing_once_warm() {
    // Frames of varied sizes, read in pieces that cut them anywhere, so the
    // buffer keeps moving partial frames to its front.
    let frames: Vec<Vec<u8>> = (0..1100).map(|i| vec![b'x'; (i * 37) % 3000]).collect();
    for piece in [1000, 5000, 70_000] {
        let mut writer = FrameWriter::new(Vec::new(), LengthPrefixed::new(4000));
        let mut lines = FrameWriter::new(Vec::new(), Lines::new(4000));
        for frame in &frames {
            writer.write_frame(frame).unwrap();
            lines.write_frame(frame).unwrap();
        }
        writer.flush().unwrap();
        lines.flush().unwrap();

        let wire = writer.into_inner();
        let mut reader = FrameReader::new(Duplex::new(&wire, piece), LengthPrefixed::new(4000));
        for _ in 0..100 {
            reader.read_frame().unwrap();
        }
        let (total, count, _) = allocations::measure(|| {
            (0..1000)
                .map(|_| reader.read_frame().unwrap().map_or(0, <[u8]>::len))
                .sum::<usize>()
        });
        assert!(total > 0);
        assert_eq!(count, 0, "length-prefixed, pieces of {piece}");

        let wire = lines.into_inner();
        let mut reader = FrameReader::new(Duplex::new(&wire, piece), Lines::new(4000));
        for _ in 0..100 {
            reader.read_frame().unwrap();
        }
        let (_, count, _) = allocations::measure(|| {
            for _ in 0..1000 {
                reader.read_frame().unwrap();
            }
        });
        assert_eq!(count, 0, "lines, pieces of {piece}");
    }
}

#[test]
fn writing_frames_allocates_nothing_once_warm() {
    let mut writer = FrameWriter::new(io::sink(), LengthPrefixed::new(MIB));
    let frame = vec![1u8; 3000];
    let burst = |writer: &mut FrameWriter<io::Sink, LengthPrefixed>| {
        // 40 frames of 3000 bytes: past the 64 KiB threshold once per burst.
        for _ in 0..40 {
            writer.write_frame(&frame).unwrap();
        }
        writer.flush().unwrap();
    };
    for _ in 0..3 {
        burst(&mut writer);
    }
    let (_, count, _) = allocations::measure(|| {
        for _ in 0..25 {
            burst(&mut writer); // 1000 frames
        }
    });
    assert_eq!(count, 0);
}

/// The request loop of the module's tutorial: answer each request, flush
/// only when no further request is already buffered.
fn serve(stream: &mut Duplex<'_>) -> io::Result<Vec<bool>> {
    let mut waiting = Vec::new();
    let (mut requests, mut replies) = frame::split(stream, Lines::new(64));
    while let Some(request) = requests.read_frame()? {
        replies.write_frame(request)?;
        let more = requests.has_buffered_frame();
        waiting.push(more);
        if !more {
            replies.flush()?;
        }
    }
    Ok(waiting)
}

#[test]
fn a_pipelined_burst_is_answered_with_one_write() {
    // Three requests and half of a fourth arrive in one read; the rest of
    // the fourth and a fifth in the next.
    let input = b"a\nbb\nccc\ndd";
    let rest = b"dd\ne\n";
    let wire = [&input[..], &rest[..]].concat();
    let mut stream = Duplex::new(&wire, input.len());
    let waiting = serve(&mut stream).unwrap();
    assert_eq!(waiting, [true, true, false, true, false]);
    assert_eq!(stream.writes, [2 + 3 + 4, 5 + 2]);
    assert_eq!(stream.reads, 3); // two pieces and the end: none by has_buffered_frame
}

#[test]
fn a_request_loop_allocates_nothing_once_warm() {
    let wire: Vec<u8> = (0..1100)
        .flat_map(|i| format!("request {i}\n").into_bytes())
        .collect();
    let mut stream = Duplex::new(&wire, 700);
    let (mut requests, mut replies) = frame::split(&mut stream, Lines::new(64));
    let mut step = || -> io::Result<()> {
        if let Some(request) = requests.read_frame()? {
            replies.write_frame(request)?;
            if !requests.has_buffered_frame() {
                replies.flush()?;
            }
        }
        Ok(())
    };
    for _ in 0..100 {
        step().unwrap();
    }
    let (_, count, _) = allocations::measure(|| {
        for _ in 0..1000 {
            step().unwrap();
        }
    });
    assert_eq!(count, 0);
}
