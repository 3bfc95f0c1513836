//! `rm_changes`: what changed in a mailbox since a modseq (IMAP CONDSTORE/QRESYNC), as an
//! iterator handle: the records added or changed, then (independently) the UIDs expunged.

use std::ffi::c_void;
use std::vec;

use rados_mail::MailRecord;

use crate::error::{Failure, rm_result};
use crate::ffi::call_names;
use crate::ffi::{BoxHandle, Out, borrow_handle, borrow_handle_mut, into_handle, take_handle};
use crate::mailbox::rm_mailbox;
use crate::panic::{ffi_call, ffi_void};
use crate::record::{record_out, rm_record};
use crate::user::rm_name_callback;

/// A snapshot of the changes of one mailbox since a modseq ([`rm_changes_open`]).
///
/// Not thread-safe: one thread at a time (the `next` calls advance it). It holds a copy of
/// the changes, so it does not borrow the `rm_mailbox` it came from and does not see later
/// changes; free it with [`rm_changes_free`].
pub struct rm_changes {
    _private: [u8; 0],
}

impl BoxHandle for rm_changes {
    type Rust = ChangesHandle;
}

/// What an `rm_changes` holds: the snapshot and the two cursors.
pub(crate) struct ChangesHandle {
    mailbox: rm_changes_header,
    changed: vec::IntoIter<MailRecord>,
    /// The keywords of the record `next_changed` returned last.
    last_keywords: Vec<String>,
    expunged: vec::IntoIter<u32>,
}

/// Reads what changed in `mailbox` since `modseq` and returns it in `*out` as a new handle
/// (free it with [`rm_changes_free`]).
///
/// The handle holds: the mailbox's HIGHESTMODSEQ at the time of the call
/// ([`rm_changes_highestmodseq`]); the current records of the mails added or changed with a
/// modseq above `modseq`, ascending by UID ([`rm_changes_next_changed`]); and the UIDs
/// expunged since `modseq`, ascending ([`rm_changes_next_expunged`]). `modseq` 0 means
/// "since the beginning": every mail present is reported as changed. With `modseq` equal to
/// the current HIGHESTMODSEQ both lists are empty.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, a temporary code, or another code.
/// `*out` is written only on success.
///
/// # Safety
/// `mailbox` is a live handle; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_changes_open(
    mailbox: *const rm_mailbox,
    modseq: u64,
    out: *mut *mut rm_changes,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let c = mb.mailbox.changes_since(modseq)?;
        out.set(into_handle(ChangesHandle {
            mailbox: rm_changes_header {
                highestmodseq: c.highestmodseq,
                uidvalidity: c.uidvalidity,
                uidnext: c.uidnext,
                incarnation: c.incarnation,
                first_recent: c.first_recent,
                keyword_room: u32::try_from(mb.mailbox.max_keywords().saturating_sub(c.keywords)).unwrap_or(u32::MAX),
            },
            changed: c.changed.into_iter(),
            last_keywords: Vec::new(),
            expunged: c.expunged.into_iter(),
        }));
        Ok(())
    })
}

/// The mailbox's HIGHESTMODSEQ when `changes` was opened, in `*out` (the modseq to ask
/// from next time).
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `changes` is a live handle, not used concurrently by another thread; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_changes_highestmodseq(changes: *const rm_changes, out: *mut u64) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let c = unsafe { borrow_handle(changes, "changes") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        out.set(c.mailbox.highestmodseq);
        Ok(())
    })
}

