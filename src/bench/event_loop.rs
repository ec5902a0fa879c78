//! Closed-loop pingpong on an epoll loop: one thread drives many connections.
//!
//! A thread per connection costs a context switch per request on the
//! client, which on a small machine halves the load it can generate; one
//! loop thread per core handles every ready connection per wake-up instead.
//! Per request in steady state: one `read` (the echo), one `write` (the next
//! request), and a share of one `epoll_wait`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::requests::Requests;
use super::stats::{Recorder, Stats};
use super::window::Window;

/// Bytes taken per `read`: many echoes at once when they have piled up.
const READ_BUF: usize = 64 * 1024;

/// One connection's state in the loop.
struct Conn {
    stream: TcpStream,
    /// Number of the next request to issue.
    next_seq: usize,
    /// When each request in flight was issued, oldest first; the oldest is
    /// number `next_seq - in_flight.len()`.
    in_flight: VecDeque<Instant>,
    /// Bytes of the oldest request's echo already checked.
    read_pos: usize,
    /// Issued bytes not yet written (the socket was full).
    out: Vec<u8>,
    out_pos: usize,
    /// Registered for writability too (while `out` is not empty).
    want_write: bool,
}

impl Conn {
    /// Queues request `next_seq` for sending, issued at `now`.
    fn issue(&mut self, requests: &Requests, now: Instant) {
        self.out.extend_from_slice(requests.get(self.next_seq));
        self.in_flight.push_back(now);
        self.next_seq = self.next_seq.wrapping_add(1);
    }

    /// Writes what it can of `out`; `Ok(true)` when all of it went out.
    fn flush(&mut self) -> io::Result<bool> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.out_pos = 0;
        Ok(true)
    }

    /// Checks `bytes` (the next part of the echoed stream) against the
    /// requests in flight; returns how many requests they completed.
    fn check(&mut self, requests: &Requests, mut bytes: &[u8]) -> io::Result<usize> {
        let mut completed = 0;
        while !bytes.is_empty() {
            if completed == self.in_flight.len() {
                return Err(io::Error::other("more bytes echoed than sent"));
            }
            let oldest = self
                .next_seq
                .wrapping_sub(self.in_flight.len())
                .wrapping_add(completed);
            let expected = &requests.get(oldest)[self.read_pos..];
            let n = expected.len().min(bytes.len());
            if bytes[..n] != expected[..n] {
                return Err(io::Error::other("echo mismatch"));
            }
            bytes = &bytes[n..];
            self.read_pos += n;
            if self.read_pos == requests.size() {
                self.read_pos = 0;
                completed += 1;
            }
        }
        Ok(completed)
    }
}

/// Drives `conns` until the window ends and every echo in flight is back
/// (or `hard_end` passes): `pipeline` requests in flight on each, a new one
/// issued as each echo completes.
pub(super) fn run(
    conns: Vec<(usize, TcpStream)>,
    window: Window,
    requests: &Requests,
    pipeline: usize,
    stats: &Stats,
) {
    let Ok(epoll) = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) else {
        for _ in &conns {
            stats.error();
        }
        return;
    };
    let mut driver = Driver {
        epoll,
        requests,
        window,
        recorder: Recorder::new(stats, window, requests.size()),
        buf: vec![0u8; READ_BUF],
    };
    let mut slots: Vec<Option<Conn>> = Vec::with_capacity(conns.len());
    let start = Instant::now();
    for (index, stream) in conns {
        let slot = slots.len() as u64;
        let conn = driver.start(stream, index, slot, pipeline, start);
        if conn.is_err() {
            stats.error();
        }
        slots.push(conn.ok());
    }
    let mut open = slots.iter().flatten().count();
    let mut events = vec![EpollEvent::empty(); slots.len().clamp(1, 1024)];
    while open > 0 {
        let now = Instant::now();
        if now >= window.hard_end {
            break;
        }
        let wait = (window.hard_end - now).as_millis().saturating_add(1);
        let timeout = EpollTimeout::try_from(wait.min(1000)).unwrap_or(EpollTimeout::MAX);
        let ready = match driver.epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        };
        for event in &events[..ready] {
            let slot = event.data();
            let Some(entry) = slots.get_mut(slot as usize) else {
                continue;
            };
            let Some(conn) = entry.as_mut() else {
                continue;
            };
            match driver.serve(conn, slot, event.events()) {
                Ok(true) => {}
                // The window is over and nothing is in flight: done, cleanly.
                Ok(false) => {
                    *entry = None;
                    open -= 1;
                }
                Err(_) => {
                    stats.error();
                    *entry = None;
                    open -= 1;
                }
            }
        }
    }
    // Whatever is still open had echoes missing at the hard end.
    for _ in slots.iter().flatten() {
        stats.error();
    }
}

/// What one loop thread shares between its connections.
struct Driver<'a> {
    epoll: Epoll,
    requests: &'a Requests,
    window: Window,
    recorder: Recorder<'a>,
    buf: Vec<u8>,
}

impl Driver<'_> {
    /// Registers a connection and sends its first `pipeline` requests.
    fn start(
        &mut self,
        stream: TcpStream,
        index: usize,
        slot: u64,
        pipeline: usize,
        now: Instant,
    ) -> io::Result<Conn> {
        stream.set_nonblocking(true)?;
        self.epoll
            .add(&stream, EpollEvent::new(EpollFlags::EPOLLIN, slot))?;
        let mut conn = Conn {
            stream,
            next_seq: index,
            in_flight: VecDeque::with_capacity(pipeline),
            read_pos: 0,
            out: Vec::with_capacity(pipeline * self.requests.size()),
            out_pos: 0,
            want_write: false,
        };
        for _ in 0..pipeline {
            conn.issue(self.requests, now);
        }
        self.send(&mut conn, slot)?;
        Ok(conn)
    }

    /// Handles one readiness event; `Ok(false)` when the connection is finished.
    fn serve(&mut self, conn: &mut Conn, slot: u64, flags: EpollFlags) -> io::Result<bool> {
        if flags.intersects(EpollFlags::EPOLLIN | EpollFlags::EPOLLERR | EpollFlags::EPOLLHUP) {
            // One read per event: a short one has drained the socket, and a
            // full one leaves the rest for the next (level-triggered) event.
            let n = match conn.stream.read(&mut self.buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    0
                }
                Err(e) => return Err(e),
            };
            let done = Instant::now();
            let completed = conn.check(self.requests, &self.buf[..n])?;
            for _ in 0..completed {
                if let Some(sent) = conn.in_flight.pop_front() {
                    self.recorder.request(sent, done);
                }
                if done < self.window.end {
                    conn.issue(self.requests, done);
                }
            }
        }
        self.send(conn, slot)?;
        Ok(!conn.in_flight.is_empty())
    }

    /// Writes the queued requests; asks for writability while some are left.
    fn send(&self, conn: &mut Conn, slot: u64) -> io::Result<()> {
        let all_out = conn.flush()?;
        if all_out == conn.want_write {
            conn.want_write = !all_out;
            let flags = if all_out {
                EpollFlags::EPOLLIN
            } else {
                EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT
            };
            self.epoll
                .modify(&conn.stream, &mut EpollEvent::new(flags, slot))?;
        }
        Ok(())
    }
}
