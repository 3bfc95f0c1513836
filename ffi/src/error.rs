//! Result codes, the mapping from [`rados_mail::Error`], and the per-thread last error
//! message.

use std::cell::RefCell;
use std::ffi::c_char;

/// The outcome of every fallible export.
///
/// The numbers are part of the ABI: a code keeps its number forever, and a number that was
/// ever used is never given to another meaning (retired codes stay reserved). New codes are
/// added at the end. Callers must treat an unknown code as a permanent failure.
///
/// The message of the last failure on the calling thread is available from
/// [`rm_last_error_message`].
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rm_result {
    /// Success.
    Ok = 0,
    /// A user, mailbox or mail does not exist.
    NotFound = 1,
    /// A mailbox (or other named thing) already exists.
    AlreadyExists = 2,
    /// Concurrent changes kept winning; temporary: retry later.
    Conflict = 3,
    /// Stored data failed its integrity check.
    Corrupted = 4,
    /// A mail or request above a configured limit.
    TooLarge = 5,
    /// Bad input: an invalid name (including invalid UTF-8), unknown flag bits, a malformed
    /// request, a handle used in a state that does not allow the call.
    InvalidInput = 6,
    /// The cluster cannot be reached or did not answer in time; temporary: retry later
    /// (IMAP `[UNAVAILABLE]`, LMTP 4xx).
    Unavailable = 7,
    /// A required pointer argument was NULL.
    NullParameter = 8,
    /// A bug: the library panicked. The call had no effect that can be relied on.
    Panic = 9,
    /// Reading or buffering the caller's data failed (for example the temporary file of an
    /// append could not be written).
    Io = 10,
    /// Any other storage error.
    Store = 11,
    /// A change would give a mailbox more distinct keywords than its limit (the
    /// `max_keywords` setting); nothing of it was applied. Permanent for that change (IMAP
    /// answers it as Dovecot answers a keyword it cannot create).
    KeywordLimit = 12,
    /// The pool was written by a newer rados-mail (its format record has a version, or a
    /// field that matters, this build does not know): permanent, upgrade rados-mail. The
    /// message names the pool, the version found and the versions this build reads.
    UnsupportedFormat = 13,
}

/// True when `result` is a temporary failure (`RM_RESULT_UNAVAILABLE`,
/// `RM_RESULT_CONFLICT`): the caller should answer "try again later".
#[unsafe(no_mangle)]
pub extern "C" fn rm_result_is_temporary(result: rm_result) -> bool {
    matches!(result, rm_result::Unavailable | rm_result::Conflict)
}

/// A static, NUL-terminated name for `result` (like `"RM_RESULT_NOT_FOUND"`); never NULL,
/// never to be freed.
#[unsafe(no_mangle)]
pub extern "C" fn rm_result_name(result: rm_result) -> *const c_char {
    let name: &'static std::ffi::CStr = match result {
        rm_result::Ok => c"RM_RESULT_OK",
        rm_result::NotFound => c"RM_RESULT_NOT_FOUND",
        rm_result::AlreadyExists => c"RM_RESULT_ALREADY_EXISTS",
        rm_result::Conflict => c"RM_RESULT_CONFLICT",
        rm_result::Corrupted => c"RM_RESULT_CORRUPTED",
        rm_result::TooLarge => c"RM_RESULT_TOO_LARGE",
        rm_result::InvalidInput => c"RM_RESULT_INVALID_INPUT",
        rm_result::Unavailable => c"RM_RESULT_UNAVAILABLE",
        rm_result::NullParameter => c"RM_RESULT_NULL_PARAMETER",
        rm_result::Panic => c"RM_RESULT_PANIC",
        rm_result::Io => c"RM_RESULT_IO",
        rm_result::KeywordLimit => c"RM_RESULT_KEYWORD_LIMIT",
        rm_result::UnsupportedFormat => c"RM_RESULT_UNSUPPORTED_FORMAT",
        rm_result::Store => c"RM_RESULT_STORE",
    };
    name.as_ptr()
}

