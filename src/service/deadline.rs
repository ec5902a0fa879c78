//! The deadline of the request this thread is answering, so that calls made
//! inside a handler (e.g. through a `ClientPool`) can use the time left as
//! their timeout without it being passed down by hand. Thread-per-connection
//! makes a thread-local the natural carrier: a worker answers one request at
//! a time.

use std::cell::Cell;
use std::time::{Duration, Instant};

thread_local! {
    /// The deadline of the request being answered on this thread, if any.
    static CURRENT: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The deadline of the request this thread is answering: `None` outside a
/// [`FramedService`](super::FramedService) handler or without a request
/// timeout.
pub fn current_deadline() -> Option<Instant> {
    CURRENT.with(Cell::get)
}

/// Time left before the current request's deadline (zero once it passed);
/// `None` when there is no deadline (see [`current_deadline`]).
///
/// ```
/// // Outside a handler there is no deadline.
/// assert_eq!(syncnet::service::time_left(), None);
/// ```
pub fn time_left() -> Option<Duration> {
    current_deadline().map(|d| d.saturating_duration_since(Instant::now()))
}

/// Sets the current deadline until the guard is dropped.
pub(super) fn enter(deadline: Option<Instant>) -> Guard {
    CURRENT.with(|c| c.set(deadline));
    Guard
}

/// Clears the current deadline when dropped (also when a handler panics).
pub(super) struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(None));
    }
}
