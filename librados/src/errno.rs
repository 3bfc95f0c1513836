//! Mapping librados return codes onto `objstore::Error`, and small FFI helpers.

use std::ffi::CString;

use objstore::{Error, Result};

/// Turns a librados return code (negative errno on failure) into a `Result`, for calls that
/// are not about one object.
pub(crate) fn from_rc(rc: i32, context: &str) -> Result<()> {
    if rc >= 0 {
        return Ok(());
    }
    Err(match -rc {
        libc::ETIMEDOUT | libc::ENOTCONN | libc::ESHUTDOWN | libc::ECONNREFUSED => {
            Error::Unavailable(format!("{context}: {}", std::io::Error::from_raw_os_error(-rc)))
        }
        errno => Error::Rados { errno, context: context.to_string() },
    })
}

/// What a compound operation guarded on, to tell which errnos mean a failed guard.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct GuardKinds {
    pub version: bool,
    pub compare: bool,
}

/// Maps the return code of an operation on object `oid`.
pub(crate) fn op_result(rc: i32, oid: &str, guards: GuardKinds, what: &str) -> Result<()> {
    if rc >= 0 {
        return Ok(());
    }
    let conflict = |reason: &str| Error::Conflict { object: oid.into(), reason: reason.into() };
    Err(match -rc {
        libc::ENOENT => Error::NotFound { object: oid.into() },
        libc::EEXIST => Error::AlreadyExists { object: oid.into() },
        libc::ECANCELED if guards.compare => conflict("omap or xattr comparison failed"),
        libc::ERANGE | libc::EOVERFLOW if guards.version => conflict("object version differs"),
        libc::EFBIG | libc::E2BIG => Error::TooLarge(format!("{what} on {oid:?}")),
        libc::EOPNOTSUPP => Error::Unsupported { object: oid.into(), op: what.into() },
        _ => match from_rc(rc, &format!("{what} on {oid:?}")) {
            Err(e) => e,
            Ok(()) => unreachable!("rc < 0"),
        },
    })
}

/// A `CString` from a name already validated to hold no NUL (reported if it does).
pub(crate) fn cstring(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidInput(format!("{what} {s:?} contains a NUL byte")))
}

/// A byte slice from a librados (pointer, length) pair; NULL or zero length is empty.
///
/// # Safety
/// `p` must point to `n` readable bytes that stay valid for `'a`, or be NULL.
pub(crate) unsafe fn slice<'a>(p: *const u8, n: usize) -> &'a [u8] {
    if p.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(p, n) }
    }
}
