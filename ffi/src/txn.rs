//! `rm_txn`: everything one mail-server transaction changes in one mailbox — new mails
//! ([`rm_append_finish_into`](crate::append::rm_append_finish_into)), copies in, flag and
//! keyword changes, expunges — collected, then committed as ONE guarded write on the
//! mailbox head by [`rm_txn_commit`]: all of it becomes visible, or none of it.
//!
//! Collecting costs no RADOS operation; the commit takes the copies' body references
//! (many in flight), writes the head once, and drops the expunged mails' references (many
//! in flight). What the commit did comes back as an `rm_txn_result`.

use std::ffi::c_char;
use std::sync::Arc;

use rados_mail::{Committed, Mailbox, ModseqSteps, Transaction};

use crate::body::{Body, rm_body};
use crate::error::{Failure, rm_result};
use crate::ffi::{BoxHandle, Out, borrow_handle, borrow_handle_mut, into_handle, slice_arg, str_arg, take_handle};
use crate::mailbox::{RM_STORE_MODE_ADD, RM_STORE_MODE_REMOVE, RM_STORE_MODE_REPLACE, flags_arg, rm_mailbox};
use crate::panic::{ffi_call, ffi_void};

/// [`rm_txn_begin`]: the whole transaction is one change set with one modseq.
pub const RM_MODSEQ_STEPS_ONE: u32 = 0;
/// [`rm_txn_begin`]: one modseq per record Dovecot's transaction log writes for the same
/// changes, in its order: the new mails; the flag changes; per keyword (in name order) the
/// mails gaining it, then the mails losing it; the expunges.
pub const RM_MODSEQ_STEPS_DOVECOT: u32 = 1;

/// [`rm_txn_result_uids`]: the UIDs of the saved mails, in the order they were added.
pub const RM_TXN_SAVED: u32 = 0;
/// [`rm_txn_result_uids`]: existing mails whose flags or keywords changed, ascending.
pub const RM_TXN_CHANGED: u32 = 1;
/// [`rm_txn_result_uids`]: mails left alone by UNCHANGEDSINCE, ascending.
pub const RM_TXN_MODIFIED: u32 = 2;
/// [`rm_txn_result_uids`]: mails this commit expunged, ascending.
pub const RM_TXN_EXPUNGED: u32 = 3;

/// A transaction on one mailbox being collected ([`rm_txn_begin`]). Ended by
/// [`rm_txn_commit`] or [`rm_txn_free`] (which abandons it: mails saved into it are removed).
///
/// Not thread-safe: use one `rm_txn` from one thread at a time. It keeps the mailbox alive
/// (the `rm_mailbox` handle may be freed first).
pub struct rm_txn {
    _private: [u8; 0],
}

impl BoxHandle for rm_txn {
    type Rust = TxnHandle;
}

/// What an `rm_txn` holds.
pub(crate) struct TxnHandle {
    pub mailbox: Arc<Mailbox>,
    pub txn: Transaction,
}

/// What a committed transaction did ([`rm_txn_commit`]); read it with [`rm_txn_result_summary`],
/// [`rm_txn_result_uids`], [`rm_txn_result_copies`]; free it with [`rm_txn_result_free`].
/// Immutable: safe to read from several threads.
pub struct rm_txn_result {
    _private: [u8; 0],
}

impl BoxHandle for rm_txn_result {
    type Rust = Committed;
}

/// Counts and modseqs of a committed transaction ([`rm_txn_result_summary`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct rm_txn_summary {
    /// First modseq the commit used; 0 when nothing was written.
    pub first_modseq: u64,
    /// Last modseq the commit used: the mailbox's HIGHESTMODSEQ right after it; 0 when
    /// nothing was written.
    pub last_modseq: u64,
    /// Mails saved (one UID each, [`RM_TXN_SAVED`]).
    pub saved: usize,
    /// Copies asked for ([`rm_txn_result_copies`]).
    pub copies: usize,
    /// Existing mails whose flags or keywords changed.
    pub changed: usize,
    /// Mails left alone by UNCHANGEDSINCE.
    pub modified: usize,
    /// Mails expunged by this commit.
    pub expunged: usize,
}

fn steps_arg(steps: u32) -> Result<ModseqSteps, Failure> {
    match steps {
        RM_MODSEQ_STEPS_ONE => Ok(ModseqSteps::One),
        RM_MODSEQ_STEPS_DOVECOT => Ok(ModseqSteps::Dovecot),
        other => Err(Failure::invalid(format!("unknown modseq steps {other}"))),
    }
}

