//! The bounded worker pool: a crossbeam queue and at most `workers` threads.
//!
//! The accept thread hands each admitted connection to [`Pool::dispatch`].
//! A connection is *in flight* from dispatch until its worker is done with
//! it; when `workers + queue` are in flight, the next one is closed at once
//! (reason `overload`). Workers start lazily, one per connection that finds
//! no idle worker, up to the limit, so an idle server costs a few threads.
//!
//! The pool knows nothing about handlers: it calls [`Service::serve`] on a
//! worker thread and [`Service::reject`] for connections it turns away.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, unbounded};

use crate::Error;
use crate::conn::ConnShared;
use crate::lifecycle::Lifecycle;
use crate::limits::IpTicket;
use crate::metrics::{Metrics, RejectReason};
use crate::timer::FifoTimer;

/// An accepted connection on its way to a worker.
#[derive(Debug)]
pub(crate) struct Waiting {
    /// The socket and its counters, allocated on the accept thread (so a
    /// worker's first connection needs no allocation: fewer stack pages).
    pub conn: Arc<ConnShared>,
    pub peer: SocketAddr,
    /// When it was put in the queue.
    pub since: Instant,
    /// Its place in the per-IP count, released when the connection ends.
    pub ticket: Option<IpTicket>,
}

/// What the pool runs: the server side of a connection.
pub(crate) trait Service: Send + Sync + 'static {
    /// Serves one connection on a worker thread; must not panic. Returns
    /// the socket still open: the pool closes it once it counts the worker
    /// free again, so a client that sees the close finds the slot free.
    fn serve(&self, conn: Waiting) -> Option<Arc<ConnShared>>;
    /// Closes a connection that will not be served, counting and logging it.
    fn reject(&self, conn: Waiting, reason: RejectReason);
}

/// A queued connection. One that had to wait for a worker sits in a shared
/// slot, so the queue-timeout timer can take it out and close it in place.
enum Job {
    Ready(Waiting),
    Timed(Arc<Mutex<Option<Waiting>>>),
}

impl Job {
    /// Takes the connection; `None` when the queue timer already closed it.
    fn claim(self) -> Option<Waiting> {
        match self {
            Job::Ready(w) => Some(w),
            Job::Timed(slot) => slot.lock().unwrap_or_else(|p| p.into_inner()).take(),
        }
    }
}

/// The part of the pool its workers share.
pub(crate) struct PoolShared {
    service: Arc<dyn Service>,
    metrics: Arc<Metrics>,
    jobs: Receiver<Job>,
    workers: usize,
    queue: usize,
    queue_timeout: Duration,
    stack_size: usize,
    /// Connections dispatched and not yet finished (queued + being served).
    in_flight: AtomicUsize,
    /// Worker threads alive.
    live: AtomicUsize,
    /// The server's phase; notified when a worker exits, so shutdown can
    /// wait for the last one.
    lifecycle: Arc<Lifecycle>,
}

/// The accept thread's end of the pool. Dropping it closes the queue: the
/// workers finish what they hold and exit.
pub(crate) struct Pool {
    shared: Arc<PoolShared>,
    jobs: Sender<Job>,
    queue_timer: Option<FifoTimer<Arc<Mutex<Option<Waiting>>>>>,
}

/// Settings of a pool (from [`ServerConfig`](crate::ServerConfig)).
pub(crate) struct PoolConfig {
    pub workers: usize,
    pub queue: usize,
    pub queue_timeout: Duration,
    pub stack_size: usize,
}

