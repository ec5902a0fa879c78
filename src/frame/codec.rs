//! [`Codec`]: how frames look on the wire, and [`Decoded`]: where a frame
//! was found in a buffer.

use std::ops::Range;

use super::error::FrameError;

/// How frames are cut out of a byte stream and put into one.
///
/// A codec holds no state between calls: [`FrameReader`](super::FrameReader)
/// and [`FrameWriter`](super::FrameWriter) own the buffers and the I/O, the
/// codec only looks at bytes. syncnet ships [`Lines`](super::Lines) and
/// [`LengthPrefixed`](super::LengthPrefixed); implement this trait for your
/// own wire format.
///
/// # The rules a codec follows
///
/// - [`decode`](Codec::decode) checks a length the peer *claims* against
///   [`max_frame_len`](Codec::max_frame_len) as soon as it can see it, and
///   returns [`FrameError::TooLarge`] then, before waiting for the bytes.
/// - Once `buf` holds [`max_encoded_len`](Codec::max_encoded_len) bytes or
///   more, `decode` finds a frame or returns an error; it never asks for more.
///   (If it did anyway, the reader stops with `TooLarge` rather than grow its
///   buffer further.)
/// - `decode` and `encode` never panic, whatever the bytes.
///
/// # Example: a one-byte length prefix
///
/// ```
/// use syncnet::frame::{Codec, Decoded, FrameError, FrameReader, FrameWriter};
///
/// /// A length byte (0 to 255), then that many bytes.
/// struct ShortFrames;
///
/// impl Codec for ShortFrames {
///     fn max_frame_len(&self) -> usize {
///         255
///     }
///     fn max_encoded_len(&self) -> usize {
///         1 + 255
///     }
///     fn decode(&self, buf: &[u8]) -> Result<Option<Decoded>, FrameError> {
///         let Some(&len) = buf.first() else {
///             return Ok(None); // not even the length byte yet
///         };
///         let end = 1 + usize::from(len);
///         if buf.len() < end {
///             return Ok(None);
///         }
///         Ok(Some(Decoded { frame: 1..end, consumed: end }))
///     }
///     fn expected_len(&self, partial: &[u8]) -> usize {
///         partial.first().map_or(1, |&len| 1 + usize::from(len))
///     }
///     fn encode(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
///         let len = u8::try_from(frame.len())
///             .map_err(|_| FrameError::TooLarge { limit: 255, claimed: frame.len() })?;
///         out.push(len);
///         out.extend_from_slice(frame);
///         Ok(())
///     }
/// }
///
/// let mut writer = FrameWriter::new(Vec::new(), ShortFrames);
/// writer.write_frame(b"hi")?;
/// writer.flush()?;
/// assert_eq!(writer.get_ref(), b"\x02hi");
///
/// let mut reader = FrameReader::new(&b"\x02hi\x03"[..], ShortFrames);
/// assert_eq!(reader.read_frame()?, Some(&b"hi"[..]));
/// assert!(matches!(
///     reader.read_frame(),
///     Err(FrameError::Truncated { expected: 4, received: 1 })
/// ));
/// # Ok::<(), FrameError>(())
/// ```
pub trait Codec {
    /// The largest frame this codec reads or writes, in bytes, not counting
    /// its header or delimiter: the `limit` of [`FrameError::TooLarge`].
    fn max_frame_len(&self) -> usize;

    /// The most bytes one frame can take on the wire: the largest frame with
    /// its header and delimiter. The reader's buffer never grows past this
    /// plus [`READ_CHUNK`](super::READ_CHUNK).
    fn max_encoded_len(&self) -> usize;

    /// Looks for one complete frame at the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only the beginning of a frame (or
    /// nothing), `Ok(Some(decoded))` when a whole frame is there, and an
    /// error when the bytes can never become a valid frame.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] when the frame exceeds
    /// [`max_frame_len`](Codec::max_frame_len);
    /// [`FrameError::Malformed`] for a codec's own rules.
    fn decode(&self, buf: &[u8]) -> Result<Option<Decoded>, FrameError>;

    /// [`decode`](Codec::decode) again, on the same bytes as a call that
    /// returned `Ok(None)`, now followed by more: the first `checked` bytes
    /// of `buf` are those. Must answer exactly what `decode(buf)` would.
    ///
    /// The reader calls this after each read that did not complete a frame.
    /// A codec that scans for a delimiter overrides it to resume its scan at
    /// `checked`, so that a frame arriving one byte at a time costs linear,
    /// not quadratic, time. The default calls `decode(buf)`, which is right
    /// for a codec that finds the length in a header.
    fn resume_decode(&self, buf: &[u8], checked: usize) -> Result<Option<Decoded>, FrameError> {
        let _ = checked;
        self.decode(buf)
    }

    /// How many bytes the frame that starts with `partial` needs in all,
    /// header and delimiter included, as far as `partial` tells; at least
    /// `partial.len() + 1`, which is also the default.
    ///
    /// Called with bytes for which [`decode`](Codec::decode) returned
    /// `Ok(None)`. The reader uses it to report
    /// [`FrameError::Truncated`] and to grow its buffer in one step when a
    /// header announces a large frame.
    fn expected_len(&self, partial: &[u8]) -> usize {
        partial.len().saturating_add(1)
    }

    /// Appends `frame`, encoded, to `out`.
    ///
    /// On error nothing is sent: the writer drops whatever was appended.
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] when `frame` exceeds
    /// [`max_frame_len`](Codec::max_frame_len);
    /// [`FrameError::Malformed`] when the codec cannot represent it.
    fn encode(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError>;
}

/// Where [`Codec::decode`] found a frame in the buffer it was given.
///
/// ```
/// use syncnet::frame::{Codec, Decoded, Lines};
///
/// let found = Lines::new(100).decode(b"hello\r\nworld")?;
/// assert_eq!(found, Some(Decoded { frame: 0..5, consumed: 7 }));
/// # Ok::<(), syncnet::frame::FrameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The frame's bytes, as positions in the buffer (without header or
    /// delimiter).
    pub frame: Range<usize>,
    /// How many bytes of the buffer the frame used up, header and delimiter
    /// included: the next frame starts there. At least 1, and at least
    /// `frame.end`.
    pub consumed: usize,
}
