//! The echo service: every byte read is written back, in order.

use std::io::{self, Read, Write};

/// Size of the echo buffer, on the worker's stack: large enough for bulk
/// transfers to move in few system calls, small next to the default stack.
const ECHO_BUFFER: usize = 32 * 1024;

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
    let mut buf = [0u8; ECHO_BUFFER];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return stream.flush(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
    }
}
