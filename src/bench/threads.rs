//! Connection threads that start together: [`start_together`].

use std::thread;

use crossbeam_channel::bounded;

use super::options::BenchOptions;
use super::progress::Progress;
use super::stats::Stats;
use super::window::Window;
use crate::Error;

/// Stack of each connection thread: the buffers live on the heap.
pub(super) const THREAD_STACK: usize = 256 * 1024;

/// Starts one thread per item of `work`, fixes the window once all exist,
/// and lets them all go at once with it; shows progress until the window
/// ends and returns when every thread has finished.
pub(super) fn start_together<T: Send>(
    opts: &BenchOptions,
    work: Vec<T>,
    stats: &Stats,
    progress: &Progress,
    body: impl Fn(T, Window) + Sync,
) -> Result<(), Error> {
    if work.is_empty() {
        return Ok(());
    }
    let n = work.len();
    thread::scope(|scope| {
        // Dropped on return: a thread still waiting then exits without running.
        let (go_tx, go_rx) = bounded::<Window>(n);
        for (i, item) in work.into_iter().enumerate() {
            let (go_rx, body) = (go_rx.clone(), &body);
            thread::Builder::new()
                .name(format!("bench-{i}"))
                .stack_size(THREAD_STACK)
                .spawn_scoped(scope, move || {
                    if let Ok(window) = go_rx.recv() {
                        body(item, window);
                    }
                })
                .map_err(|source| Error::Thread {
                    what: "bench connection",
                    source,
                })?;
        }
        let window = Window::starting_now(opts);
        for _ in 0..n {
            let _ = go_tx.send(window);
        }
        progress.until(window, stats, opts);
        Ok(())
    })
}
