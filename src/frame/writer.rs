//! [`FrameWriter`]: frames into any `Write`, gathered in one reusable buffer.

use std::fmt;
use std::io::{self, Write};

use super::codec::Codec;
use super::error::FrameError;

/// How many buffered bytes make [`FrameWriter::write_frame`] write them out
/// without waiting for [`flush`](FrameWriter::flush): 64 KiB.
pub const FLUSH_THRESHOLD: usize = 64 * 1024;

/// Writes frames to a byte stream, gathering them in one reusable buffer.
///
/// [`write_frame`](FrameWriter::write_frame) only encodes into the buffer;
/// [`flush`](FrameWriter::flush) writes the buffer out, so a burst of replies
/// costs one `write` call. When the buffer reaches [`FLUSH_THRESHOLD`],
/// `write_frame` writes it out by itself. The buffer is cleared, not freed:
/// once it has grown to the largest burst, writing allocates nothing.
///
/// **Call `flush`** when a burst is complete: dropping the writer does not
/// write what is still buffered (a flush on drop could block for the write
/// timeout and would hide its error).
///
/// # Errors and retries
///
/// On an I/O error (e.g. a write timeout) the bytes not yet written stay
/// buffered, ahead of any later frame: calling `flush` again retries them.
///
/// ```
/// use syncnet::frame::{FrameWriter, Lines};
///
/// let mut writer = FrameWriter::new(Vec::new(), Lines::new(1024));
/// writer.write_frame(b"first")?;
/// writer.write_frame(b"second")?;
/// assert!(writer.get_ref().is_empty()); // buffered, nothing written yet
/// writer.flush()?;
/// assert_eq!(writer.get_ref(), b"first\nsecond\n");
/// # Ok::<(), syncnet::frame::FrameError>(())
/// ```
pub struct FrameWriter<W, C> {
    inner: W,
    codec: C,
    /// Encoded frames not yet written to `inner`.
    buf: Vec<u8>,
}

impl<W, C> FrameWriter<W, C> {
    /// A writer of `codec`'s frames to `inner`. Allocates nothing yet.
    pub fn new(inner: W, codec: C) -> FrameWriter<W, C> {
        FrameWriter {
            inner,
            codec,
            buf: Vec::new(),
        }
    }

    /// The stream being written.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The stream being written, e.g. to change its timeout. Writing to it
    /// directly puts bytes ahead of frames still buffered here.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The stream, giving up the writer. Frames still buffered are dropped:
    /// call [`flush`](FrameWriter::flush) first.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// The codec frames are written with.
    pub fn codec(&self) -> &C {
        &self.codec
    }

    /// The encoded bytes not yet written to the stream.
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// How many bytes the writer's buffer holds allocated now.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl<W: Write, C: Codec> FrameWriter<W, C> {
    /// Encodes `frame` into the buffer; writes the buffer out when it has
    /// reached [`FLUSH_THRESHOLD`] bytes.
    ///
    /// # Errors
    /// - [`FrameError::TooLarge`] or [`FrameError::Malformed`] when the codec
    ///   cannot encode `frame`: nothing is buffered for it;
    /// - [`FrameError::Io`] when writing out the full buffer failed. `frame`
    ///   is buffered all the same: do not write it again, call
    ///   [`flush`](FrameWriter::flush) to retry.
    ///
    /// ```
    /// use syncnet::frame::{FrameError, FrameWriter, LengthPrefixed};
    ///
    /// let mut writer = FrameWriter::new(Vec::new(), LengthPrefixed::new(4));
    /// writer.write_frame(b"ok")?;
    /// assert!(matches!(
    ///     writer.write_frame(b"too long"),
    ///     Err(FrameError::TooLarge { limit: 4, claimed: 8 })
    /// ));
    /// writer.flush()?;
    /// assert_eq!(writer.get_ref(), b"\x00\x00\x00\x02ok");
    /// # Ok::<(), FrameError>(())
    /// ```
    pub fn write_frame(&mut self, frame: &[u8]) -> Result<(), FrameError> {
        let before = self.buf.len();
        if let Err(e) = self.codec.encode(frame, &mut self.buf) {
            self.buf.truncate(before);
            return Err(e);
        }
        if self.buf.len() >= FLUSH_THRESHOLD {
            self.write_buffered()?;
        }
        Ok(())
    }

    /// Writes every buffered frame to the stream, then flushes the stream.
    ///
    /// # Errors
    /// [`FrameError::Io`] when the stream fails; what was not written stays
    /// buffered, and calling `flush` again retries it.
    pub fn flush(&mut self) -> Result<(), FrameError> {
        self.write_buffered()?;
        self.inner.flush()?;
        Ok(())
    }

    /// Writes out the buffer, keeping what could not be written.
    fn write_buffered(&mut self) -> io::Result<()> {
        let mut written = 0;
        let result = loop {
            let rest = &self.buf[written..];
            if rest.is_empty() {
                break Ok(());
            }
            match self.inner.write(rest) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => written += n.min(rest.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // Shifts the unwritten rest to the front, keeping the allocation.
        self.buf.drain(..written);
        result
    }
}

impl<W: fmt::Debug, C: fmt::Debug> fmt::Debug for FrameWriter<W, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameWriter")
            .field("inner", &self.inner)
            .field("codec", &self.codec)
            .field("buffered", &self.buf.len())
            .field("buffer_capacity", &self.buf.capacity())
            .finish()
    }
}