impl Pool {
    /// Creates the pool; no worker starts until the first connection.
    ///
    /// # Errors
    /// [`Error::Thread`] when the queue-timeout timer cannot start.
    pub(crate) fn new(
        config: PoolConfig,
        service: Arc<dyn Service>,
        metrics: Arc<Metrics>,
        lifecycle: Arc<Lifecycle>,
    ) -> Result<Pool, Error> {
        // Unbounded, so a send never blocks the accept thread and nothing is
        // allocated in proportion to the limits up front (the channel grows in
        // small blocks as connections wait); admission is decided by
        // `in_flight`, which never lets more than `workers + queue` in.
        let (jobs, jobs_rx) = unbounded();
        let shared = Arc::new(PoolShared {
            service,
            metrics,
            jobs: jobs_rx,
            workers: config.workers,
            queue: config.queue,
            queue_timeout: config.queue_timeout,
            stack_size: config.stack_size,
            in_flight: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            lifecycle,
        });
        let queue_timer = if config.queue_timeout.is_zero() {
            None
        } else {
            let pool = Arc::clone(&shared);
            Some(FifoTimer::start(
                "syncnet-queue-timer",
                config.queue_timeout,
                move |slot: Arc<Mutex<Option<Waiting>>>| {
                    let taken = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
                    if let Some(waiting) = taken {
                        pool.metrics.queued.dec();
                        pool.finish_rejected(waiting, RejectReason::Overload);
                    }
                },
            )?)
        };
        Ok(Pool {
            shared,
            jobs,
            queue_timer,
        })
    }

    /// The workers' side, for shutdown.
    pub(crate) fn shared(&self) -> &Arc<PoolShared> {
        &self.shared
    }

    /// Hands an accepted connection to a worker, queues it, or closes it
    /// (reason `overload`) when `workers + queue` connections are in flight.
    pub(crate) fn dispatch(&self, waiting: Waiting) {
        let pool = &self.shared;
        let in_flight = pool.in_flight.fetch_add(1, SeqCst) + 1;
        if in_flight > pool.workers + pool.queue {
            pool.finish_rejected(waiting, RejectReason::Overload);
            return;
        }
        let live = pool.live.load(SeqCst);
        let start_worker = in_flight > live && live < pool.workers;
        let workers_for_it = live + usize::from(start_worker);
        // More in flight than workers: this one waits, so arm its queue timeout.
        let job = match &self.queue_timer {
            Some(timer) if in_flight > workers_for_it => {
                let slot = Arc::new(Mutex::new(Some(waiting)));
                timer.schedule(Arc::clone(&slot));
                Job::Timed(slot)
            }
            _ => Job::Ready(waiting),
        };
        pool.metrics.queued.inc();
        if let Err(TrySendError::Full(job) | TrySendError::Disconnected(job)) =
            self.jobs.try_send(job)
        {
            if let Some(waiting) = job.claim() {
                pool.metrics.queued.dec();
                pool.finish_rejected(waiting, RejectReason::Overload);
            }
            return;
        }
        // Queue first, then start the worker: it finds its connection waiting
        // and never blocks (nor allocates) before serving it.
        if start_worker && let Err(e) = self.spawn_worker() {
            log::error!(target: "syncnet::pool", error:% = e; "cannot start a worker thread");
            // One connection fewer can be served: close one waiting (overload).
            if let Ok(job) = pool.jobs.try_recv()
                && let Some(waiting) = job.claim()
            {
                pool.metrics.queued.dec();
                pool.finish_rejected(waiting, RejectReason::Overload);
            }
        }
    }

    fn spawn_worker(&self) -> std::io::Result<()> {
        let pool = Arc::clone(&self.shared);
        let n = pool.live.fetch_add(1, SeqCst);
        let spawned = thread::Builder::new()
            .name(format!("syncnet-worker-{n}"))
            .stack_size(pool.stack_size)
            .spawn(move || worker_loop(pool));
        if spawned.is_err() {
            self.shared.live.fetch_sub(1, SeqCst);
        }
        spawned.map(drop)
    }
}

/// Decrements the live count when a worker thread ends, however it ends.
struct LiveGuard(Arc<PoolShared>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, SeqCst);
        self.0.lifecycle.notify();
    }
}