fn mode_arg(mode: u32) -> Result<rados_mail::StoreMode, Failure> {
    match mode {
        RM_STORE_MODE_REPLACE => Ok(rados_mail::StoreMode::Replace),
        RM_STORE_MODE_ADD => Ok(rados_mail::StoreMode::Add),
        RM_STORE_MODE_REMOVE => Ok(rados_mail::StoreMode::Remove),
        other => Err(Failure::invalid(format!("unknown store mode {other}"))),
    }
}

/// `n` NUL-terminated strings.
///
/// # Safety
/// `p` holds `n` pointers to NUL-terminated strings (may be NULL when `n` is 0).
unsafe fn strings_arg<'a>(p: *const *const c_char, n: usize, what: &str) -> Result<Vec<&'a str>, Failure> {
    // SAFETY: forwarded contract.
    let ptrs = unsafe { slice_arg(p, n, what) }?;
    // SAFETY: each entry is a NUL-terminated string per the contract.
    ptrs.iter().map(|&k| unsafe { str_arg(k, what) }).collect()
}

/// Begins a transaction on `mailbox`, its modseqs numbered as `steps` says
/// ([`RM_MODSEQ_STEPS_ONE`] or [`RM_MODSEQ_STEPS_DOVECOT`]); the handle goes to `*out`.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, or `RM_RESULT_INVALID_INPUT` (unknown
/// `steps`). `*out` is written only on success.
///
/// # Safety
/// `mailbox` is a live handle; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_begin(mailbox: *const rm_mailbox, steps: u32, out: *mut *mut rm_txn) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let txn = Transaction::new(steps_arg(steps)?);
        out.set(into_handle(TxnHandle { mailbox: mb.mailbox.clone(), txn }));
        Ok(())
    })
}

/// Adds a flag change: `mode` (`RM_STORE_MODE_*`) with the system flags `flags`
/// (`RM_FLAG_*`) for the mails `uids[0..n_uids]` (mails not in the mailbox at commit are
/// ignored). Changes are applied in the order added, against the state at commit.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, or `RM_RESULT_INVALID_INPUT`
/// (unknown mode or flag bits).
///
/// # Safety
/// `txn` is a live handle not used concurrently; `uids` holds `n_uids` values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_update_flags(
    txn: *mut rm_txn,
    uids: *const u32,
    n_uids: usize,
    mode: u32,
    flags: u32,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let t = unsafe { borrow_handle_mut(txn, "txn") }?;
        // SAFETY: forwarded contract of this export.
        let uids = unsafe { slice_arg(uids, n_uids, "uids") }?;
        t.txn.update_flags(uids, mode_arg(mode)?, flags_arg(flags)?);
        Ok(())
    })
}

/// Adds a keyword change: `mode` (`RM_STORE_MODE_*`; replace sets exactly these keywords)
/// with `keywords[0..n_keywords]` (NUL-terminated) for the mails `uids[0..n_uids]`. A
/// replace is computed at commit against the mail's keywords then, under the commit's
/// guard: a change made meanwhile by another process is never lost.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, or `RM_RESULT_INVALID_INPUT`
/// (unknown mode, an invalid keyword).
///
/// # Safety
/// `txn` is a live handle not used concurrently; `uids` holds `n_uids` values and
/// `keywords` `n_keywords` NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_update_keywords(
    txn: *mut rm_txn,
    uids: *const u32,
    n_uids: usize,
    mode: u32,
    keywords: *const *const c_char,
    n_keywords: usize,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let t = unsafe { borrow_handle_mut(txn, "txn") }?;
        // SAFETY: forwarded contract of this export.
        let uids = unsafe { slice_arg(uids, n_uids, "uids") }?;
        // SAFETY: forwarded contract of this export.
        let keywords = unsafe { strings_arg(keywords, n_keywords, "keywords") }?;
        Ok(t.txn.update_keywords(uids, mode_arg(mode)?, &keywords)?)
    })
}

/// Adds expunges of the mails `uids[0..n_uids]` (mails not in the mailbox at commit are
/// ignored; [`RM_TXN_EXPUNGED`] tells which this commit expunged).
///
/// # Safety
/// `txn` is a live handle not used concurrently; `uids` holds `n_uids` values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_expunge(txn: *mut rm_txn, uids: *const u32, n_uids: usize) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let t = unsafe { borrow_handle_mut(txn, "txn") }?;
        // SAFETY: forwarded contract of this export.
        let uids = unsafe { slice_arg(uids, n_uids, "uids") }?;
        t.txn.expunge(uids);
        Ok(())
    })
}

