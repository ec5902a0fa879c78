//! Pingpong mode: send a request, read its echo back, compare, repeat.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

use super::IO_TIMEOUT;
use super::options::BenchOptions;
use super::progress::Progress;
use super::requests::Requests;
use super::stats::{Recorder, Stats};
use super::stream::{Failure, read_exact_until};
use super::threads::{THREAD_STACK, start_together};
use super::window::Window;
use crate::Error;

/// When each request is meant to be sent.
enum Schedule {
    /// Closed loop: as soon as the previous one allows.
    Asap,
    /// Open loop: at `first + k * interval`.
    Fixed {
        first: Instant,
        interval: Duration,
        k: u32,
    },
}

impl Schedule {
    /// Connection `index` of `connections` sends `rate / connections`
    /// requests per second; the connections' slots are spread evenly.
    fn new(opts: &BenchOptions, index: usize, start: Instant) -> Schedule {
        if opts.rate == 0 {
            return Schedule::Asap;
        }
        let interval = Duration::from_secs_f64(opts.connections as f64 / opts.rate as f64);
        let phase = interval.mul_f64(index as f64 / opts.connections as f64);
        Schedule::Fixed {
            first: start + phase,
            interval,
            k: 0,
        }
    }

    /// The intended send time of the next request, after waiting for it;
    /// `None` once that time is past the window's end.
    fn next(&mut self, end: Instant) -> Option<Instant> {
        match self {
            Schedule::Asap => Some(Instant::now()).filter(|&now| now < end),
            Schedule::Fixed { first, interval, k } => {
                let at = *first + interval.saturating_mul(*k);
                *k = k.saturating_add(1);
                if at >= end {
                    return None;
                }
                let now = Instant::now();
                if at > now {
                    thread::sleep(at - now);
                }
                Some(at)
            }
        }
    }
}

/// Runs pingpong on the open connections until the window ends.
///
/// Closed loop on Linux: one epoll loop per core the process may run on,
/// each driving its share of the connections. Open loop (`rate > 0`, which
/// needs sub-millisecond pacing), and other systems: one thread per
/// connection.
pub(super) fn run(
    opts: &BenchOptions,
    conns: Vec<(usize, TcpStream)>,
    stats: &Stats,
    progress: &Progress,
) -> Result<(), Error> {
    let requests = Requests::new(opts.effective_size());
    #[cfg(target_os = "linux")]
    if opts.rate == 0 {
        let loops = thread::available_parallelism()
            .map_or(1, usize::from)
            .min(conns.len())
            .max(1);
        let mut groups: Vec<Vec<(usize, TcpStream)>> = (0..loops).map(|_| Vec::new()).collect();
        for (i, conn) in conns.into_iter().enumerate() {
            groups[i % loops].push(conn);
        }
        groups.retain(|group| !group.is_empty());
        return start_together(opts, groups, stats, progress, |group, window| {
            super::event_loop::run(group, window, &requests, opts.pipeline, stats);
        });
    }
    start_together(opts, conns, stats, progress, |(index, stream), window| {
        connection(index, stream, window, opts, &requests, stats);
    })
}

/// Drives one connection on its own thread: one request at a time, or a
/// writer and a reader thread with up to `pipeline` requests in flight.
fn connection(
    index: usize,
    stream: TcpStream,
    window: Window,
    opts: &BenchOptions,
    requests: &Requests,
    stats: &Stats,
) {
    let schedule = Schedule::new(opts, index, window.start);
    if opts.pipeline <= 1 {
        lockstep(index, stream, window, requests, schedule, stats);
    } else {
        pipelined(index, &stream, window, opts, requests, schedule, stats);
    }
}

/// TLS pingpong: the connections are [`Client`](crate::Client)s made one
/// after another (each handshake is verified against `--tls-ca`), then each
/// runs [`lockstep`] on its own thread. A TLS session cannot be shared by
/// the epoll loop's non-blocking sockets, so TLS is always thread per
/// connection, closed or open loop.
pub(super) fn run_tls(
    opts: &BenchOptions,
    stats: &Stats,
    progress: &Progress,
) -> Result<(), Error> {
    let Some(tls) = &opts.tls else {
        return Ok(());
    };
    let requests = Requests::new(opts.effective_size());
    let mut clients = Vec::with_capacity(opts.connections);
    for index in 0..opts.connections {
        match crate::Client::connect_tls(&opts.connect, IO_TIMEOUT, tls) {
            Ok(client) => clients.push((index, client)),
            // Unusable TLS files are the user's mistake, not the server's.
            Err(e @ (Error::Tls { .. } | Error::Config { .. })) => return Err(e),
            Err(e) => stats.connect_error(&e),
        }
    }
    start_together(opts, clients, stats, progress, |(index, client), window| {
        let schedule = Schedule::new(opts, index, window.start);
        lockstep(index, client, window, &requests, schedule, stats);
    })
}

