//! The one way xdpstat runs aya and aya-obj code on an object it did not
//! build: aya-obj 0.3 panics on some malformed ELF and BTF (slicing past
//! the end, unwrapping a missing string) instead of returning an error.
//! [`bpfobj`](crate::obj) checks the input first so that aya-obj never
//! sees what is known to panic it; [`aya`] turns whatever is left into an
//! error.
//!
//! The panic hook is process-wide, so it is replaced once, by a hook that
//! stays quiet on threads inside [`aya`] and defers to the previous hook
//! everywhere else: swapping hooks around each call would race between
//! threads and could lose the default hook for good.

use std::{
    cell::{Cell, RefCell},
    panic::{self, AssertUnwindSafe},
    sync::Once,
};

use thiserror::Error;

/// aya or aya-obj panicked on an object.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("aya-obj failed on it ({message}, at {location})")]
pub struct AyaPanic {
    /// The panic's message.
    pub message: String,
    /// Where in aya or aya-obj, shortened to the crate's path.
    pub location: String,
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST: RefCell<Option<AyaPanic>> = const { RefCell::new(None) };
    static CAUGHT: RefCell<Vec<AyaPanic>> = const { RefCell::new(Vec::new()) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                return previous(info);
            }
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            let location = info.location().map_or_else(String::new, |l| {
                // `/root/.cargo/registry/src/index…/aya-obj-0.3.0/src/x.rs`
                // becomes `aya-obj-0.3.0/src/x.rs`.
                let file = l.file();
                let short = file
                    .rfind("/aya")
                    .map_or(file, |at| &file[at + 1..])
                    .to_owned();
                format!("{short}:{}", l.line())
            });
            LAST.with(|last| *last.borrow_mut() = Some(AyaPanic { message, location }));
        }));
    });
}

/// Runs `f`, which calls into aya or aya-obj with an untrusted object, and
/// turns a panic into an [`AyaPanic`], without the panic message on
/// stderr.
///
/// # Errors
///
/// [`AyaPanic`] when `f` panicked.
pub fn aya<T>(f: impl FnOnce() -> T) -> Result<T, AyaPanic> {
    install_hook();
    let was_quiet = QUIET.with(|q| q.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was_quiet));
    result.map_err(|_| {
        let panic = LAST
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| AyaPanic {
                message: "unknown panic".to_owned(),
                location: String::new(),
            });
        CAUGHT.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() < MAX_KEPT {
                c.push(panic.clone());
            }
        });
        panic
    })
}

/// How many caught panics [`take_caught`] keeps, when nobody takes them.
const MAX_KEPT: usize = 64;

/// The panics [`aya`] has caught on this thread since the last call: the
/// fuzz test reports them, and fails on one located in xdpstat's own code
/// (a bug that the guard would hide).
#[doc(hidden)]
pub fn take_caught() -> Vec<AyaPanic> {
    CAUGHT.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        let err = aya(|| -> u32 { panic!("slice index {} out of range", 7) }).unwrap_err();
        assert_eq!(err.message, "slice index 7 out of range");
        assert!(
            err.location
                .starts_with("xdpstat-analysis/src/obj/guard.rs:"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "aya-obj failed on it (slice index 7 out of range, at {})",
                err.location
            )
        );
        assert_eq!(aya(|| 5), Ok(5));
    }

    #[test]
    fn nested_calls_report_the_inner_panic() {
        let inner = aya(|| aya(|| panic!("inner")).unwrap_err().message);
        assert_eq!(inner.as_deref(), Ok("inner"));
        let outer = aya(|| {
            let _ = aya(|| panic!("inner"));
            panic!("outer")
        });
        assert_eq!(outer.unwrap_err().message, "outer");
    }
}