/// The mailbox's header values read together with the changes ([`rm_changes_mailbox`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct rm_changes_header {
    /// HIGHESTMODSEQ (as [`rm_changes_highestmodseq`] gives it).
    pub highestmodseq: u64,
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// UIDNEXT: above every UID among the changes.
    pub uidnext: u32,
    /// The mailbox's incarnation (as `rm_status.incarnation`): another value means the
    /// mailbox was deleted and created again with the same GUID.
    pub incarnation: u32,
    /// The first recent UID, at most `uidnext`: the mails from it on are still `\Recent`
    /// (no session took them, see [`crate::mailbox::rm_mailbox_take_recent`]); what a
    /// read-only session (EXAMINE, STATUS) shows as recent.
    pub first_recent: u32,
    /// How many more distinct keywords the mailbox can take (its `max_keywords` setting
    /// minus the names in its keyword table); 0: no new keyword can be created (IMAP
    /// PERMANENTFLAGS without `\*`).
    pub keyword_room: u32,
}

/// The mailbox's HIGHESTMODSEQ, UIDVALIDITY, UIDNEXT, incarnation and first recent UID from
/// the same read as the changes of `changes`, in `*out`: a caller that syncs needs no
/// separate (and possibly newer) [`crate::mailbox::rm_mailbox_status`].
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `changes` is a live handle, not used concurrently by another thread; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_changes_mailbox(changes: *const rm_changes, out: *mut rm_changes_header) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let c = unsafe { borrow_handle(changes, "changes") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        out.set(c.mailbox);
        Ok(())
    })
}

/// Takes the next record added or changed (ascending by UID): `*out_has` becomes true and
/// `*out` receives the record; once they are exhausted, `*out_has` becomes false and `*out`
/// is left untouched (and every later call does the same).
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER` (nothing is then written and the
/// cursor does not move).
///
/// # Safety
/// `changes` is a live handle, not used concurrently by another thread; `out` and
/// `out_has` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_changes_next_changed(
    changes: *mut rm_changes,
    out: *mut rm_record,
    out_has: *mut bool,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let c = unsafe { borrow_handle_mut(changes, "changes") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        // SAFETY: forwarded contract of this export.
        let has = unsafe { Out::new(out_has, "out_has") }?;
        match c.changed.next() {
            Some(r) => {
                out.set(record_out(&r));
                has.set(true);
                c.last_keywords = r.keywords;
            }
            None => {
                has.set(false);
                c.last_keywords.clear();
            }
        }
        Ok(())
    })
}

/// Calls `cb(userdata, keyword, len)` for each keyword (sorted) of the record that
/// [`rm_changes_next_changed`] returned last; none before the first call and after the
/// end. Same callback rules as [`rm_mailbox_keywords`](crate::record::rm_mailbox_keywords).
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER` (`changes` or `cb`).
///
/// # Safety
/// `changes` is a live handle, not used concurrently by another thread; `cb` is safe to
/// call with `userdata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_changes_keywords(
    changes: *const rm_changes,
    cb: rm_name_callback,
    userdata: *mut c_void,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let c = unsafe { borrow_handle(changes, "changes") }?;
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        // SAFETY: the caller vouches for `cb` and `userdata`.
        unsafe { call_names(cb, userdata, &c.last_keywords) }
    })
}

/// Takes the next UID expunged (ascending): `*out_has` becomes true and `*out_uid` receives
/// the UID; once they are exhausted, `*out_has` becomes false and `*out_uid` is left
/// untouched. Independent of [`rm_changes_next_changed`]'s cursor.
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER` (nothing is then written and the
/// cursor does not move).
///
/// # Safety
/// `changes` is a live handle, not used concurrently by another thread; `out_uid` and
/// `out_has` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_changes_next_expunged(
    changes: *mut rm_changes,
    out_uid: *mut u32,
    out_has: *mut bool,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let c = unsafe { borrow_handle_mut(changes, "changes") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out_uid, "out_uid") }?;
        // SAFETY: forwarded contract of this export.
        let has = unsafe { Out::new(out_has, "out_has") }?;
        match c.expunged.next() {
            Some(uid) => {
                out.set(uid);
                has.set(true);
            }
            None => has.set(false),
        }
        Ok(())
    })
}

/// Frees a changes handle; NULL is a no-op.
///
/// # Safety
/// `changes` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_changes_free(changes: *mut rm_changes) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(changes) }));
}
