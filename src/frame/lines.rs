//! [`Lines`]: newline-delimited frames.

use super::codec::{Codec, Decoded};
use super::error::FrameError;

/// Newline-delimited frames: each frame is a line ended by `\n`.
///
/// Reading, a `\r` just before the `\n` is removed too, so both `\n` and
/// `\r\n` line endings are accepted; the frame never includes them. A line
/// longer than `max_len` bytes (not counting its line ending) is
/// [`FrameError::TooLarge`], reported as soon as more than `max_len` bytes of
/// it (a last `\r` aside) have arrived without a newline: the reader never
/// buffers a longer line.
///
/// Writing appends `\n`. A frame that contains `\n`, or ends with `\r`
/// (which the reader would remove), is [`FrameError::Malformed`].
///
/// Input that ends after a line without its newline is
/// [`FrameError::Truncated`], not a last frame.
///
/// ```
/// use syncnet::frame::{FrameReader, Lines};
///
/// let input = &b"PING\r\nECHO hi\n"[..];
/// let mut reader = FrameReader::new(input, Lines::new(1024));
/// assert_eq!(reader.read_frame()?, Some(&b"PING"[..]));
/// assert_eq!(reader.read_frame()?, Some(&b"ECHO hi"[..]));
/// assert_eq!(reader.read_frame()?, None); // the input ended cleanly
/// # Ok::<(), syncnet::frame::FrameError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lines {
    max_len: usize,
}

impl Lines {
    /// Lines of at most `max_len` bytes, line ending not counted.
    pub const fn new(max_len: usize) -> Lines {
        Lines { max_len }
    }

    /// The longest line allowed, in bytes, line ending not counted.
    pub const fn max_len(&self) -> usize {
        self.max_len
    }

    /// The first line of `buf`, searching for its newline from `from` on:
    /// the bytes before `from` are known to hold none.
    fn find_line(&self, buf: &[u8], from: usize) -> Result<Option<Decoded>, FrameError> {
        // Never look further than the longest line with its `\r\n` could
        // reach: a peer that sends no newline costs one bounded scan.
        let window = &buf[..buf.len().min(self.max_encoded_len())];
        let from = from.min(window.len());
        let too_large = |claimed| FrameError::TooLarge {
            limit: self.max_len,
            claimed,
        };
        let newline = window[from..].iter().position(|&byte| byte == b'\n');
        match newline.map(|at| from + at) {
            Some(newline) => {
                let line = &window[..newline];
                let len = line.strip_suffix(b"\r").unwrap_or(line).len();
                if len > self.max_len {
                    return Err(too_large(len));
                }
                Ok(Some(Decoded {
                    frame: 0..len,
                    consumed: newline + 1,
                }))
            }
            None => {
                // A trailing `\r` may still be the start of `\r\n`.
                let content = window.strip_suffix(b"\r").unwrap_or(window).len();
                if content > self.max_len {
                    return Err(too_large(window.len()));
                }
                Ok(None)
            }
        }
    }
}

impl Codec for Lines {
    fn max_frame_len(&self) -> usize {
        self.max_len
    }

    /// `max_len + 2`: the longest line and `\r\n`.
    fn max_encoded_len(&self) -> usize {
        self.max_len.saturating_add(2)
    }

    fn decode(&self, buf: &[u8]) -> Result<Option<Decoded>, FrameError> {
        self.find_line(buf, 0)
    }

    /// Looks for the newline only in the bytes after `checked`.
    fn resume_decode(&self, buf: &[u8], checked: usize) -> Result<Option<Decoded>, FrameError> {
        self.find_line(buf, checked)
    }

    fn encode(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
        if frame.len() > self.max_len {
            return Err(FrameError::TooLarge {
                limit: self.max_len,
                claimed: frame.len(),
            });
        }
        if frame.contains(&b'\n') {
            return Err(FrameError::Malformed(
                "a line to write contains '\\n'".into(),
            ));
        }
        if frame.ends_with(b"\r") {
            return Err(FrameError::Malformed(
                "a line to write ends with '\\r', which the reader would remove".into(),
            ));
        }
        out.reserve(frame.len() + 1);
        out.extend_from_slice(frame);
        out.push(b'\n');
        Ok(())
    }
}
