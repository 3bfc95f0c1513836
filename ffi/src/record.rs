//! `rm_record`: the index record of one mail, its GUID and keywords.

use std::ffi::c_void;

use rados_mail::MailRecord;

use crate::error::{Failure, rm_result};
use crate::ffi::call_names;
use crate::ffi::{Out, borrow_handle};
use crate::mailbox::rm_mailbox;
use crate::panic::ffi_call;
use crate::user::rm_name_callback;

/// The index record of one mail ([`rm_mailbox_record`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct rm_record {
    /// IMAP UID.
    pub uid: u32,
    /// System flags (`RM_FLAG_*`).
    pub flags: u32,
    /// Modification sequence of the last change.
    pub modseq: u64,
    /// Physical size of the mail: its bytes as stored, or for a mail stored transformed
    /// by a mail plugin ([`rm_append_transformed`](crate::append::rm_append_transformed))
    /// the plain mail's (the body, [`rm_body_size`](crate::body::rm_body_size), then
    /// differs).
    pub psize: u64,
    /// Virtual size: bytes with CRLF line endings (IMAP RFC822.SIZE), of the plain mail.
    pub vsize: u64,
    /// Length of the header, with the empty line that ends it, in the plain mail: for a
    /// transformed mail not an offset in the stored body.
    pub hdr_len: u64,
    /// Received date (IMAP INTERNALDATE), seconds since the Unix epoch.
    pub received: i64,
    /// The mail's GUID, 16 bytes: the one given when it was saved
    /// ([`rm_append_set_guid`](crate::append::rm_append_set_guid)), else its body object's;
    /// copies share it.
    pub guid: [u8; 16],
}

/// The record of `uid` in the mailbox's view, in `*out`; `RM_RESULT_NOT_FOUND` if the view
/// has no such UID.
///
/// # Safety
/// `mailbox` is a live handle; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_record(mailbox: *const rm_mailbox, uid: u32, out: *mut rm_record) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let r: MailRecord =
            mb.mailbox.record(uid)?.ok_or_else(|| Failure::new(rm_result::NotFound, format!("UID {uid} not found")))?;
        out.set(record_out(&r));
        Ok(())
    })
}

/// Converts a record of the Rust API to its C form.
pub(crate) fn record_out(r: &MailRecord) -> rm_record {
    rm_record {
        uid: r.uid,
        flags: r.flags,
        modseq: r.modseq,
        psize: r.mail_psize(),
        vsize: r.vsize,
        hdr_len: r.hdr_len,
        received: r.received,
        guid: r.guid().try_into().unwrap_or_default(),
    }
}

/// The mailbox's GUID (16 bytes; it names the mailbox's objects and survives renames) in
/// `out[0..16]`.
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `mailbox` is a live handle; `out` is writable for 16 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_guid(mailbox: *const rm_mailbox, out: *mut [u8; 16]) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        out.set(mb.mailbox.info().guid.0);
        Ok(())
    })
}

/// Calls `cb(userdata, keyword, len)` for each keyword of `uid` in the mailbox's view,
/// sorted (as of the last sync or change); `keyword` is NUL-terminated and valid during
/// the call only. The whole list is read first: `cb` is not called on failure.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NOT_FOUND` (no such UID), `RM_RESULT_NULL_PARAMETER`
/// (`mailbox` or `cb`), or another code.
///
/// # Safety
/// `mailbox` is a live handle; `cb` is safe to call with `userdata` and does not unwind.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_keywords(
    mailbox: *const rm_mailbox,
    uid: u32,
    cb: rm_name_callback,
    userdata: *mut c_void,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        let r: MailRecord =
            mb.mailbox.record(uid)?.ok_or_else(|| Failure::new(rm_result::NotFound, format!("UID {uid} not found")))?;
        // SAFETY: the caller vouches for `cb` and `userdata`.
        unsafe { call_names(cb, userdata, &r.keywords) }
    })
}
