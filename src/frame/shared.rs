//! [`split`] and [`SharedStream`]: a [`FrameReader`] and a [`FrameWriter`]
//! over one stream.

use std::cell::{RefCell, RefMut};
use std::io::{self, Read, Write};
use std::rc::Rc;

use super::codec::Codec;
use super::reader::FrameReader;
use super::writer::FrameWriter;

/// A reader and a writer of `codec`'s frames over the one `stream`.
///
/// A handler gets its connection as `&mut Conn`, which cannot be lent to a
/// reader and a writer at once; `split` lets both use it, so a frame just
/// read (a borrow of the reader) can be written back directly. Both halves
/// stay on the handler's thread. Use [`SharedStream`] to give each half its
/// own codec.
///
/// ```
/// use std::io::Cursor;
/// use syncnet::frame::{self, Lines};
///
/// // Any `Read + Write` works; a handler passes its `&mut Conn`.
/// let mut stream = Cursor::new(b"ping\nping\n".to_vec());
/// let (mut requests, mut replies) = frame::split(&mut stream, Lines::new(64));
/// while let Some(request) = requests.read_frame()? {
///     replies.write_frame(request)?; // echo, without a copy
/// }
/// replies.flush()?;
/// # Ok::<(), syncnet::frame::FrameError>(())
/// ```
pub fn split<S, C>(
    stream: S,
    codec: C,
) -> (
    FrameReader<SharedStream<S>, C>,
    FrameWriter<SharedStream<S>, C>,
)
where
    S: Read + Write,
    C: Codec + Clone,
{
    let shared = SharedStream::new(stream);
    (
        FrameReader::new(shared.clone(), codec.clone()),
        FrameWriter::new(shared, codec),
    )
}

/// One stream used through several handles on one thread, e.g. by a
/// [`FrameReader`] and a [`FrameWriter`]: each `read` or `write` borrows the
/// stream for the length of that call only. Cloning makes another handle to
/// the same stream.
///
/// ```
/// use std::io::Cursor;
/// use syncnet::frame::{FrameReader, FrameWriter, LengthPrefixed, Lines, SharedStream};
///
/// // Requests are length-prefixed, replies are lines.
/// let stream = SharedStream::new(Cursor::new(b"\x00\x00\x00\x02hi".to_vec()));
/// let mut requests = FrameReader::new(stream.clone(), LengthPrefixed::new(1024));
/// let mut replies = FrameWriter::new(stream, Lines::new(1024));
/// let request = requests.read_frame()?;
/// assert_eq!(request, Some(&b"hi"[..]));
/// replies.write_frame(b"OK")?;
/// replies.flush()?;
/// # Ok::<(), syncnet::frame::FrameError>(())
/// ```
#[derive(Debug)]
pub struct SharedStream<S> {
    stream: Rc<RefCell<S>>,
}

impl<S> SharedStream<S> {
    /// The first handle to `stream`; [`clone`](Clone::clone) it for more.
    pub fn new(stream: S) -> SharedStream<S> {
        SharedStream {
            stream: Rc::new(RefCell::new(stream)),
        }
    }

    /// The stream for one call. It is only ever borrowed inside one `read`
    /// or `write`, so this fails only if the stream's own `read` or `write`
    /// reaches back into a handle; an error then, never a panic.
    fn stream(&self) -> io::Result<RefMut<'_, S>> {
        self.stream
            .try_borrow_mut()
            .map_err(|_| io::Error::other("the shared stream is already in use"))
    }
}

impl<S> Clone for SharedStream<S> {
    fn clone(&self) -> SharedStream<S> {
        SharedStream {
            stream: Rc::clone(&self.stream),
        }
    }
}

impl<S: Read> Read for SharedStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream()?.read(buf)
    }
}

impl<S: Write> Write for SharedStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream()?.flush()
    }
}