fn worker_loop(pool: Arc<PoolShared>) {
    let _live = LiveGuard(Arc::clone(&pool));
    // Ends when the accept thread dropped its sender and the queue is empty.
    while let Ok(job) = pool.jobs.recv() {
        let Some(waiting) = job.claim() else {
            continue; // the queue timer closed it already
        };
        pool.metrics.queued.dec();
        if !pool.queue_timeout.is_zero() && waiting.since.elapsed() >= pool.queue_timeout {
            pool.finish_rejected(waiting, RejectReason::Overload);
            continue;
        }
        let socket = pool.service.serve(waiting);
        pool.in_flight.fetch_sub(1, SeqCst);
        drop(socket);
    }
}

impl PoolShared {
    /// Rejects a dispatched connection and frees its place.
    fn finish_rejected(&self, waiting: Waiting, reason: RejectReason) {
        self.service.reject(waiting, reason);
        self.in_flight.fetch_sub(1, SeqCst);
    }

    /// Closes every connection still waiting in the queue (reason `shutdown`).
    pub(crate) fn reject_queued(&self) {
        while let Ok(job) = self.jobs.try_recv() {
            if let Some(waiting) = job.claim() {
                self.metrics.queued.dec();
                self.finish_rejected(waiting, RejectReason::Shutdown);
            }
        }
    }

    /// Waits until every worker thread has exited or `deadline` passes.
    /// Returns `true` when they all exited.
    pub(crate) fn wait_workers(&self, deadline: Instant) -> bool {
        self.lifecycle
            .wait_for(Some(deadline), || self.live.load(SeqCst) == 0)
    }

    /// Worker threads alive now.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live.load(SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use std::net::{TcpListener, TcpStream};

    /// A service that holds each connection until told to let it go.
    struct Holding {
        served: Sender<u64>,
        release: Receiver<()>,
        rejected: Sender<(u64, RejectReason)>,
    }

    impl Service for Holding {
        fn serve(&self, conn: Waiting) -> Option<Arc<ConnShared>> {
            let _ = self.served.send(conn.conn.id);
            let _ = self.release.recv_timeout(Duration::from_secs(10));
            None
        }
        fn reject(&self, conn: Waiting, reason: RejectReason) {
            let _ = self.rejected.send((conn.conn.id, reason));
        }
    }

    fn waiting(listener: &TcpListener, id: u64) -> (Waiting, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        let w = Waiting {
            conn: Arc::new(ConnShared::new(id, stream)),
            peer,
            since: Instant::now(),
            ticket: None,
        };
        (w, client)
    }

    #[test]
    fn queue_full_rejects_and_workers_start_lazily() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (served_tx, served) = bounded(8);
        let (release_tx, release) = bounded(8);
        let (rejected_tx, rejected) = bounded(8);
        let service = Arc::new(Holding {
            served: served_tx,
            release,
            rejected: rejected_tx,
        });
        let metrics = Arc::new(Metrics::new(2));
        let cfg = PoolConfig {
            workers: 2,
            queue: 1,
            queue_timeout: Duration::ZERO,
            stack_size: 128 * 1024,
        };
        let pool = Pool::new(cfg, service, metrics, Arc::new(Lifecycle::default())).unwrap();
        assert_eq!(
            pool.shared().live(),
            0,
            "no worker before the first connection"
        );
        let mut clients = Vec::new();
        for id in 1..=4 {
            let (w, c) = waiting(&listener, id);
            clients.push(c);
            pool.dispatch(w);
        }
        let t = Duration::from_secs(5);
        let mut first_two = [
            served.recv_timeout(t).unwrap(),
            served.recv_timeout(t).unwrap(),
        ];
        first_two.sort();
        assert_eq!(first_two, [1, 2]);
        assert_eq!(
            rejected.recv_timeout(t).unwrap(),
            (4, RejectReason::Overload)
        );
        assert_eq!(pool.shared().live(), 2, "never more workers than the limit");
        release_tx.send(()).unwrap();
        assert_eq!(
            served.recv_timeout(t).unwrap(),
            3,
            "the queued one is served next"
        );
        for _ in 0..2 {
            release_tx.send(()).unwrap();
        }
        let shared = Arc::clone(pool.shared());
        drop(pool);
        assert!(
            shared.wait_workers(Instant::now() + t),
            "workers exit once the queue closes"
        );
    }
}
