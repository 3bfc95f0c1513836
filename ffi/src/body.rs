//! `rm_body`: streaming one mail body out, seekable, checksum verified at its end when read
//! in order; [`rm_mailbox_prefetch`]: many bodies read ahead into the cache at once.

use std::io::{Read, Seek, SeekFrom};

use rados_mail::BodyReader;

use crate::error::{Failure, rm_result};
use crate::ffi::{BoxHandle, Out, borrow_handle, borrow_handle_mut, buf_arg, into_handle, slice_arg, take_handle};
use crate::mailbox::rm_mailbox;
use crate::panic::{ffi_call, ffi_void};

/// A mail body being read: [`rm_body_open`], [`rm_body_read`] until it reports 0 bytes
/// (with [`rm_body_seek`] to move about), [`rm_body_free`]. Small bodies come from the
/// process's cache; large ones are read from RADOS a chunk at a time.
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

/// The body's total length in bytes as stored, in `*out_size` (for a mail stored
/// transformed by a mail plugin, not its physical size: see [`rm_record`](crate::record::rm_record)).
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
/// into `*out_len`; 0 means the end was reached. The checksum is checked when the body has
/// been read in order from byte 0 to its end (seeks in between are fine as long as every
/// byte was eventually read in order): a 0 then means the whole body matched it. After
/// seeks that skipped bytes, a 0 vouches only for the end having been reached.
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

/// Moves the body's read position to byte `offset` (0 ≤ `offset` ≤ its size; the size
/// means "at the end": the next [`rm_body_read`] reports 0 bytes). Costs nothing: a seek
/// within the bytes read last reads nothing, and elsewhere the next read starts at
/// `offset` (one RADOS read), never again from byte 0.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, or `RM_RESULT_INVALID_INPUT`
/// (`offset` beyond the size, or a read of this body failed before: only
/// [`rm_body_free`] is left to do); the position is then unchanged.
///
/// # Safety
/// `body` is a live handle not used concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_body_seek(body: *mut rm_body, offset: u64) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let body = unsafe { borrow_handle_mut(body, "body") }?;
        if body.failed {
            return Err(Failure::invalid("an earlier read of this body failed"));
        }
        if offset > body.reader.len() {
            return Err(Failure::invalid(format!("offset {offset} beyond the body's {} bytes", body.reader.len())));
        }
        body.reader.seek(SeekFrom::Start(offset))?;
        Ok(())
    })
}

/// Reads the bodies of the `n` UIDs at `uids` (NULL allowed when `n` is 0) into the
/// process's body cache, several RADOS reads at once (the store setting `read_in_flight`,
/// default 16), so that opening and reading them next ([`rm_body_open`],
/// [`rm_mailbox_read`](crate::mailbox::rm_mailbox_read)) costs no RADOS operation. A
/// FETCH of a UID range calls it with the next UIDs before reading the first.
///
/// Costs one read per body object (one for most mails) and nothing for bodies already
/// cached. UIDs not in the mailbox's view, bodies larger than the cache's largest item
/// (`cache_max_item`: they are streamed when read) and everything when the memory cache is
/// off are skipped, as are bodies beyond half the memory cache in one call.
///
/// Returns `RM_RESULT_OK`; `RM_RESULT_CORRUPTED` when a body failed its checksum or its
/// object is missing although a record points to it (the message names the object; the
/// other bodies were cached all the same; a body that went because its mail was expunged
/// meanwhile is no error); `RM_RESULT_UNAVAILABLE` (the prefetch stopped);
/// `RM_RESULT_NULL_PARAMETER`; or another code. Nothing is handed out: a failed prefetch
/// only means the reads that follow go to RADOS (and report the same failure).
///
/// # Safety
/// `mailbox` is a live handle; a non-NULL `uids` points to `n` readable `uint32_t`,
/// borrowed for the call only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_prefetch(mailbox: *const rm_mailbox, uids: *const u32, n: usize) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let uids = unsafe { slice_arg(uids, n, "uids") }?;
        mb.mailbox.prefetch(uids)?;
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
