//! A RESP2 client for the `kv` example's tests: sends requests as they are
//! written, and reads back one whole reply at a time, as its exact bytes.
//! Every read has a timeout.
//!
//! Declare it next to `mod support;` with `#[path = "support/resp_client.rs"] mod resp_client;`.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a read may wait for the server.
const WAIT: Duration = Duration::from_secs(10);

/// A connection to a RESP server.
pub struct Resp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Resp {
    /// Connects to `addr`, with read and write timeouts.
    pub fn connect(addr: SocketAddr) -> Resp {
        let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Resp {
            writer: stream.try_clone().expect("clone the stream"),
            reader: BufReader::new(stream),
        }
    }

    /// The socket, e.g. to read from it directly.
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    /// Sends `bytes` as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
    }

    /// Sends `args` as an array of bulk strings.
    pub fn send_args(&mut self, args: &[&[u8]]) {
        let request = command(args);
        self.send(&request);
    }

    /// Reads one whole reply (an array with all its elements) and returns
    /// its bytes as text (`\r\n` included; bytes that are not UTF-8 are
    /// replaced).
    pub fn reply(&mut self) -> String {
        String::from_utf8_lossy(&self.reply_bytes()).into_owned()
    }

    /// Reads one whole reply and returns its exact bytes.
    pub fn reply_bytes(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.read_one(&mut out);
        out
    }

    /// Sends an inline command (`\r\n` is added) and reads its reply.
    pub fn call(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Sends `args` as an array and reads the reply.
    pub fn call_args(&mut self, args: &[&[u8]]) -> String {
        self.send_args(args);
        self.reply()
    }

    /// Reads everything until the server closes the connection: the last
    /// words before the close. Panics if it does not close in time.
    pub fn until_closed(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        loop {
            let mut buf = [0u8; 4096];
            match self.reader.read(&mut buf) {
                Ok(0) => return rest,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A reset after the last words: what came before counts.
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return rest,
                Err(e) => panic!("expected the server to close, got {e} after {rest:?}"),
            }
        }
    }

    /// One line, `\r\n` included.
    fn line(&mut self, out: &mut Vec<u8>) -> String {
        let start = out.len();
        loop {
            match self.reader.read_until(b'\n', out) {
                Ok(0) => panic!("the server closed the connection; got {out:?}"),
                Ok(_) if out.ends_with(b"\n") => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("reading a reply: {e}; got {out:?}"),
            }
        }
        String::from_utf8_lossy(&out[start..]).into_owned()
    }

    /// One reply, appended to `out`.
    fn read_one(&mut self, out: &mut Vec<u8>) {
        let line = self.line(out);
        let len = || -> i64 {
            line[1..]
                .trim_end()
                .parse()
                .unwrap_or_else(|_| panic!("bad header {line:?}"))
        };
        match line.as_bytes()[0] {
            b'+' | b'-' | b':' => {}
            b'$' if len() >= 0 => {
                let mut data = vec![0u8; usize::try_from(len()).unwrap() + 2];
                self.reader.read_exact(&mut data).expect("a bulk string");
                out.extend_from_slice(&data);
            }
            b'$' => {}
            b'*' => {
                for _ in 0..len().max(0) {
                    self.read_one(out);
                }
            }
            other => panic!("not a RESP reply: {:?} in {line:?}", char::from(other)),
        }
    }
}

/// `args` as a RESP array of bulk strings.
pub fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A bulk string reply's bytes: `$len\r\n...\r\n`.
pub fn bulk(data: &str) -> String {
    format!("${}\r\n{data}\r\n", data.len())
}