/// Copies the message of the last failed call on the calling thread into `buf` (at most
/// `cap - 1` bytes and a terminating NUL; truncated if longer) and stores the message's full
/// length, without the NUL, in `*out_len` (so `*out_len >= cap` means truncated).
///
/// The message is per thread, like `errno`: every export that returns something other than
/// `RM_RESULT_OK` replaces it, successful calls leave it alone. It is empty when no call on
/// this thread has failed yet. `buf` may be NULL only when `cap` is 0 (to ask for the length).
///
/// Returns `RM_RESULT_OK`, or `RM_RESULT_NULL_PARAMETER` (the message is then left as it
/// was).
///
/// # Safety
/// `buf` must be valid for writing `cap` bytes; `out_len` must be valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_last_error_message(buf: *mut c_char, cap: usize, out_len: *mut usize) -> rm_result {
    crate::panic::ffi_boundary(|| {
        if out_len.is_null() || (buf.is_null() && cap > 0) {
            // Not recorded as the last error: it would overwrite the message asked for.
            return rm_result::NullParameter;
        }
        LAST_ERROR.with_borrow(|message| {
            let bytes = message.as_bytes();
            if cap > 0 {
                let n = bytes.len().min(cap - 1);
                // SAFETY: the caller guarantees `buf` is writable for `cap` bytes and n < cap;
                // a Rust String cannot overlap the caller's buffer.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
                    *buf.add(n) = 0;
                }
            }
            // SAFETY: checked non-NULL above; the caller guarantees it is writable.
            unsafe { out_len.write(bytes.len()) };
        });
        rm_result::Ok
    })
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Replaces the calling thread's last error message.
pub(crate) fn set_last_error(message: String) {
    LAST_ERROR.with_borrow_mut(|m| *m = message);
}

/// The calling thread's last error message (for the Rust tests).
#[cfg(test)]
pub(crate) fn last_error() -> String {
    LAST_ERROR.with_borrow(|m| m.clone())
}

/// A failed call on its way out: the code to return and the message to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: rm_result,
    pub message: String,
}

impl Failure {
    pub(crate) fn new(code: rm_result, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }

    /// A NULL pointer passed for the parameter `what`.
    pub(crate) fn null(what: &str) -> Failure {
        Failure::new(rm_result::NullParameter, format!("{what} is NULL"))
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(rm_result::InvalidInput, message)
    }

    /// Records the message as the thread's last error and returns the code.
    pub(crate) fn record(self) -> rm_result {
        set_last_error(self.message);
        self.code
    }
}

/// The stable code of each error of the Rust API.
pub(crate) fn result_of(e: &rados_mail::Error) -> rm_result {
    use rados_mail::Error as E;
    match e {
        E::NotFound(_) => rm_result::NotFound,
        E::AlreadyExists(_) => rm_result::AlreadyExists,
        E::Conflict(_) => rm_result::Conflict,
        E::Corrupted { .. } => rm_result::Corrupted,
        E::TooLarge(_) => rm_result::TooLarge,
        E::InvalidInput(_) => rm_result::InvalidInput,
        E::Unavailable(_) => rm_result::Unavailable,
        E::Input(_) => rm_result::Io,
        E::Store(_) => rm_result::Store,
        E::KeywordLimit { .. } => rm_result::KeywordLimit,
        E::UnsupportedFormat { .. } => rm_result::UnsupportedFormat,
        // `Error` is non-exhaustive: a variant added later is a storage error until it gets
        // a code of its own (added at the end of `rm_result`).
        _ => rm_result::Store,
    }
}

impl From<rados_mail::Error> for Failure {
    fn from(e: rados_mail::Error) -> Failure {
        Failure { code: result_of(&e), message: e.to_string() }
    }
}

/// An I/O error of the FFI layer itself (temporary files), or one from a body stream that
/// carries a [`rados_mail::Error`] inside.
impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rados_mail::Error>()) {
            return Failure::from(inner.clone());
        }
        Failure::new(rm_result::Io, e.to_string())
    }
}