/// Write a request, read its echo, compare; the first error ends the connection.
fn lockstep<S: std::io::Read + Write>(
    index: usize,
    mut stream: S,
    window: Window,
    requests: &Requests,
    mut schedule: Schedule,
    stats: &Stats,
) {
    let mut recorder = Recorder::new(stats, window, requests.size());
    let mut reply = vec![0u8; requests.size()];
    let mut seq = index;
    while let Some(sent) = schedule.next(window.end) {
        let request = requests.get(seq);
        let echoed = stream
            .write_all(request)
            .and_then(|()| read_exact_until(&mut stream, &mut reply, window.hard_end));
        let done = Instant::now();
        if echoed.is_err() || reply != request {
            stats.error();
            return;
        }
        recorder.request(sent, done);
        seq = seq.wrapping_add(1);
    }
}

/// A writer thread sends requests while this thread reads the echoes; a
/// permit channel keeps at most `pipeline` requests in flight.
fn pipelined(
    index: usize,
    stream: &TcpStream,
    window: Window,
    opts: &BenchOptions,
    requests: &Requests,
    mut schedule: Schedule,
    stats: &Stats,
) {
    let failure = Failure::default();
    let (permit_tx, permit_rx) = bounded::<()>(opts.pipeline);
    for _ in 0..opts.pipeline {
        let _ = permit_tx.send(());
    }
    // The intended send time of each request in flight, oldest first.
    let (sent_tx, sent_rx) = bounded::<Instant>(opts.pipeline);
    thread::scope(|scope| {
        let failure = &failure;
        let writer = move || {
            let mut seq = index;
            // Stops when the reader is gone (its permit sender dropped) or the window ends.
            while permit_rx.recv().is_ok() {
                let Some(sent) = schedule.next(window.end) else {
                    break;
                };
                if sent_tx.send(sent).is_err() {
                    break;
                }
                if (&*stream).write_all(requests.get(seq)).is_err() {
                    failure.fail(stats, stream);
                    break;
                }
                seq = seq.wrapping_add(1);
            }
        };
        let spawned = thread::Builder::new()
            .name(format!("bench-{index}-writer"))
            .stack_size(THREAD_STACK)
            .spawn_scoped(scope, writer);
        if spawned.is_err() {
            failure.fail(stats, stream);
            return;
        }
        let mut recorder = Recorder::new(stats, window, requests.size());
        let mut reply = vec![0u8; requests.size()];
        let mut seq = index;
        for sent in sent_rx.iter() {
            let echoed = read_exact_until(stream, &mut reply, window.hard_end);
            let done = Instant::now();
            if echoed.is_err() || reply != requests.get(seq) {
                failure.fail(stats, stream);
                break;
            }
            recorder.request(sent, done);
            seq = seq.wrapping_add(1);
            if permit_tx.send(()).is_err() {
                break;
            }
        }
        // Wakes a writer waiting for a permit.
        drop(permit_tx);
        drop(sent_rx);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_spreads_the_rate_over_connections() {
        let opts = BenchOptions {
            connections: 4,
            rate: 100,
            ..BenchOptions::default()
        };
        let start = Instant::now();
        match Schedule::new(&opts, 2, start) {
            Schedule::Fixed {
                first, interval, ..
            } => {
                assert_eq!(interval, Duration::from_millis(40));
                assert_eq!(first - start, Duration::from_millis(20));
            }
            Schedule::Asap => panic!("rate 100 is an open loop"),
        }
    }

    #[test]
    fn schedule_ends_with_the_window() {
        let opts = BenchOptions {
            connections: 1,
            rate: 1000,
            ..BenchOptions::default()
        };
        let start = Instant::now() - Duration::from_secs(1);
        let mut schedule = Schedule::new(&opts, 0, start);
        // Behind schedule: no waiting, the intended times run on regardless.
        let end = start + Duration::from_millis(10);
        let times: Vec<_> = std::iter::from_fn(|| schedule.next(end)).collect();
        assert_eq!(times.len(), 10);
        assert_eq!(times[9] - times[0], Duration::from_millis(9));
    }
}
