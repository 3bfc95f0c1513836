//! `rm_mailbox`: one mailbox: status, records, flags, expunge. Appends are in
//! [`crate::append`], body reads in [`crate::body`].

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use rados_mail::{Flags, Mailbox, MailboxUpdate, StoreMode};

use crate::error::{Failure, rm_result};
use crate::ffi::{BoxHandle, Out, borrow_handle, buf_arg, into_handle, slice_arg, str_arg, take_handle};
use crate::panic::{ffi_call, ffi_void};
use crate::user::rm_user;

/// `\Seen`.
pub const RM_FLAG_SEEN: u32 = 1;
/// `\Answered`.
pub const RM_FLAG_ANSWERED: u32 = 2;
/// `\Flagged`.
pub const RM_FLAG_FLAGGED: u32 = 4;
/// `\Deleted`.
pub const RM_FLAG_DELETED: u32 = 8;
/// `\Draft`.
pub const RM_FLAG_DRAFT: u32 = 16;
/// Every defined flag bit; other bits are rejected with `RM_RESULT_INVALID_INPUT`.
pub const RM_FLAG_ALL: u32 = 31;

/// [`rm_mailbox_store_flags`]: replace the flags and keywords (IMAP `FLAGS`).
pub const RM_STORE_MODE_REPLACE: u32 = 0;
/// [`rm_mailbox_store_flags`]: add them (IMAP `+FLAGS`).
pub const RM_STORE_MODE_ADD: u32 = 1;
/// [`rm_mailbox_store_flags`]: remove them (IMAP `-FLAGS`).
pub const RM_STORE_MODE_REMOVE: u32 = 2;

/// [`rm_mailbox_store_flags`] `unchanged_since` meaning "no condition" (no modseq is
/// larger).
pub const RM_UNCHANGED_SINCE_ANY: u64 = u64::MAX;

/// One mailbox of a user.
///
/// Thread-safe: one `rm_mailbox` may be used from many threads at once. It does not borrow
/// the `rm_user` it came from; appends and bodies opened from it do not borrow it either.
pub struct rm_mailbox {
    _private: [u8; 0],
}

impl BoxHandle for rm_mailbox {
    type Rust = MailboxHandle;
}

/// What an `rm_mailbox` holds.
pub(crate) struct MailboxHandle {
    /// Shared with the appends begun on it.
    pub mailbox: Arc<Mailbox>,
}

/// Mailbox status, as IMAP STATUS reports it ([`rm_mailbox_status`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct rm_status {
    /// Number of mails.
    pub messages: u32,
    /// Mails without `\Seen`.
    pub unseen: u32,
    /// Next UID.
    pub uidnext: u32,
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// HIGHESTMODSEQ.
    pub highestmodseq: u64,
    /// Sum of physical sizes (bytes as stored, LF line endings).
    pub psize_total: u64,
    /// Sum of virtual sizes (CRLF line endings; IMAP STATUS SIZE).
    pub vsize_total: u64,
    /// Random, not 0, chosen when the mailbox was created: a mailbox deleted and created
    /// again with the same GUID has another (0 for mailboxes made by older versions). A
    /// cache of the mailbox made at another incarnation is not valid.
    pub incarnation: u32,
}

/// Outcome of [`rm_mailbox_store_flags`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct rm_flags_outcome {
    /// Modseq of the change; 0 when nothing changed.
    pub modseq: u64,
    /// Number of mails whose flags or keywords changed.
    pub changed: usize,
    /// Number of mails left alone because they changed after `unchanged_since`.
    pub modified: usize,
}

/// Called once per UID by [`rm_mailbox_uids`], with the caller's `userdata`.
pub type rm_uid_callback = Option<unsafe extern "C" fn(userdata: *mut c_void, uid: u32)>;

