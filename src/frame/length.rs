//! [`LengthPrefixed`]: a 4-byte big-endian length, then the frame.

use super::codec::{Codec, Decoded};
use super::error::FrameError;

/// The size of the length field, in bytes.
const HEADER_LEN: usize = 4;

/// Length-prefixed frames: a 4-byte big-endian unsigned length, then that
/// many bytes.
///
/// This is the wire format of tokio-util's `LengthDelimitedCodec` with its
/// default settings (which allow 8 MiB frames), so peers using it interoperate.
///
/// A length field above `max_len` is [`FrameError::TooLarge`] as soon as
/// its 4 bytes have arrived: nothing is buffered or allocated for the body.
///
/// ```
/// use syncnet::frame::{FrameError, FrameReader, LengthPrefixed};
///
/// let input = &b"\x00\x00\x00\x05hello\x00\x00\x00\x00"[..];
/// let mut reader = FrameReader::new(input, LengthPrefixed::new(1024));
/// assert_eq!(reader.read_frame()?, Some(&b"hello"[..]));
/// assert_eq!(reader.read_frame()?, Some(&b""[..])); // an empty frame
/// assert_eq!(reader.read_frame()?, None);
///
/// // A peer claiming 1 GiB against a 1 KiB limit is stopped at the header.
/// let mut reader = FrameReader::new(&b"\x40\x00\x00\x00"[..], LengthPrefixed::new(1024));
/// assert!(matches!(
///     reader.read_frame(),
///     Err(FrameError::TooLarge { limit: 1024, claimed: 0x4000_0000 })
/// ));
/// # Ok::<(), FrameError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthPrefixed {
    max_len: usize,
}

impl LengthPrefixed {
    /// The largest length a 4-byte field can announce: `u32::MAX`.
    const WIRE_MAX: usize = u32::MAX as usize;

    /// Frames of at most `max_len` bytes, header not counted. A `max_len`
    /// above `u32::MAX`, which the length field cannot express, is lowered
    /// to it.
    pub const fn new(max_len: usize) -> LengthPrefixed {
        let max_len = if max_len > Self::WIRE_MAX {
            Self::WIRE_MAX
        } else {
            max_len
        };
        LengthPrefixed { max_len }
    }

    /// The largest frame allowed, in bytes, header not counted.
    pub const fn max_len(&self) -> usize {
        self.max_len
    }

    /// The length field at the start of `buf`, once all 4 bytes are there.
    fn claimed_len(buf: &[u8]) -> Option<usize> {
        let header: [u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        // A u32 fits in usize on every platform std supports for networking;
        // saturate rather than assume.
        Some(usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX))
    }
}

impl Codec for LengthPrefixed {
    fn max_frame_len(&self) -> usize {
        self.max_len
    }

    /// `max_len + 4`: the largest frame and its length field.
    fn max_encoded_len(&self) -> usize {
        self.max_len.saturating_add(HEADER_LEN)
    }

    fn decode(&self, buf: &[u8]) -> Result<Option<Decoded>, FrameError> {
        let Some(len) = Self::claimed_len(buf) else {
            return Ok(None);
        };
        if len > self.max_len {
            return Err(FrameError::TooLarge {
                limit: self.max_len,
                claimed: len,
            });
        }
        let end = len.saturating_add(HEADER_LEN);
        if buf.len() < end {
            return Ok(None);
        }
        Ok(Some(Decoded {
            frame: HEADER_LEN..end,
            consumed: end,
        }))
    }

    fn expected_len(&self, partial: &[u8]) -> usize {
        match Self::claimed_len(partial) {
            Some(len) => len.saturating_add(HEADER_LEN),
            None => HEADER_LEN,
        }
    }

    fn encode(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        let len = match u32::try_from(frame.len()) {
            Ok(len) if frame.len() <= self.max_len => len,
            _ => {
                return Err(FrameError::TooLarge {
                    limit: self.max_len,
                    claimed: frame.len(),
                });
            }
        };
        out.reserve(HEADER_LEN + frame.len());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(frame);
        Ok(())
    }
}
