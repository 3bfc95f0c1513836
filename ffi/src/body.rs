//! `rm_body`: streaming one mail body out, checksum verified at its end.

use std::io::Read;

use rados_mail::BodyReader;

use crate::error::{Failure, rm_result};
use crate::ffi::{BoxHandle, Out, borrow_handle, borrow_handle_mut, buf_arg, into_handle, take_handle};
use crate::mailbox::rm_mailbox;
use crate::panic::{ffi_call, ffi_void};

/// A mail body being read: [`rm_body_open`], [`rm_body_read`] until it reports 0 bytes,
/// [`rm_body_free`]. Small bodies come from the process's cache; large ones are read from
/// RADOS a chunk at a time.
///
/// Not thread-safe: use one `rm_body` from one thread at a time. It does not borrow the
/// `rm_mailbox` it came from.
pub struct rm_body {
    _private: [u8; 0],
}

impl BoxHandle for rm_body {
    type Rust = Body;
}

/// What an `rm_body` holds.
pub(crate) struct Body {
    reader: BodyReader,
    failed: bool,
}

impl Body {
    /// A body handle over `reader`.
    pub(crate) fn new(reader: BodyReader) -> Body {
        Body { reader, failed: false }
    }
}

/// Opens the body of `uid` for reading, in `*out`; free it with [`rm_body_free`].
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NOT_FOUND` (no such UID in the mailbox's view),
/// `RM_RESULT_NULL_PARAMETER`, or another code. `*out` is written only on success.
///
/// # Safety
/// `mailbox` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_body_open(mailbox: *const rm_mailbox, uid: u32, out: *mut *mut rm_body) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let reader = mb.mailbox.open_body(uid)?;
        out.set(into_handle(Body { reader, failed: false }));
        Ok(())
    })
}

/// The body's total length in bytes (its physical size), in `*out_size`.
///
/// # Safety
/// `body` is a live handle; `out_size` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_body_size(body: *const rm_body, out_size: *mut u64) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let body = unsafe { borrow_handle(body, "body") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out_size, "out_size") }?;
        out.set(body.reader.len());
        Ok(())
    })
}

/// Reads the next bytes of the body into `buf` (at most `cap`, `cap` > 0) and their number
/// into `*out_len`; 0 means the end was reached and the whole body matched its checksum.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_CORRUPTED` (the checksum did not match: discard what
/// was read), `RM_RESULT_UNAVAILABLE`, `RM_RESULT_NULL_PARAMETER`,
/// `RM_RESULT_INVALID_INPUT` (`cap` 0, or a read failed before: only [`rm_body_free`] is
/// left to do), or another code.
///
/// # Safety
/// `body` is a live handle not used concurrently; `buf` is writable for `cap` bytes;
/// `out_len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_body_read(body: *mut rm_body, buf: *mut u8, cap: usize, out_len: *mut usize) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let body = unsafe { borrow_handle_mut(body, "body") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out_len, "out_len") }?;
        // SAFETY: forwarded contract of this export.
        let buf = unsafe { buf_arg(buf, cap, "buf") }?;
        if buf.is_empty() {
            return Err(Failure::invalid("cap is 0"));
        }
        if body.failed {
            return Err(Failure::invalid("an earlier read of this body failed"));
        }
        let n = loop {
            match body.reader.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    body.failed = true;
                    return Err(Failure::from(e));
                }
            }
        };
        out.set(n);
        Ok(())
    })
}

/// Frees a body handle; NULL is a no-op.
///
/// # Safety
/// `body` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_body_free(body: *mut rm_body) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(body) }));
}