/// Checks C flag bits.
pub(crate) fn flags_arg(flags: u32) -> Result<Flags, Failure> {
    if flags & !RM_FLAG_ALL != 0 {
        return Err(Failure::invalid(format!("unknown flag bits {:#x}", flags & !RM_FLAG_ALL)));
    }
    Ok(Flags::from_bits(flags))
}

/// Opens the mailbox `name` (NUL-terminated UTF-8) of `user`, in `*out`; free it with
/// [`rm_mailbox_free`].
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NOT_FOUND`, `RM_RESULT_INVALID_INPUT`,
/// `RM_RESULT_NULL_PARAMETER`, or another code. `*out` is written only on success.
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_open(
    user: *const rm_user,
    name: *const c_char,
    out: *mut *mut rm_mailbox,
) -> rm_result {
    // SAFETY: forwarded contract of this export.
    ffi_call(|| unsafe { open_with(user, name, out, rados_mail::User::open_mailbox) })
}

/// The body of [`rm_mailbox_open`] and [`rm_mailbox_open_to_append`], `open` being the
/// way the mailbox is opened.
///
/// # Safety
/// The contract of those exports.
unsafe fn open_with(
    user: *const rm_user,
    name: *const c_char,
    out: *mut *mut rm_mailbox,
    open: impl FnOnce(&rados_mail::User, &str) -> rados_mail::Result<Mailbox>,
) -> Result<(), Failure> {
    // SAFETY: forwarded contract of the export.
    let user = unsafe { borrow_handle(user, "user") }?;
    // SAFETY: forwarded contract of the export.
    let name = unsafe { str_arg(name, "name") }?;
    // SAFETY: forwarded contract of the export.
    let out = unsafe { Out::new(out, "out") }?;
    let mailbox = Arc::new(open(&user.user, name)?);
    out.set(into_handle(MailboxHandle { mailbox }));
    Ok(())
}

/// Opens the mailbox `name` of `user` to add mails to (a delivery), in `*out`: as
/// [`rm_mailbox_open`], except that when this process has the mailbox's view cached it is
/// taken as it is, without reading the mailbox head again (the first commit reads it only
/// if another process changed the mailbox meanwhile). Reads of records through the handle
/// may be behind until [`rm_mailbox_sync`]. Results as [`rm_mailbox_open`].
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_open_to_append(
    user: *const rm_user,
    name: *const c_char,
    out: *mut *mut rm_mailbox,
) -> rm_result {
    // SAFETY: forwarded contract of this export.
    ffi_call(|| unsafe { open_with(user, name, out, rados_mail::User::open_mailbox_to_append) })
}

/// Frees a mailbox handle; NULL is a no-op.
///
/// # Safety
/// `mailbox` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_free(mailbox: *mut rm_mailbox) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(mailbox) }));
}

/// Brings the mailbox's view up to date; `*out_changed` tells whether anything changed
/// since the last sync (or change made through any handle of this process).
///
/// # Safety
/// `mailbox` is a live handle; `out_changed` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_sync(mailbox: *const rm_mailbox, out_changed: *mut bool) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out_changed, "out_changed") }?;
        out.set(mb.mailbox.sync()?);
        Ok(())
    })
}

/// The mailbox's UIDVALIDITY and incarnation (see [`rm_status`]) as its view last read
/// them (at open, sync or commit), without any RADOS operation: what a server needs to
/// check its own cache of the mailbox right after [`rm_mailbox_open`].
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `mailbox` is a live handle; `out_uidvalidity` and `out_incarnation` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_identity(
    mailbox: *const rm_mailbox,
    out_uidvalidity: *mut u32,
    out_incarnation: *mut u32,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let uv = unsafe { Out::new(out_uidvalidity, "out_uidvalidity") }?;
        // SAFETY: forwarded contract of this export.
        let inc = unsafe { Out::new(out_incarnation, "out_incarnation") }?;
        let (uidvalidity, incarnation) = mb.mailbox.identity();
        uv.set(uidvalidity);
        inc.set(incarnation);
        Ok(())
    })
}

/// Takes the mails that are still `\Recent` for the calling session (one that may change
/// the mailbox: IMAP SELECT and its later syncs, not EXAMINE): the UIDs `*out_first` ..
/// `*out_end - 1` are this session's recent mails (none when equal), handed out to no
/// other session of any process; the mailbox's first recent UID becomes `*out_end`.
/// `upto` is the UIDNEXT the caller's sync saw (`rm_changes_header.uidnext`): nothing at
/// or above it, nor above the UIDNEXT the handle's view knows, is taken. No modseq
/// changes.
///
/// Costs one guarded RADOS write when there is something to take, none otherwise (one
/// read and write more for each race lost to another session). A temporary failure hands
/// nothing out (if the write was applied all the same, those mails are recent for nobody,
/// which RFC 3501 allows; never for two sessions).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NOT_FOUND` (the mailbox was deleted),
/// `RM_RESULT_NULL_PARAMETER`, a temporary code, or another code. The outputs are written
/// only on success.
///
/// # Safety
/// `mailbox` is a live handle; `out_first` and `out_end` are valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_take_recent(
    mailbox: *const rm_mailbox,
    upto: u32,
    out_first: *mut u32,
    out_end: *mut u32,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let first = unsafe { Out::new(out_first, "out_first") }?;
        // SAFETY: forwarded contract of this export.
        let end = unsafe { Out::new(out_end, "out_end") }?;
        let taken = mb.mailbox.take_recent(upto)?;
        first.set(taken.start);
        end.set(taken.end);
        Ok(())
    })
}

