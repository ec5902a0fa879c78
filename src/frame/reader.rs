//! [`FrameReader`]: frames out of any `Read`, through one reusable buffer.

use std::fmt;
use std::io::{self, Read};

use super::codec::{Codec, Decoded};
use super::error::FrameError;

/// The size of a reader's first buffer, and the room it keeps beyond the
/// largest frame, so that one `read` call can take in many small pipelined
/// frames: 8 KiB.
pub const READ_CHUNK: usize = 8 * 1024;

/// Reads frames from a byte stream, one at a time, through one reusable
/// buffer.
///
/// Each [`read_frame`](FrameReader::read_frame) returns the next frame as a
/// slice of the reader's buffer, valid until the next call. The reader asks
/// its stream for as many bytes as fit in the buffer at once, so a burst of
/// small pipelined frames costs one `read` call, and it moves a partial frame
/// to the front of the buffer rather than allocating: once the buffer has
/// grown to the largest frame seen, reading allocates nothing.
///
/// # Memory bound
///
/// The buffer starts empty (no allocation until the first read) and never
/// grows past [`buffer_limit`](FrameReader::buffer_limit): the codec's
/// [`max_encoded_len`](Codec::max_encoded_len) plus [`READ_CHUNK`],
/// whatever a peer sends or claims. A length the peer announces is checked
/// before the buffer grows for it. The buffer does not shrink back.
///
/// # Errors and retries
///
/// A timeout or `WouldBlock` from the stream is returned as
/// [`FrameError::Io`] and loses nothing: the next call continues with the
/// bytes already received. A framing error ([`FrameError::TooLarge`],
/// [`FrameError::Malformed`]) leaves the offending bytes in place, so every
/// later call returns it again: the stream cannot be resynchronized.
///
/// ```
/// use syncnet::frame::{FrameReader, LengthPrefixed};
///
/// let input: &[u8] = b"\x00\x00\x00\x03one\x00\x00\x00\x03two";
/// let mut reader = FrameReader::new(input, LengthPrefixed::new(64 * 1024));
/// while let Some(frame) = reader.read_frame()? {
///     println!("got {} bytes", frame.len());
/// }
/// # Ok::<(), syncnet::frame::FrameError>(())
/// ```
pub struct FrameReader<R, C> {
    inner: R,
    codec: C,
    /// Every byte of it initialized; reads go into `buf[end..]`.
    buf: Vec<u8>,
    /// `buf[start..end]`: received and not yet returned as frames.
    start: usize,
    end: usize,
    /// How many of those bytes the codec has seen without finding a frame:
    /// [`Codec::resume_decode`] goes on from there.
    checked: usize,
}

impl<R, C> FrameReader<R, C> {
    /// A reader of `codec`'s frames from `inner`. Allocates nothing yet.
    pub fn new(inner: R, codec: C) -> FrameReader<R, C> {
        FrameReader {
            inner,
            codec,
            buf: Vec::new(),
            start: 0,
            end: 0,
            checked: 0,
        }
    }

    /// The stream being read.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The stream being read, e.g. to change its timeout. Reading from it
    /// directly bypasses the bytes this reader has already buffered.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The stream, giving up the reader. Bytes already received but not yet
    /// returned as frames are dropped: take them from
    /// [`buffer`](FrameReader::buffer) first if they matter.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The codec frames are read with.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The bytes received and not yet returned as frames: the beginning of
    /// the next frame, or several frames.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// How many bytes the reader's buffer holds allocated now; never more
    /// than [`buffer_limit`](FrameReader::buffer_limit).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl<R, C: Codec> FrameReader<R, C> {
    /// The most bytes the buffer will ever hold: the codec's
    /// [`max_encoded_len`](Codec::max_encoded_len) plus [`READ_CHUNK`].
    ///
    /// ```
    /// use syncnet::frame::{FrameReader, LengthPrefixed, READ_CHUNK};
    ///
    /// let reader = FrameReader::new(&b""[..], LengthPrefixed::new(1 << 20));
    /// assert_eq!(reader.buffer_limit(), (1 << 20) + 4 + READ_CHUNK);
    /// assert_eq!(reader.buffer_capacity(), 0); // nothing allocated before reading
    /// ```
    pub fn buffer_limit(&self) -> usize {
        self.codec.max_encoded_len().saturating_add(READ_CHUNK)
    }

    /// True when a complete frame is already buffered, so the next
    /// [`read_frame`](FrameReader::read_frame) returns it without reading
    /// from the stream. This never reads from the stream itself.
    ///
    /// A request/response loop uses it to flush its replies only when no
    /// further pipelined request is waiting: one `write` for a whole burst.
    /// False too when the buffered bytes are a framing error (the next
    /// `read_frame` returns it): flush, then let it fail.
    ///
    /// ```
    /// use syncnet::frame::{FrameReader, Lines};
    ///
    /// // A client sent two requests at once, and half of a third.
    /// let mut reader = FrameReader::new(&b"GET a\nGET b\nGE"[..], Lines::new(100));
    /// assert!(!reader.has_buffered_frame()); // nothing read yet
    /// reader.read_frame()?;
    /// assert!(reader.has_buffered_frame()); // "GET b" is waiting: keep going
    /// reader.read_frame()?;
    /// assert!(!reader.has_buffered_frame()); // only "GE": time to flush
    /// # Ok::<(), syncnet::frame::FrameError>(())
    /// ```
    pub fn has_buffered_frame(&self) -> bool {
        let next = self.codec.resume_decode(self.buffer(), self.checked);
        matches!(next, Ok(Some(_)))
    }
}

