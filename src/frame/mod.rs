//! # Frames: whole messages over a byte stream, with limits
//!
//! TCP carries bytes, not messages: one `read` may return half a request, or
//! three. A *framing* says where each message — a *frame* — ends. This
//! module reads and writes frames over any [`Read`](std::io::Read) /
//! [`Write`](std::io::Write) (a [`Conn`](crate::Conn), a `TcpStream`, a
//! `&[u8]` in a test) with plain blocking calls, and enforces a size limit
//! that no peer can talk its way past.
//!
//! | your protocol sends | use |
//! | --- | --- |
//! | text commands, one per line (`\n` or `\r\n`) | [`Lines`] |
//! | binary messages, each after its 4-byte big-endian length | [`LengthPrefixed`] |
//! | something else | your own [`Codec`] |
//!
//! ## A line protocol, end to end
//!
//! A handler that answers `PING` with `PONG` and `ECHO <text>` with
//! `<text>`, and a client that sends it two requests at once:
//!
//! ```
//! use std::time::Duration;
//! use syncnet::frame::{self, Lines};
//! use syncnet::{Client, Conn, Server};
//!
//! fn serve(conn: &mut Conn) -> std::io::Result<()> {
//!     // Lines of at most 4 KiB; a longer one ends the connection.
//!     let (mut requests, mut replies) = frame::split(conn, Lines::new(4096));
//!     while let Some(line) = requests.read_frame()? {
//!         if line == b"PING" {
//!             replies.write_frame(b"PONG")?;
//!         } else if let Some(text) = line.strip_prefix(b"ECHO ") {
//!             replies.write_frame(text)?;
//!         } else {
//!             replies.write_frame(b"ERR unknown command")?;
//!         }
//!         // Another request already received? Answer it before flushing,
//!         // so a burst of requests gets one `write` of replies.
//!         if !requests.has_buffered_frame() {
//!             replies.flush()?;
//!         }
//!     }
//!     Ok(()) // the client closed its side between two requests
//! }
//!
//! let server = Server::builder().listen("127.0.0.1:0").admin(None).build()?;
//! let handle = server.spawn(serve)?;
//!
//! // The client side uses the same types.
//! let client = Client::connect(handle.local_addr(), Duration::from_secs(5))?;
//! let (mut replies, mut requests) = frame::split(client, Lines::new(4096));
//! requests.write_frame(b"PING")?;
//! requests.write_frame(b"ECHO hello")?;
//! requests.flush()?; // both requests leave in one `write`
//! assert_eq!(replies.read_frame()?, Some(&b"PONG"[..]));
//! assert_eq!(replies.read_frame()?, Some(&b"hello"[..]));
//!
//! drop((replies, requests));
//! handle.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every `?` in `serve` turns a [`FrameError`] into an `io::Error`: a line
//! over the limit closes the connection as invalid data, a read timeout
//! stays a timeout.
//!
//! This loop — read a frame, answer it, flush when nothing more is buffered —
//! is what [`FramedService`](crate::service::FramedService) runs for a
//! [`Protocol`](crate::service::Protocol), adding the request metrics, a
//! request-rate limit, deadlines and the protocol's own words for refusals
//! (the crate root's "Your own protocol" shows one). Write it by hand when a
//! request is not one frame in, one frame out.
//!
//! ## The pieces
//!
//! - [`FrameReader`] owns one buffer and returns each frame as a slice of it,
//!   valid until the next [`read_frame`](FrameReader::read_frame):
//!   `Ok(None)` means the input ended cleanly between two frames.
//! - [`FrameWriter`] encodes frames into one buffer and writes it out on
//!   [`flush`](FrameWriter::flush) (or at [`FLUSH_THRESHOLD`] bytes).
//!   Nothing is sent before that: **flush** after each burst.
//! - [`split`] puts a reader and a writer on one stream, as the handler
//!   above does with its `&mut Conn` (which cannot be lent to both at
//!   once). Over a `TcpStream` you can also use `FrameReader::new(&stream, …)`
//!   and `FrameWriter::new(&stream, …)` directly.
//! - [`Codec`] describes a wire format; [`Lines`] and [`LengthPrefixed`]
//!   are the two that come with syncnet.
//!
//! ## Limits: what a peer can make you allocate
//!
//! Every codec has a maximum frame length. A length announced in a header is
//! checked *before* anything is buffered for it, and a line is cut off once
//! it passes the limit without a newline: the reader's buffer never exceeds
//! [`FrameReader::buffer_limit`] — the largest encoded frame plus
//! [`READ_CHUNK`] — whatever the peer sends. Writing a frame over the limit
//! is refused as well.
//!
//! After the first frames, the buffers are reused: reading and writing
//! frames allocate nothing.
//!
//! ## Errors
//!
//! [`FrameError`] says what happened: [`TooLarge`](FrameError::TooLarge)
//! (with the limit and the claimed size), [`Truncated`](FrameError::Truncated)
//! (the input ended inside a frame), [`Malformed`](FrameError::Malformed)
//! (a codec's own rule) or [`Io`](FrameError::Io). An I/O error such as a
//! read timeout loses nothing: call again and reading continues where it
//! stopped. A framing error is final: the stream can no longer be trusted.
//!
//! ## Your own codec
//!
//! A [`Codec`] only looks at bytes: [`decode`](Codec::decode) finds the
//! first frame in a buffer (or says it needs more), [`encode`](Codec::encode)
//! appends one. The reader and writer do the buffering, I/O and limits. See
//! [`Codec`] for a complete example.

mod codec;
mod error;
mod length;
mod lines;
mod reader;
mod shared;
mod writer;

#[cfg(test)]
mod tests;

pub use codec::{Codec, Decoded};
pub use error::FrameError;
pub use length::LengthPrefixed;
pub use lines::Lines;
pub use reader::{FrameReader, READ_CHUNK};
pub use shared::{SharedStream, split};
pub use writer::{FLUSH_THRESHOLD, FrameWriter};