/// Checks a mail's size known before its bytes arrive (an IMAP APPEND's literal size)
/// against the store's `max_mail_size`, so that a mail server can refuse it before the
/// client sends it. No RADOS operation.
///
/// Returns `RM_RESULT_OK` (it fits), `RM_RESULT_TOO_LARGE` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `mailbox` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_check_mail_size(mailbox: *const rm_mailbox, size: u64) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        mb.mailbox.check_mail_size(size)?;
        Ok(())
    })
}

/// The mailbox's status after bringing its view up to date, in `*out`.
///
/// # Safety
/// `mailbox` is a live handle; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_status(mailbox: *const rm_mailbox, out: *mut rm_status) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let s = mb.mailbox.status()?;
        out.set(rm_status {
            messages: s.messages,
            unseen: s.unseen,
            uidnext: s.uidnext,
            uidvalidity: s.uidvalidity,
            highestmodseq: s.highestmodseq,
            psize_total: s.psize_total,
            vsize_total: s.vsize_total,
            incarnation: s.incarnation,
        });
        Ok(())
    })
}

/// Calls `cb(userdata, uid)` for every UID in the mailbox's view, ascending (the view as
/// of the last sync or change; see [`rm_mailbox_sync`]). `userdata` may be NULL; `cb` must
/// not unwind into this library.
///
/// # Safety
/// `mailbox` is a live handle; `cb` is safe to call with `userdata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_uids(
    mailbox: *const rm_mailbox,
    cb: rm_uid_callback,
    userdata: *mut c_void,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        for uid in mb.mailbox.uids()? {
            // SAFETY: the caller vouches for `cb` and `userdata`.
            unsafe { cb(userdata, uid) };
        }
        Ok(())
    })
}

/// Reads up to `cap` bytes of the body of `uid` from byte `offset` into `buf`, and the
/// number read in `*out_len` (fewer than `cap` only at the end of the body; 0 at or past
/// it). `buf` may be NULL when `cap` is 0. For whole bodies prefer [`crate::body`]'s
/// stream, which verifies the checksum.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NOT_FOUND` (no such UID), `RM_RESULT_NULL_PARAMETER`,
/// or another code. On failure the contents of `buf` are unspecified.
///
/// # Safety
/// `mailbox` is a live handle; `buf` is writable for `cap` bytes; `out_len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_read(
    mailbox: *const rm_mailbox,
    uid: u32,
    offset: u64,
    buf: *mut u8,
    cap: usize,
    out_len: *mut usize,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out_len, "out_len") }?;
        // SAFETY: forwarded contract of this export.
        let buf = unsafe { buf_arg(buf, cap, "buf") }?;
        let bytes = mb.mailbox.read_range(uid, offset, cap as u64)?;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        out.set(n);
        Ok(())
    })
}