impl<R: Read, C: Codec> FrameReader<R, C> {
    /// The next frame, reading from the stream only when no complete frame
    /// is buffered yet.
    ///
    /// Returns `Ok(None)` when the input ends cleanly between two frames.
    /// The frame borrows the reader's buffer until the next call; copy it
    /// (`to_vec`) to keep it longer.
    ///
    /// # Errors
    /// - [`FrameError::TooLarge`] when a frame exceeds the codec's limit,
    ///   found before the frame's bytes are buffered;
    /// - [`FrameError::Truncated`] when the input ends inside a frame;
    /// - [`FrameError::Malformed`] when the codec rejects the bytes;
    /// - [`FrameError::Io`] when the stream fails, e.g. a read timeout:
    ///   calling again continues with what was already received.
    ///
    /// ```
    /// use syncnet::frame::{FrameError, FrameReader, Lines};
    ///
    /// let mut reader = FrameReader::new(&b"hello\nwor"[..], Lines::new(100));
    /// assert_eq!(reader.read_frame()?, Some(&b"hello"[..]));
    /// assert!(matches!(
    ///     reader.read_frame(),
    ///     Err(FrameError::Truncated { expected: 4, received: 3 })
    /// ));
    /// # Ok::<(), FrameError>(())
    /// ```
    pub fn read_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        loop {
            let buffered = &self.buf[self.start..self.end];
            if let Some(found) = self.codec.resume_decode(buffered, self.checked)? {
                check(&found, buffered.len())?;
                let frame = self.start + found.frame.start..self.start + found.frame.end;
                self.start += found.consumed;
                self.checked = 0;
                return Ok(Some(&self.buf[frame]));
            }
            self.checked = buffered.len();
            self.make_room()?;
            if !self.fill()? {
                return self.end_of_input();
            }
        }
    }

    /// Reads once into the room after `end`, retrying when interrupted.
    /// False at the end of input.
    fn fill(&mut self) -> Result<bool, FrameError> {
        loop {
            let room = &mut self.buf[self.end..];
            match self.inner.read(room) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    // `min`: a faulty `Read` claiming more than it was given
                    // must not push `end` past the buffer.
                    self.end += n.min(room.len());
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FrameError::Io(e)),
            }
        }
    }

    /// The stream ended: cleanly between frames, or inside one.
    fn end_of_input(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let partial = self.buffer();
        if partial.is_empty() {
            return Ok(None);
        }
        Err(FrameError::Truncated {
            expected: self.codec.expected_len(partial),
            received: partial.len(),
        })
    }

    /// Makes room after `end` for at least one more byte: moves the
    /// unreturned bytes to the front of the buffer, and grows it (up to
    /// [`buffer_limit`](FrameReader::buffer_limit)) when the frame being
    /// received needs more room than the buffer has.
    fn make_room(&mut self) -> Result<(), FrameError> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let needed = self
            .codec
            .expected_len(&self.buf[..self.end])
            .max(self.end + 1);
        if needed <= self.buf.len() {
            return Ok(());
        }
        let limit = self.buffer_limit();
        if self.end >= limit {
            // Only a codec that breaks its contract (asks for more than
            // `max_encoded_len`) gets here.
            return Err(FrameError::TooLarge {
                limit: self.codec.max_frame_len(),
                claimed: self.end,
            });
        }
        let new_len = needed
            .max(self.buf.len().saturating_mul(2))
            .max(READ_CHUNK)
            .min(limit);
        // A new buffer, not `resize`: only the bytes received are copied.
        let mut grown = Vec::with_capacity(new_len);
        grown.extend_from_slice(&self.buf[..self.end]);
        grown.resize(new_len, 0);
        self.buf = grown;
        Ok(())
    }
}

/// Checks that a codec's answer fits the bytes it was given, so that a
/// faulty codec gets an error, not a panic.
fn check(found: &Decoded, buffered: usize) -> Result<(), FrameError> {
    let Decoded { frame, consumed } = found;
    let fits = *consumed > 0
        && *consumed <= buffered
        && frame.start <= frame.end
        && frame.end <= *consumed;
    if fits {
        return Ok(());
    }
    Err(FrameError::Malformed(format!(
        "the codec found frame {frame:?} using {consumed} bytes in {buffered} buffered bytes"
    )))
}

impl<R: fmt::Debug, C: fmt::Debug> fmt::Debug for FrameReader<R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("inner", &self.inner)
            .field("codec", &self.codec)
            .field("buffered", &(self.end - self.start))
            .field("buffer_capacity", &self.buf.capacity())
            .finish()
    }
}
