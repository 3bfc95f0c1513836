//! The panic boundary: no Rust panic unwinds into C.
//!
//! Every export runs its body inside [`ffi_boundary`] (or [`ffi_call`], which adds the
//! error plumbing), a plain function taking a closure, so rustfmt and clippy see the code.
//! A panic becomes `RM_RESULT_PANIC` with the panic message as the thread's last error.
//! (The library must be built with `panic = "unwind"`, the default; with `panic = "abort"`
//! a panic aborts the process instead.)

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Failure, rm_result, set_last_error};

/// Runs `f`, turning a panic into `RM_RESULT_PANIC`.
///
/// `AssertUnwindSafe` is sound here in the sense that matters to C: after a panic the
/// caller gets an error code and the handle stays allocated; the state a panicking call
/// may have left half-changed is Rust-internal (a poisoned mutex reports later calls as
/// failures rather than acting on torn data).
///
/// On its way out it delivers the log events other threads queued meanwhile
/// ([`crate::log`]), if this is the log handler's thread.
pub(crate) fn ffi_boundary(f: impl FnOnce() -> rm_result) -> rm_result {
    let run = || {
        let result = f();
        crate::log::deliver_queued();
        result
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(result) => result,
        Err(payload) => {
            set_last_error(format!("panic in rados-mail: {}", panic_message(payload.as_ref())));
            rm_result::Panic
        }
    }
}

/// Runs `f` inside [`ffi_boundary`]; an `Err` is recorded as the thread's last error and
/// its code returned.
pub(crate) fn ffi_call(f: impl FnOnce() -> Result<(), Failure>) -> rm_result {
    ffi_boundary(|| match f() {
        Ok(()) => rm_result::Ok,
        Err(failure) => failure.record(),
    })
}

/// For exports that return nothing (`_free`): runs `f`, swallowing a panic (its message
/// becomes the thread's last error).
pub(crate) fn ffi_void(f: impl FnOnce()) {
    let _ = ffi_boundary(|| {
        f();
        rm_result::Ok
    });
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}
