//! Panic containment: a panicking handler ends its connection, never its worker.
//!
//! [`catch`] runs a handler under `catch_unwind`. The panic hook installed by
//! [`install_hook`] stays silent for panics inside a handler (the worker logs
//! them through `log`, so JSON logs stay JSON) and keeps the previous hook for
//! every other thread of the program.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// True while this thread runs a handler under [`catch`].
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
    /// Where the last handler panic on this thread happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// A caught handler panic.
#[derive(Debug)]
pub(crate) struct CaughtPanic {
    /// The panic message (`panic!("...")`'s text).
    pub message: String,
    /// `file:line:column`, when known.
    pub location: Option<String>,
}

/// Installs the panic hook once per process.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_HANDLER.with(Cell::get) {
                let location = info.location().map(ToString::to_string);
                LOCATION.with(|l| *l.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into [`CaughtPanic`].
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, CaughtPanic> {
    IN_HANDLER.with(|h| h.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    IN_HANDLER.with(|h| h.set(false));
    result.map_err(|payload| CaughtPanic {
        message: message_of(payload.as_ref()),
        location: LOCATION.with(|l| l.borrow_mut().take()),
    })
}

fn message_of(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_message_and_location() {
        install_hook();
        let caught = catch(|| panic!("bad input {}", 42)).unwrap_err();
        assert_eq!(caught.message, "bad input 42");
        assert!(caught.location.unwrap().contains("panics.rs"));
        assert_eq!(catch(|| 5).unwrap(), 5);
    }
}
