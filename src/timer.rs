//! `FifoTimer`: runs an action a fixed delay after each scheduled item.
//!
//! Every item of one timer waits the same delay, so deadlines come due in the
//! order items were scheduled: one thread and one channel are enough, with no
//! heap of deadlines and no polling. The server uses one for the queue
//! timeout and one for the connection lifetime.

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select, unbounded};

use crate::Error;

/// A thread that calls `fire(item)` once `delay` has passed since `schedule(item)`.
/// Dropping the timer stops the thread; items still waiting are dropped unfired.
pub(crate) struct FifoTimer<T> {
    delay: Duration,
    items: Sender<(Instant, T)>,
    /// Never sent on: dropping it disconnects the thread's `stop` receiver.
    _stop: Sender<()>,
}

impl<T: Send + 'static> FifoTimer<T> {
    /// Starts the timer thread.
    ///
    /// # Errors
    /// [`Error::Thread`] when the thread cannot be started.
    pub(crate) fn start(
        name: &str,
        delay: Duration,
        fire: impl Fn(T) + Send + 'static,
    ) -> Result<FifoTimer<T>, Error> {
        let (items, items_rx) = unbounded::<(Instant, T)>();
        let (stop, stop_rx) = crossbeam_channel::bounded::<()>(0);
        thread::Builder::new()
            .name(name.to_string())
            .stack_size(64 * 1024)
            .spawn(move || run(items_rx, stop_rx, fire))
            .map_err(|source| Error::Thread {
                what: "timer",
                source,
            })?;
        Ok(FifoTimer {
            delay,
            items,
            _stop: stop,
        })
    }

    /// Schedules `item` to fire after the timer's delay.
    pub(crate) fn schedule(&self, item: T) {
        // The thread only goes away with `self`, so sending cannot fail here.
        let _ = self.items.send((Instant::now() + self.delay, item));
    }
}

fn run<T>(items: Receiver<(Instant, T)>, stop: Receiver<()>, fire: impl Fn(T)) {
    loop {
        let (deadline, item) = select! {
            recv(items) -> msg => match msg {
                Ok(next) => next,
                Err(_) => return,
            },
            recv(stop) -> _ => return,
        };
        match stop.recv_deadline(deadline) {
            Err(RecvTimeoutError::Timeout) => fire(item),
            // The owner dropped the timer: stop without firing.
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_after_the_delay() {
        let (tx, rx) = unbounded();
        let timer = FifoTimer::start("test-timer", Duration::from_millis(50), move |i: u32| {
            let _ = tx.send((i, Instant::now()));
        })
        .unwrap();
        let start = Instant::now();
        timer.schedule(1);
        timer.schedule(2);
        let (first, at) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(first, 1);
        assert!(at - start >= Duration::from_millis(50));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().0, 2);
    }

    #[test]
    fn dropping_the_timer_cancels_pending_items() {
        let (tx, rx) = unbounded();
        let timer = FifoTimer::start("test-timer", Duration::from_millis(100), move |i: u32| {
            let _ = tx.send(i);
        })
        .unwrap();
        timer.schedule(1);
        drop(timer);
        // The thread exits and drops `tx`: the channel disconnects unfired.
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_err());
    }
}
