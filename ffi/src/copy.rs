//! Copy and move between mailboxes: `rm_mailbox_copy`, `rm_mailbox_move`,
//! `rm_mailbox_copy_with`.

use std::ffi::c_char;

use rados_mail::CopyOptions;

use crate::error::Failure;
use crate::error::rm_result;
use crate::ffi::{Out, borrow_handle, slice_arg, str_arg};
use crate::mailbox::{flags_arg, rm_mailbox};
use crate::panic::ffi_call;

/// The output parameters of [`rm_mailbox_copy`] and [`rm_mailbox_move`].
struct PairsOut {
    src_uids: *mut u32,
    dest_uids: *mut u32,
    count: *mut usize,
}

/// Copy or move: the shared body of [`rm_mailbox_copy`] and [`rm_mailbox_move`].
///
/// # Safety
/// The contract of those exports.
unsafe fn copy_or_move(
    src: *const rm_mailbox,
    uids: *const u32,
    n_uids: usize,
    dest: *const rm_mailbox,
    outs: PairsOut,
    options: &CopyOptions,
    move_mails: bool,
) -> Result<(), Failure> {
    // SAFETY: forwarded contract of the export.
    let src = unsafe { borrow_handle(src, "src") }?;
    // SAFETY: forwarded contract of the export.
    let uids = unsafe { slice_arg(uids, n_uids, "uids") }?;
    // SAFETY: forwarded contract of the export.
    let dest = unsafe { borrow_handle(dest, "dest") }?;
    // SAFETY: forwarded contract of the export.
    let out = unsafe { Out::new(outs.count, "out_count") }?;
    let pairs = if move_mails {
        src.mailbox.move_to_with(uids, &dest.mailbox, options)?
    } else {
        src.mailbox.copy_to_with(uids, &dest.mailbox, options)?
    };
    // One pair per distinct source UID found, so never more than `n_uids`; `min` keeps a
    // broken promise from writing out of bounds.
    let n = pairs.len().min(n_uids);
    for (i, &(s, d)) in pairs.iter().take(n).enumerate() {
        if !outs.src_uids.is_null() {
            // SAFETY: the caller guarantees room for `n_uids` values and i < n <= n_uids.
            unsafe { outs.src_uids.add(i).write(s) };
        }
        if !outs.dest_uids.is_null() {
            // SAFETY: as above.
            unsafe { outs.dest_uids.add(i).write(d) };
        }
    }
    out.set(n);
    Ok(())
}

/// Copies the mails `uids[0..n_uids]` of `src` into `dest` (IMAP COPY; the bodies are
/// shared, not duplicated). `uids` may be NULL when `n_uids` is 0, may be in any order and
/// may repeat a UID (copied once); UIDs not in `src`'s view (never there, or expunged,
/// also meanwhile) are skipped, not an error.
///
/// On success `*out_count` receives the number of mails copied, `k <= n_uids`, and the
/// copies are described as `k` pairs, ascending by source UID: `out_src_uids[i]` was copied
/// to the new UID `out_dest_uids[i]` of `dest` (IMAP COPYUID), for `i < k`. Either array
/// may be NULL when not wanted; a non-NULL one must have room for `n_uids` values, and only
/// its first `k` entries are written. Nothing is written on failure.
///
/// `src` and `dest` may be the same mailbox (the copies get new UIDs in it). Neither handle
/// is consumed; both are thread-safe, so this may run concurrently with other calls on them.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER` (`src`, `dest`, `out_count`, or
/// `uids` with `n_uids > 0`), `RM_RESULT_CONFLICT` / `RM_RESULT_UNAVAILABLE` (temporary),
/// `RM_RESULT_TOO_LARGE` (UID space exhausted), or another code.
///
/// # Safety
/// `src` and `dest` are live handles; `uids` holds `n_uids` values; non-NULL `out_src_uids`
/// and `out_dest_uids` are writable for `n_uids` values each; `out_count` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_copy(
    src: *const rm_mailbox,
    uids: *const u32,
    n_uids: usize,
    dest: *const rm_mailbox,
    out_src_uids: *mut u32,
    out_dest_uids: *mut u32,
    out_count: *mut usize,
) -> rm_result {
    let outs = PairsOut { src_uids: out_src_uids, dest_uids: out_dest_uids, count: out_count };
    // SAFETY: forwarded contract of this export.
    ffi_call(|| unsafe { copy_or_move(src, uids, n_uids, dest, outs, &CopyOptions::default(), false) })
}

