//! What the allocation tests share: a counting global allocator and an
//! in-memory stream. Each test binary that counts declares the allocator
//! itself (a global allocator belongs to one binary):
//!
//! ```ignore
//! #[path = "support/allocations.rs"]
//! mod allocations;
//! #[global_allocator]
//! static ALLOCATOR: allocations::Counting = allocations::Counting;
//! ```
#![allow(dead_code)] // each test binary uses a different subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Read, Write};

thread_local! {
    // Per thread, so tests running in parallel do not count each other.
    // Const-initialized and without destructor: using them never allocates.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

/// The system allocator, counting this thread's allocations and the bytes
/// they asked for (a `realloc` counts as one, of its new size).
pub struct Counting;

fn count(bytes: usize) {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    let _ = BYTES.try_with(|n| n.set(n.get() + bytes));
}

// `unsafe` is needed here, in test binaries only (the crate itself forbids
// it): implementing `GlobalAlloc` is an unsafe trait.
// SAFETY: every call is passed unchanged to `System`, which upholds the
// contract; counting touches only the thread-locals above.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` and returns its result with the allocations it made on this
/// thread and the bytes they asked for.
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let (count_before, bytes_before) = (ALLOCATIONS.get(), BYTES.get());
    let result = f();
    (
        result,
        ALLOCATIONS.get() - count_before,
        BYTES.get() - bytes_before,
    )
}

/// Reads `input` at most `chunk` bytes at a time (so every burst is the
/// same size); counts and drops what is written.
pub struct Wire<'a> {
    pub input: &'a [u8],
    pub chunk: usize,
    pub written: usize,
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Ok(n)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