/// Changes the flags and keywords of the mails `uids[0..n_uids]` (missing UIDs are
/// ignored) as `mode` says (`RM_STORE_MODE_*`), with `flags` (`RM_FLAG_*` bits) and the
/// keywords `keywords[0..n_keywords]` (NUL-terminated UTF-8 each). `uids` / `keywords` may
/// be NULL when their count is 0.
///
/// `unchanged_since` is CONDSTORE's UNCHANGEDSINCE: mails whose modseq is larger are left
/// alone and counted in `out->modified`; [`RM_UNCHANGED_SINCE_ANY`] for no condition. When
/// `modified_uids` is not NULL it must have room for `n_uids` values and receives the UIDs
/// left alone (the first `out->modified` entries); it is written only on success.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_INVALID_INPUT` (unknown mode or flag bits, invalid
/// keyword), `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_CONFLICT`, or another code.
///
/// # Safety
/// `mailbox` is a live handle; the arrays hold their counts of valid values; `out` and a
/// non-NULL `modified_uids` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_store_flags(
    mailbox: *const rm_mailbox,
    uids: *const u32,
    n_uids: usize,
    mode: u32,
    flags: u32,
    keywords: *const *const c_char,
    n_keywords: usize,
    unchanged_since: u64,
    modified_uids: *mut u32,
    out: *mut rm_flags_outcome,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let uids = unsafe { slice_arg(uids, n_uids, "uids") }?;
        // SAFETY: forwarded contract of this export.
        let keyword_ptrs = unsafe { slice_arg(keywords, n_keywords, "keywords") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let mode = match mode {
            RM_STORE_MODE_REPLACE => StoreMode::Replace,
            RM_STORE_MODE_ADD => StoreMode::Add,
            RM_STORE_MODE_REMOVE => StoreMode::Remove,
            other => return Err(Failure::invalid(format!("unknown store mode {other}"))),
        };
        let flags = flags_arg(flags)?;
        let keywords = keyword_ptrs
            .iter()
            // SAFETY: each entry is a NUL-terminated string per the contract.
            .map(|&k| unsafe { str_arg(k, "keywords[i]") })
            .collect::<Result<Vec<&str>, _>>()?;
        let condition = (unchanged_since != RM_UNCHANGED_SINCE_ANY).then_some(unchanged_since);
        let r = mb.mailbox.store(uids, mode, flags, &keywords, condition)?;
        if !modified_uids.is_null() {
            // `modified` is a subset of the distinct `uids`, so it fits in `n_uids`.
            let n = r.modified.len().min(n_uids);
            // SAFETY: the caller guarantees room for `n_uids` values.
            unsafe { std::ptr::copy_nonoverlapping(r.modified.as_ptr(), modified_uids, n) };
        }
        out.set(rm_flags_outcome { modseq: r.modseq, changed: r.changed.len(), modified: r.modified.len() });
        Ok(())
    })
}

/// Expunges the mails `uids[0..n_uids]` (missing ones are ignored; `uids` may be NULL when
/// `n_uids` is 0); `*out_expunged` receives how many were expunged.
///
/// # Safety
/// `mailbox` is a live handle; `uids` holds `n_uids` values; `out_expunged` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_expunge(
    mailbox: *const rm_mailbox,
    uids: *const u32,
    n_uids: usize,
    out_expunged: *mut usize,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let uids = unsafe { slice_arg(uids, n_uids, "uids") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out_expunged, "out_expunged") }?;
        out.set(mb.mailbox.expunge(uids)?.len());
        Ok(())
    })
}

