//! [`FrameError`]: what can go wrong while reading or writing frames.

use std::fmt;
use std::io;

/// What went wrong while reading or writing a frame.
///
/// A handler that returns `std::io::Result` can use `?` on it: the
/// `From<FrameError> for io::Error` conversion gives the peer's mistakes the kind
/// [`InvalidData`](io::ErrorKind::InvalidData) (too large, malformed) or
/// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof) (truncated), and hands
/// an [`Io`](FrameError::Io) error back unchanged, so a read timeout is
/// still a timeout.
///
/// ```
/// use std::io;
/// use syncnet::frame::FrameError;
///
/// let error = FrameError::TooLarge { limit: 1024, claimed: 5000 };
/// assert_eq!(error.to_string(), "frame too large: 5000 bytes, the limit is 1024");
///
/// let as_io: io::Error = error.into();
/// assert_eq!(as_io.kind(), io::ErrorKind::InvalidData);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame is larger than the codec's limit. Nothing was allocated for it.
    ///
    /// When reading, `claimed` is what the peer announced: the length field
    /// of a length-prefixed frame, or for a line the bytes seen so far
    /// without a newline. When writing, it is the length of the frame given.
    TooLarge {
        /// The largest frame allowed, in bytes.
        limit: usize,
        /// The size announced or seen, in bytes; more than `limit`.
        claimed: usize,
    },
    /// The input ended in the middle of a frame.
    Truncated {
        /// How many bytes the frame needed, header and delimiter included;
        /// for a line, whose length is only known at its newline, the bytes
        /// received plus one.
        expected: usize,
        /// How many bytes of it had arrived.
        received: usize,
    },
    /// The bytes do not form a valid frame, for a reason the codec names.
    ///
    /// [`Lines`](super::Lines) refuses to *write* a line containing `\n` or
    /// ending with `\r`; your own codecs can use this for their rules.
    Malformed(String),
    /// Reading from or writing to the inner stream failed, e.g. a read
    /// timed out. Frames already buffered are kept: calling again continues
    /// where the failed call stopped.
    Io(io::Error),
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { limit, claimed } => {
                write!(f, "frame too large: {claimed} bytes, the limit is {limit}")
            }
            FrameError::Truncated { expected, received } => write!(
                f,
                "input ended inside a frame: {received} of {expected} bytes received"
            ),
            FrameError::Malformed(why) => write!(f, "malformed frame: {why}"),
            // Transparent: the I/O error's own message, and (below) its own
            // source, so nothing is printed twice.
            FrameError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FrameError::Io(e) => e.source(),
            _ => None,
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(error: io::Error) -> FrameError {
        FrameError::Io(error)
    }
}

impl From<FrameError> for io::Error {
    /// [`FrameError::Io`] gives back its `io::Error` unchanged;
    /// [`Truncated`](FrameError::Truncated) becomes
    /// [`UnexpectedEof`](io::ErrorKind::UnexpectedEof); the others become
    /// [`InvalidData`](io::ErrorKind::InvalidData), with the `FrameError`
    /// inside (see [`io::Error::get_ref`]).
    fn from(error: FrameError) -> io::Error {
        let kind = match error {
            FrameError::Io(e) => return e,
            FrameError::Truncated { .. } => io::ErrorKind::UnexpectedEof,
            FrameError::TooLarge { .. } | FrameError::Malformed(_) => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, error)
    }
}
