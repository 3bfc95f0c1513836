//! Plumbing shared by the exports: opaque handles and checked arguments.
//!
//! A handle type seen by C is a zero-sized struct (`_private: [u8; 0]`, so C can only hold
//! pointers to it); behind the pointer is a `Box` of the Rust value named by [`BoxHandle`].
//! All handles are Box-owned: made by one `*_open`/`*_new`/`*_begin` export, released by
//! exactly one `*_free` (or consuming) export.

use std::ffi::{CStr, CString, c_char, c_void};

use crate::error::Failure;

/// A C handle type whose pointer is a `Box<Self::Rust>`.
pub(crate) trait BoxHandle {
    /// The Rust value behind the handle.
    type Rust;
}

/// Moves `value` to the heap and hands it to C.
pub(crate) fn into_handle<C: BoxHandle>(value: C::Rust) -> *mut C {
    Box::into_raw(Box::new(value)).cast::<C>()
}

/// Borrows the value behind a handle; `what` names the parameter in the error message.
///
/// # Safety
/// `p` is NULL or came from [`into_handle`] for the same `C` and was not freed since; the
/// value is not mutated concurrently (shared handles hold only thread-safe values).
pub(crate) unsafe fn borrow_handle<'a, C: BoxHandle>(p: *const C, what: &str) -> Result<&'a C::Rust, Failure> {
    // SAFETY: per the contract, a non-NULL `p` points to a live `C::Rust`.
    unsafe { p.cast::<C::Rust>().as_ref() }.ok_or_else(|| Failure::null(what))
}

/// Borrows the value behind a handle mutably.
///
/// # Safety
/// As [`borrow_handle`], and no other reference to the value exists during the call (the
/// handle is documented as not for concurrent use).
pub(crate) unsafe fn borrow_handle_mut<'a, C: BoxHandle>(p: *mut C, what: &str) -> Result<&'a mut C::Rust, Failure> {
    // SAFETY: per the contract, a non-NULL `p` points to a live, unaliased `C::Rust`.
    unsafe { p.cast::<C::Rust>().as_mut() }.ok_or_else(|| Failure::null(what))
}

/// Takes back ownership of the value behind a handle; `None` for NULL.
///
/// # Safety
/// `p` is NULL or came from [`into_handle`] for the same `C` and was not freed since; C
/// must not use it afterwards.
pub(crate) unsafe fn take_handle<C: BoxHandle>(p: *mut C) -> Option<Box<C::Rust>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the contract, `p` was made by `Box::into_raw` of a `C::Rust`.
    Some(unsafe { Box::from_raw(p.cast::<C::Rust>()) })
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the contract.
    let bytes = unsafe { CStr::from_ptr(p) };
    bytes.to_str().map_err(|e| Failure::invalid(format!("{what} is not valid UTF-8: {e}")))
}

/// An optional NUL-terminated UTF-8 string argument: NULL means "the default".
///
/// # Safety
/// As [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { str_arg(p, what) }.map(Some)
}

/// An array argument `(p, n)`; `p` may be NULL when `n` is 0.
///
/// # Safety
/// A non-NULL `p` points to `n` initialized values that live for `'a`.
pub(crate) unsafe fn slice_arg<'a, T>(p: *const T, n: usize, what: &str) -> Result<&'a [T], Failure> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL, `n` valid values per the contract.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// A writable buffer argument `(p, n)`; `p` may be NULL when `n` is 0.
///
/// # Safety
/// A non-NULL `p` is valid for writing `n` values during `'a`, and not aliased.
pub(crate) unsafe fn buf_arg<'a>(p: *mut u8, n: usize, what: &str) -> Result<&'a mut [u8], Failure> {
    if n == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: the caller's buffer is writable; zeroing it first makes every byte
    // initialized, as a `&mut [u8]` requires (C may pass uninitialized memory).
    unsafe {
        std::ptr::write_bytes(p, 0, n);
        Ok(std::slice::from_raw_parts_mut(p, n))
    }
}

/// An output parameter, checked for NULL before any work is done and written only on
/// success (by [`Out::set`]).
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// # Safety
    /// A non-NULL `p` is valid for writing a `T` until the export returns.
    pub(crate) unsafe fn new(p: *mut T, what: &str) -> Result<Out<T>, Failure> {
        if p.is_null() { Err(Failure::null(what)) } else { Ok(Out(p)) }
    }

    /// Writes the value (without reading or dropping the old contents, which C may have
    /// left uninitialized).
    pub(crate) fn set(self, value: T) {
        // SAFETY: checked non-NULL and writable by `Out::new`'s contract.
        unsafe { self.0.write(value) }
    }
}

/// Calls `cb` once per name, as NUL-terminated strings that live during the call.
///
/// # Safety
/// `cb` is safe to call with `userdata` and does not unwind.
pub(crate) unsafe fn call_names(
    cb: unsafe extern "C" fn(*mut c_void, *const c_char, usize),
    userdata: *mut c_void,
    names: &[String],
) -> Result<(), Failure> {
    let names = names
        .iter()
        .map(|n| CString::new(n.as_str()).map_err(|e| Failure::invalid(format!("name with NUL: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    for name in &names {
        // SAFETY: per the contract; `name` outlives the call.
        unsafe { cb(userdata, name.as_ptr(), name.as_bytes().len()) };
    }
    Ok(())
}