/// Moves the mails `uids[0..n_uids]` of `src` into `dest` (IMAP MOVE): a copy as
/// [`rm_mailbox_copy`] makes, then an expunge in `src` of the source UIDs copied. When it
/// returns `RM_RESULT_OK`, each mail reported is in `dest` and no longer in `src`.
///
/// Parameters, the outputs (`out_src_uids`, `out_dest_uids`, `*out_count`: the `k` moved
/// mails as pairs ascending by source UID, either array nullable, room for `n_uids` each)
/// and thread-safety are as for [`rm_mailbox_copy`]; UIDs not in `src` are skipped.
///
/// On failure nothing is written; if the copy succeeded but the expunge failed, the mails
/// may be in both mailboxes (retrying the move copies them again).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, a temporary code, or another code.
///
/// # Safety
/// As [`rm_mailbox_copy`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_move(
    src: *const rm_mailbox,
    uids: *const u32,
    n_uids: usize,
    dest: *const rm_mailbox,
    out_src_uids: *mut u32,
    out_dest_uids: *mut u32,
    out_count: *mut usize,
) -> rm_result {
    let outs = PairsOut { src_uids: out_src_uids, dest_uids: out_dest_uids, count: out_count };
    // SAFETY: forwarded contract of this export.
    ffi_call(|| unsafe { copy_or_move(src, uids, n_uids, dest, outs, &CopyOptions::default(), true) })
}

/// Options of [`rm_mailbox_copy_with`]. All zero (NULL, false, 0) is a plain copy.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct rm_copy_options {
    /// NULL, or the UID wanted for each copy: `n_uids` values, parallel to `uids`. A wanted
    /// UID is given when it is not below the destination's UIDNEXT (nor below the UID given
    /// to the copy before it), else the next free UID, as for
    /// [`rm_append_set_uid`](crate::append::rm_append_set_uid).
    pub dest_uids: *const u32,
    /// When true, the copies get `flags` and `keywords` instead of their sources' flags and
    /// keywords.
    pub set_flags: bool,
    /// System flags (`RM_FLAG_*`) of the copies, when `set_flags`.
    pub flags: u32,
    /// `n_keywords` NUL-terminated UTF-8 keywords of the copies, when `set_flags` (may be
    /// NULL when `n_keywords` is 0).
    pub keywords: *const *const c_char,
    /// Number of `keywords`.
    pub n_keywords: usize,
    /// Move ([`rm_mailbox_move`]) instead of copy.
    pub move_mails: bool,
}

/// [`rm_mailbox_copy`] or [`rm_mailbox_move`] (`options->move_mails`) with wanted UIDs, or
/// flags and keywords, for the copies (`options`; NULL is a plain copy). A UID given twice
/// in `uids` is copied once, with the first UID wanted for it. The parameters, outputs and
/// results are those of [`rm_mailbox_copy`] (pairs ascending by source UID), plus
/// `RM_RESULT_INVALID_INPUT` (unknown flag bits, an invalid keyword, a wanted UID of 0) and
/// `RM_RESULT_TOO_LARGE` (a wanted UID of 4294967295).
///
/// # Safety
/// As [`rm_mailbox_copy`]; a non-NULL `options` is readable, its non-NULL `dest_uids` holds
/// `n_uids` values and its `keywords` `n_keywords` NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_mailbox_copy_with(
    src: *const rm_mailbox,
    uids: *const u32,
    n_uids: usize,
    dest: *const rm_mailbox,
    options: *const rm_copy_options,
    out_src_uids: *mut u32,
    out_dest_uids: *mut u32,
    out_count: *mut usize,
) -> rm_result {
    let outs = PairsOut { src_uids: out_src_uids, dest_uids: out_dest_uids, count: out_count };
    ffi_call(|| {
        // SAFETY: a non-NULL `options` is readable per the contract.
        let Some(o) = (unsafe { options.as_ref() }) else {
            // SAFETY: forwarded contract of this export.
            return unsafe { copy_or_move(src, uids, n_uids, dest, outs, &CopyOptions::default(), false) };
        };
        let mut copy = CopyOptions::default();
        if !o.dest_uids.is_null() {
            // SAFETY: a non-NULL `dest_uids` holds `n_uids` values per the contract.
            copy.uids = unsafe { slice_arg(o.dest_uids, n_uids, "options->dest_uids") }?.to_vec();
        }
        if o.set_flags {
            // SAFETY: `keywords` holds `n_keywords` pointers per the contract.
            let ptrs = unsafe { slice_arg(o.keywords, o.n_keywords, "options->keywords") }?;
            let mut keywords = Vec::with_capacity(ptrs.len());
            for p in ptrs {
                // SAFETY: each is a NUL-terminated string per the contract.
                keywords.push(unsafe { str_arg(*p, "options->keywords[i]") }?.to_string());
            }
            copy.flags = Some((flags_arg(o.flags)?, keywords));
        }
        // SAFETY: forwarded contract of this export.
        unsafe { copy_or_move(src, uids, n_uids, dest, outs, &copy, o.move_mails) }
    })
}