/// Expunges the mails `uids[0..n_uids]` as [`rm_mailbox_expunge`] does, and reports which
/// ones this call expunged: `out_uids[0..*out_count]`, ascending (`out_uids` has room for
/// `n_uids` values; UIDs missing, or expunged meanwhile by someone else, are not in it).
/// Exactly one caller ever gets a given UID back, so a host can count each expunge once
/// (quota) even when several processes expunge the same mails at once.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER` (`mailbox`, `out_count`, or `uids`
/// / `out_uids` with `n_uids > 0`), a temporary code, or another code. Nothing is written
/// on failure.
///
/// # Safety
/// `mailbox` is a live handle; `uids` holds `n_uids` values; `out_uids` is writable for
/// `n_uids` values; `out_count` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_expunge_uids(
    mailbox: *const rm_mailbox,
    uids: *const u32,
    n_uids: usize,
    out_uids: *mut u32,
    out_count: *mut usize,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let uids = unsafe { slice_arg(uids, n_uids, "uids") }?;
        if n_uids > 0 && out_uids.is_null() {
            return Err(Failure::null("out_uids"));
        }
        // SAFETY: forwarded contract of this export.
        let count = unsafe { Out::new(out_count, "out_count") }?;
        let gone = mb.mailbox.expunge(uids)?;
        // `expunge` returns a subset of the distinct requested UIDs: at most `n_uids`.
        debug_assert!(gone.len() <= n_uids);
        for (i, uid) in gone.iter().take(n_uids).enumerate() {
            // SAFETY: `out_uids` has room for `n_uids` values per the contract.
            unsafe { out_uids.add(i).write(*uid) };
        }
        count.set(gone.len().min(n_uids));
        Ok(())
    })
}

/// What [`rm_user_mailbox_update`] changes; a 0 leaves that value alone.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct rm_mailbox_update {
    /// A new UIDVALIDITY.
    pub uidvalidity: u32,
    /// UIDNEXT becomes at least this: UIDs below it are never handed out afterwards.
    pub min_uidnext: u32,
    /// HIGHESTMODSEQ becomes at least this.
    pub min_highestmodseq: u64,
}

/// Changes the header of `mailbox` (a mailbox of `user`), for migrations: UIDNEXT and
/// HIGHESTMODSEQ only ever go up; a new UIDVALIDITY is also written to the mailbox list.
/// The change is a change set of its own (its modseq is the new HIGHESTMODSEQ), which
/// every handle sees at its next sync. `*out_changed` tells whether anything changed
/// (false when every value already was as asked).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_NOT_FOUND` (the mailbox
/// was deleted), `RM_RESULT_CONFLICT` / `RM_RESULT_UNAVAILABLE` (temporary), or another
/// code. `*out_changed` is written only on success.
///
/// # Safety
/// `user` and `mailbox` are live handles; `update` is readable; `out_changed` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_mailbox_update(
    user: *const rm_user,
    mailbox: *const rm_mailbox,
    update: *const rm_mailbox_update,
    out_changed: *mut bool,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let user = unsafe { borrow_handle(user, "user") }?;
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: a non-NULL `update` is readable per the contract.
        let update = unsafe { update.as_ref() }.ok_or_else(|| Failure::null("update"))?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out_changed, "out_changed") }?;
        let nonzero32 = |v: u32| (v != 0).then_some(v);
        let update = MailboxUpdate {
            uidvalidity: nonzero32(update.uidvalidity),
            min_uidnext: nonzero32(update.min_uidnext),
            min_highestmodseq: (update.min_highestmodseq != 0).then_some(update.min_highestmodseq),
        };
        out.set(user.user.update_mailbox(&mb.mailbox, &update)?);
        Ok(())
    })
}