/// CONDSTORE UNCHANGEDSINCE for every flag and keyword change of the transaction: mails
/// changed after `modseq` are left alone ([`RM_TXN_MODIFIED`]).
///
/// # Safety
/// `txn` is a live handle not used concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_unchanged_since(txn: *mut rm_txn, modseq: u64) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let t = unsafe { borrow_handle_mut(txn, "txn") }?;
        t.txn.unchanged_since(modseq);
        Ok(())
    })
}

/// Adds a copy of the mail `uid` of `source` (a mailbox of the same user; may be the
/// transaction's own) into the transaction's mailbox: the copy shares the body. `dest_uid`:
/// the UID wanted (0: the next free one; given when not below UIDNEXT at commit). When
/// `set_flags`, the copy gets `flags` and `keywords[0..n_keywords]`, else its source's.
/// `*out_found` tells whether `uid` is in `source`'s view (when false nothing was added).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_INVALID_INPUT` (unknown
/// flag bits, an invalid keyword), or `RM_RESULT_TOO_LARGE` (`dest_uid` 4294967295).
///
/// # Safety
/// `txn` is a live handle not used concurrently; `source` is a live handle; `keywords` holds
/// `n_keywords` NUL-terminated strings; `out_found` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_copy(
    txn: *mut rm_txn,
    source: *const rm_mailbox,
    uid: u32,
    dest_uid: u32,
    set_flags: bool,
    flags: u32,
    keywords: *const *const c_char,
    n_keywords: usize,
    out_found: *mut bool,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let t = unsafe { borrow_handle_mut(txn, "txn") }?;
        // SAFETY: forwarded contract of this export.
        let src = unsafe { borrow_handle(source, "source") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out_found, "out_found") }?;
        let wanted = (dest_uid != 0).then_some(dest_uid);
        let found = if set_flags {
            // SAFETY: forwarded contract of this export.
            let keywords = unsafe { strings_arg(keywords, n_keywords, "keywords") }?;
            t.txn.copy(&src.mailbox, uid, wanted, Some((flags_arg(flags)?, &keywords)))?
        } else {
            t.txn.copy(&src.mailbox, uid, wanted, None)?
        };
        out.set(found);
        Ok(())
    })
}

/// Opens the body of the `index`-th mail saved into the transaction (counting from 0 in
/// the order of [`rm_append_finish_into`](crate::append::rm_append_finish_into)), not
/// committed yet, for reading from RADOS, in `*out` ([`rm_body_read`](crate::body::rm_body_read),
/// [`rm_body_free`](crate::body::rm_body_free)). The body handle does not borrow the
/// transaction, but reads fail once the transaction is abandoned (the objects are gone).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NOT_FOUND` (no such saved mail), or
/// `RM_RESULT_NULL_PARAMETER`. `*out` is written only on success.
///
/// # Safety
/// `txn` is a live handle not used concurrently; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_saved_body(txn: *const rm_txn, index: usize, out: *mut *mut rm_body) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let t = unsafe { borrow_handle(txn, "txn") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let read_chunk = t.mailbox.config().read_chunk as u64;
        let reader = t
            .txn
            .saved_body(index, read_chunk)
            .ok_or_else(|| Failure::new(rm_result::NotFound, format!("no saved mail {index} in the transaction")))?;
        out.set(into_handle(Body::new(reader)));
        Ok(())
    })
}

/// Commits the transaction: one guarded write on the mailbox head (retried while other
/// processes commit first). The handle is consumed and `*txn` set to NULL whatever the
/// outcome (unless `txn` or `*txn` is NULL, or `out` is NULL: then nothing happens). On
/// success `*out` receives what the commit did, to free with [`rm_txn_result_free`]; a
/// transaction with nothing to write succeeds without any RADOS operation.
///
/// On failure nothing of the transaction is visible, and the mails saved into it are
/// removed — except after `RM_RESULT_UNAVAILABLE` when the library could not read back
/// whether the commit landed: the mails may then be committed (the caller must treat the
/// outcome as unknown and sync).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_CONFLICT` /
/// `RM_RESULT_UNAVAILABLE` (temporary), `RM_RESULT_TOO_LARGE` (UID space exhausted),
/// `RM_RESULT_INVALID_INPUT` (a copy from another user), or another code.
///
/// # Safety
/// `txn` is valid for reading and writing a pointer, and `*txn` is NULL or a live handle
/// not used concurrently; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_commit(txn: *mut *mut rm_txn, out: *mut *mut rm_txn_result) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let slot = unsafe { txn.as_mut() }.ok_or_else(|| Failure::null("txn"))?;
        // SAFETY: forwarded contract.
        let out = unsafe { Out::new(out, "out") }?;
        if slot.is_null() {
            return Err(Failure::null("*txn"));
        }
        // SAFETY: `*slot` is a live handle; the caller's pointer is cleared right away.
        let t = unsafe { take_handle(std::mem::replace(slot, std::ptr::null_mut())) }
            .ok_or_else(|| Failure::null("*txn"))?;
        let TxnHandle { mailbox, txn } = *t;
        out.set(into_handle(mailbox.commit(txn)?));
        Ok(())
    })
}

