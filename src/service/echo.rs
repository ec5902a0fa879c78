//! The echo service: every byte read is written back, in order.

use std::io::{self, Read, Write};

/// The first buffer, on the worker's stack: enough for request/response
/// traffic. Small on purpose: only the stack pages a thread touches cost
/// memory, and a held idle connection then stays within two pages.
const SMALL_BUFFER: usize = 512;

/// The heap buffers a connection moves through when reads keep filling the
/// one it has: 16 KiB, then 64 KiB, so bulk transfers go in large system
/// calls while small-message connections never pay for them.
const HEAP_BUFFERS: [usize; 2] = [16 * 1024, 64 * 1024];

/// Writes back every byte read from `stream` until end of input.
///
/// Returns `Ok(())` once the peer has closed its sending side and every byte
/// has been written back. Generic over `Read + Write`, so it runs on a
/// [`Conn`](crate::Conn), a `TcpStream` or an in-memory buffer alike:
///
/// ```
/// use std::io::{Cursor, Read, Write};
///
/// /// A stream that reads from one buffer and writes to another.
/// struct Loop { input: Cursor<Vec<u8>>, output: Vec<u8> }
/// impl Read for Loop {
///     fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> { self.input.read(b) }
/// }
/// impl Write for Loop {
///     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.output.write(b) }
///     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// }
///
/// let mut stream = Loop { input: Cursor::new(b"Hello, server!".to_vec()), output: Vec::new() };
/// syncnet::echo(&mut stream)?;
/// assert_eq!(stream.output, b"Hello, server!");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The first read or write error (a timeout, a reset connection).
pub fn echo<S: Read + Write + ?Sized>(stream: &mut S) -> io::Result<()> {
    let mut small = [0u8; SMALL_BUFFER];
    if echo_with(stream, &mut small, true)? == Echoed::AllOfIt {
        return Ok(());
    }
    let mut heap = Vec::new();
    for (i, size) in HEAP_BUFFERS.into_iter().enumerate() {
        heap.resize(size, 0);
        let last = i + 1 == HEAP_BUFFERS.len();
        if echo_with(stream, &mut heap, !last)? == Echoed::AllOfIt {
            break;
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Echoed {
    /// The peer closed its side and everything was written back.
    AllOfIt,
    /// A read filled the buffer: the caller should continue with a larger one.
    BufferFilled,
}

/// The echo loop over one buffer; with `stop_when_full` it returns as soon
/// as a read fills the buffer (after writing that chunk back).
fn echo_with<S: Read + Write + ?Sized>(
    stream: &mut S,
    buf: &mut [u8],
    stop_when_full: bool,
) -> io::Result<Echoed> {
    loop {
        let n = match stream.read(buf) {
            Ok(0) => {
                stream.flush()?;
                return Ok(Echoed::AllOfIt);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
        if stop_when_full && n == buf.len() {
            return Ok(Echoed::BufferFilled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Reads from `input` in chunks of at most `chunk` bytes; collects writes.
    struct Chunked {
        input: Cursor<Vec<u8>>,
        chunk: usize,
        output: Vec<u8>,
        reads: usize,
    }

    impl Read for Chunked {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            let n = buf.len().min(self.chunk);
            self.input.read(&mut buf[..n])
        }
    }

    impl Write for Chunked {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bulk_input_moves_to_the_large_buffer_and_stays_intact() {
        let input: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut stream = Chunked {
            input: Cursor::new(input.clone()),
            chunk: usize::MAX,
            output: Vec::new(),
            reads: 0,
        };
        echo(&mut stream).unwrap();
        assert!(stream.output == input);
        // 1 small read, then 64 KiB reads: far fewer than 1 MB / 4 KiB.
        assert!(stream.reads < 30, "{} reads", stream.reads);
    }

    #[test]
    fn small_messages_stay_on_the_small_buffer() {
        let mut stream = Chunked {
            input: Cursor::new(vec![7u8; 10_000]),
            chunk: 64,
            output: Vec::new(),
            reads: 0,
        };
        echo(&mut stream).unwrap();
        assert_eq!(stream.output, vec![7u8; 10_000]);
    }
}