/// Abandons a transaction: nothing is committed, mails saved into it are removed; NULL is
/// a no-op.
///
/// # Safety
/// `txn` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_free(txn: *mut rm_txn) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(txn) }));
}

/// The counts and modseqs of a committed transaction, in `*out`.
///
/// # Safety
/// `result` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_result_summary(result: *const rm_txn_result, out: *mut rm_txn_summary) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let r = unsafe { borrow_handle(result, "result") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        out.set(rm_txn_summary {
            first_modseq: r.first_modseq,
            last_modseq: r.last_modseq,
            saved: r.saved.len(),
            copies: r.copied.len(),
            changed: r.changed.len(),
            modified: r.modified.len(),
            expunged: r.expunged.len(),
        });
        Ok(())
    })
}

/// Copies one list of UIDs of a committed transaction (`which`: [`RM_TXN_SAVED`],
/// [`RM_TXN_CHANGED`], [`RM_TXN_MODIFIED`], [`RM_TXN_EXPUNGED`]) into `uids[0..cap]`;
/// `*out_count` receives the list's full length (the summary's count), of which
/// `min(count, cap)` are written. `uids` may be NULL when `cap` is 0.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, or `RM_RESULT_INVALID_INPUT`
/// (unknown `which`).
///
/// # Safety
/// `result` is a live handle; `uids` is writable for `cap` values; `out_count` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_result_uids(
    result: *const rm_txn_result,
    which: u32,
    uids: *mut u32,
    cap: usize,
    out_count: *mut usize,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let r = unsafe { borrow_handle(result, "result") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out_count, "out_count") }?;
        let list = match which {
            RM_TXN_SAVED => &r.saved,
            RM_TXN_CHANGED => &r.changed,
            RM_TXN_MODIFIED => &r.modified,
            RM_TXN_EXPUNGED => &r.expunged,
            other => return Err(Failure::invalid(format!("unknown UID list {other}"))),
        };
        let n = list.len().min(cap);
        if n > 0 {
            if uids.is_null() {
                return Err(Failure::null("uids"));
            }
            // SAFETY: `uids` is writable for `cap >= n` values per the contract.
            unsafe { std::ptr::copy_nonoverlapping(list.as_ptr(), uids, n) };
        }
        out.set(list.len());
        Ok(())
    })
}

/// The copies of a committed transaction, in the order they were added: for copy `i <
/// min(count, cap)`, `src_uids[i]` is its source UID and `dest_uids[i]` its new UID, or 0
/// when its source was expunged (and its body deleted) before the commit. `*out_count`
/// receives the number of copies. Either array may be NULL when not wanted.
///
/// # Safety
/// `result` is a live handle; non-NULL `src_uids` and `dest_uids` are writable for `cap`
/// values; `out_count` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_result_copies(
    result: *const rm_txn_result,
    src_uids: *mut u32,
    dest_uids: *mut u32,
    cap: usize,
    out_count: *mut usize,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let r = unsafe { borrow_handle(result, "result") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out_count, "out_count") }?;
        for (i, pair) in r.copied.iter().take(cap).enumerate() {
            let (s, d) = pair.unwrap_or((0, 0));
            if !src_uids.is_null() {
                // SAFETY: writable for `cap > i` values per the contract.
                unsafe { src_uids.add(i).write(s) };
            }
            if !dest_uids.is_null() {
                // SAFETY: as above.
                unsafe { dest_uids.add(i).write(d) };
            }
        }
        out.set(r.copied.len());
        Ok(())
    })
}

/// Frees a transaction result; NULL is a no-op.
///
/// # Safety
/// `result` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_txn_result_free(result: *mut rm_txn_result) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(result) }));
}
