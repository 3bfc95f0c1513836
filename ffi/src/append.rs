//! `rm_append`: saving one mail, written in pieces.
//!
//! Push style, nothing spooled: the pieces go to RADOS as each chunk object (`chunk_size`)
//! fills, so a mail is never held whole in memory nor copied to a local file; at most a
//! few chunks are in memory. The mail is capped at the store's largest mail size
//! (`RM_RESULT_TOO_LARGE` as soon as a write crosses it). [`rm_append_finish`] commits it
//! on its own; [`rm_append_finish_into`] adds it to a transaction ([`crate::txn`]).
//! Objects of a mail that is cancelled, fails, or is never committed are removed.

use std::ffi::c_char;
use std::sync::Arc;

use rados_mail::{AppendOptions, Appender, Guid, Mailbox, ModseqSteps, SavedMail, Transaction};

use crate::error::{Failure, rm_result};
use crate::ffi::{BoxHandle, Out, borrow_handle, borrow_handle_mut, into_handle, slice_arg, str_arg, take_handle};
use crate::mailbox::{flags_arg, rm_mailbox};
use crate::panic::{ffi_call, ffi_void};
use crate::txn::rm_txn;

/// A mail being saved: [`rm_append_begin`], any number of [`rm_append_write`], then
/// exactly one of [`rm_append_finish`] or [`rm_append_cancel`], which free the handle and
/// set the caller's pointer to NULL (so a use after them fails with
/// `RM_RESULT_NULL_PARAMETER` instead of touching freed memory).
///
/// Not thread-safe: use one `rm_append` from one thread at a time. It does not borrow the
/// `rm_mailbox` it came from (the mailbox handle may be freed first).
pub struct rm_append {
    _private: [u8; 0],
}

impl BoxHandle for rm_append {
    type Rust = Append;
}

/// What an `rm_append` holds.
pub(crate) struct Append {
    mailbox: Arc<Mailbox>,
    /// The mail's pieces go straight to RADOS through it (it refuses a mail above the
    /// store's largest size).
    appender: Appender,
    keywords: Vec<String>,
    uid: Option<u32>,
    guid: Option<Guid>,
    /// Set when a write failed: the mail is incomplete (and what was written is removed);
    /// it can only be cancelled.
    failed: Option<String>,
}

impl Append {
    fn check_usable(&self) -> Result<(), Failure> {
        match &self.failed {
            Some(why) => Err(Failure::invalid(format!("an earlier write of this append failed ({why}); cancel it"))),
            None => Ok(()),
        }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), Failure> {
        Ok(self.appender.write(data)?)
    }

    /// Completes the body in RADOS: the mail and the options to save it with.
    fn complete(self, flags: rados_mail::Flags) -> Result<(SavedMail, AppendOptions), Failure> {
        self.check_usable()?;
        let options = AppendOptions {
            flags,
            keywords: self.keywords,
            received: None,
            uid: self.uid,
            guid: self.guid,
            delivery: None,
        };
        Ok((self.appender.finish()?, options))
    }
}

/// Begins saving a mail into `mailbox`; the handle goes to `*out`.
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`. `*out` is written only on success.
///
/// # Safety
/// `mailbox` is a live handle; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_begin(mailbox: *const rm_mailbox, out: *mut *mut rm_append) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let mb = unsafe { borrow_handle(mailbox, "mailbox") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let append = Append {
            mailbox: mb.mailbox.clone(),
            appender: mb.mailbox.appender(None),
            keywords: Vec::new(),
            uid: None,
            guid: None,
            failed: None,
        };
        out.set(into_handle(append));
        Ok(())
    })
}

/// Adds the bytes `data[0..len]` to the mail (`data` may be NULL when `len` is 0). Line
/// endings are stored as given. Nothing is spooled: each time a chunk of the mail
/// (`chunk_size`) is full it is written to RADOS, so this call may block on the cluster.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_TOO_LARGE` (the mail
/// would exceed the store's limit), `RM_RESULT_UNAVAILABLE` (writing a chunk failed), or
/// `RM_RESULT_INVALID_INPUT` (an earlier write failed). After a failed write what was
/// written is removed and the append can only be cancelled (finishing it fails).
///
/// # Safety
/// `app` is a live handle not used concurrently; `data` holds `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_write(app: *mut rm_append, data: *const u8, len: usize) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let app = unsafe { borrow_handle_mut(app, "app") }?;
        // SAFETY: forwarded contract of this export.
        let data = unsafe { slice_arg(data, len, "data") }?;
        app.check_usable()?;
        app.write(data).inspect_err(|f| app.failed = Some(f.message.clone()))
    })
}

/// Declares that the bytes [`rm_append_write`] takes are not the mail itself but what a
/// mail plugin made of it (Dovecot's `mail_crypt` encrypts, `zlib` compresses), and that
/// the mail as the plugin was given it comes through [`rm_append_write_plain`]. The mail's
/// physical and virtual sizes ([`rm_append_sizes`], the record), header length and
/// delivery key ([`rm_append_deliver`]) are then the plain mail's; the record says the
/// body is transformed (`docs/FORMAT.md`, `plain_psize`), so nothing reads byte ranges of
/// it as ranges of the mail. Call it before the first write.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, or `RM_RESULT_INVALID_INPUT`
/// (bytes were written already, or an earlier write failed).
///
/// # Safety
/// `app` is a live handle not used concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_transformed(app: *mut rm_append) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let app = unsafe { borrow_handle_mut(app, "app") }?;
        app.check_usable()?;
        Ok(app.appender.transformed()?)
    })
}

/// Adds the bytes `data[0..len]` to the plain mail of a transformed mail
/// ([`rm_append_transformed`]): they are measured (sizes, header length) and hashed for
/// the delivery key, not stored (`data` may be NULL when `len` is 0).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_TOO_LARGE` (the mail
/// would exceed the store's limit), or `RM_RESULT_INVALID_INPUT` (the mail is not
/// transformed, or an earlier write failed). After a failure what was written is removed
/// and the append can only be cancelled, as after a failed [`rm_append_write`].
///
/// # Safety
/// `app` is a live handle not used concurrently; `data` holds `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_write_plain(app: *mut rm_append, data: *const u8, len: usize) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let app = unsafe { borrow_handle_mut(app, "app") }?;
        // SAFETY: forwarded contract of this export.
        let data = unsafe { slice_arg(data, len, "data") }?;
        app.check_usable()?;
        app.appender.write_plain(data).map_err(Failure::from).inspect_err(|f| app.failed = Some(f.message.clone()))
    })
}

/// Sets the mail's received date (IMAP INTERNALDATE), seconds since the Unix epoch; by
/// default it is the time of [`rm_append_finish`].
///
/// # Safety
/// `app` is a live handle not used concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_set_received(app: *mut rm_append, unix_secs: i64) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let app = unsafe { borrow_handle_mut(app, "app") }?;
        app.check_usable()?;
        app.appender.set_received(unix_secs);
        Ok(())
    })
}

/// Asks for the UID `uid` (a migration keeps the UIDs it had): [`rm_append_finish`] gives
/// it when it is not below the mailbox's UIDNEXT at that moment, else the next free UID (as
/// Dovecot's own index does); `*out_uid` tells which. 0 asks for nothing.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, or `RM_RESULT_TOO_LARGE` (`uid` is
/// 4294967295: no UIDNEXT would be left).
///
/// # Safety
/// `app` is a live handle not used concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_set_uid(app: *mut rm_append, uid: u32) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let app = unsafe { borrow_handle_mut(app, "app") }?;
        if uid == u32::MAX {
            return Err(Failure::new(rm_result::TooLarge, format!("UID {uid} leaves no room for UIDNEXT")));
        }
        app.uid = (uid != 0).then_some(uid);
        Ok(())
    })
}

/// Gives the mail the GUID `guid[0..16]` (a migration keeps the GUIDs it had): the
/// record's GUID (`guid` of [`rm_record`](crate::record::rm_record)) is then this one, not
/// its body's; copies keep it.
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `app` is a live handle not used concurrently; `guid` is readable for 16 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_set_guid(app: *mut rm_append, guid: *const u8) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let app = unsafe { borrow_handle_mut(app, "app") }?;
        if guid.is_null() {
            return Err(Failure::null("guid"));
        }
        // SAFETY: `guid` is readable for 16 bytes per the contract.
        let bytes = unsafe { slice_arg(guid, 16, "guid") }?;
        app.guid = Some(Guid(bytes.try_into().expect("16 bytes")));
        Ok(())
    })
}

/// Makes the mail a delivery (LMTP, LDA) with the delivery key `key[0..16]`, or, when
/// `key` is NULL, the key of the mail's bytes without the receiving server's trace fields
/// (`Return-Path`, `Delivered-To`, `Received: … with LMTP …` at the top; then call this
/// before the first [`rm_append_write`]). A delivery whose key was committed to the mailbox
/// within the `delivery_window` setting (default 24 hours) is not stored again: the commit
/// succeeds with the UID the first attempt got. This is how a sender's retry of a delivery
/// whose outcome was unknown (a lost reply) is stored once.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, or `RM_RESULT_INVALID_INPUT` (`key`
/// NULL after bytes were written).
///
/// # Safety
/// `app` is a live handle not used concurrently; `key` is NULL or readable for 16 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_deliver(app: *mut rm_append, key: *const u8) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let app = unsafe { borrow_handle_mut(app, "app") }?;
        app.check_usable()?;
        let key = if key.is_null() {
            None
        } else {
            // SAFETY: `key` is readable for 16 bytes per the contract.
            let bytes = unsafe { slice_arg(key, 16, "key") }?;
            Some(rados_mail::DeliveryKey(bytes.try_into().expect("16 bytes")))
        };
        Ok(app.appender.deliver(key)?)
    })
}

/// The mail's sizes so far, in `*out_psize` (physical) and `*out_vsize` (line ends counted
/// as CRLF, IMAP RFC822.SIZE): what the finished mail's record will report
/// ([`rm_record`](crate::record::rm_record)). For a transformed mail
/// ([`rm_append_transformed`]) these are the plain mail's (the bytes given to
/// [`rm_append_write_plain`]), not the stored bytes'.
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `app` is a live handle; `out_psize` and `out_vsize` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_sizes(app: *const rm_append, out_psize: *mut u64, out_vsize: *mut u64) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let app = unsafe { borrow_handle(app, "app") }?;
        // SAFETY: forwarded contract.
        let psize = unsafe { Out::new(out_psize, "out_psize") }?;
        // SAFETY: forwarded contract.
        let vsize = unsafe { Out::new(out_vsize, "out_vsize") }?;
        psize.set(app.appender.mail_len());
        vsize.set(app.appender.vsize());
        Ok(())
    })
}

/// The 16 bytes of the GUID the mail's body objects are named by, in `*out`: the mail's
/// GUID once saved, unless [`rm_append_set_guid`] gave another.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, or `RM_RESULT_INVALID_INPUT` (an
/// earlier write failed).
///
/// # Safety
/// `app` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_guid(app: *const rm_append, out: *mut [u8; 16]) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let app = unsafe { borrow_handle(app, "app") }?;
        // SAFETY: forwarded contract.
        let out = unsafe { Out::new(out, "out") }?;
        app.check_usable()?;
        out.set(app.appender.guid().0);
        Ok(())
    })
}

/// Adds a keyword (NUL-terminated UTF-8; validated by [`rm_append_finish`]) to the mail.
///
/// # Safety
/// `app` is a live handle not used concurrently; `keyword` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_add_keyword(app: *mut rm_append, keyword: *const c_char) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let app = unsafe { borrow_handle_mut(app, "app") }?;
        // SAFETY: forwarded contract of this export.
        let keyword = unsafe { str_arg(keyword, "keyword") }?;
        app.keywords.push(keyword.to_string());
        Ok(())
    })
}

/// Saves the mail with the system flags `flags` (`RM_FLAG_*`) and stores its new UID in
/// `*out_uid`: the last chunk is written, then the mail is committed with its flags and
/// keywords in one write on the mailbox head (numbered as Dovecot's log counts: one modseq
/// for the new mail, one per keyword). To save several mails, or a mail with other
/// changes, in one commit, use [`rm_append_finish_into`] instead.
///
/// If the arguments are rejected (`RM_RESULT_NULL_PARAMETER`: `app`, `*app` or `out_uid`
/// NULL; `RM_RESULT_INVALID_INPUT`: unknown flag bits) nothing happens and `*app` stays
/// valid. Otherwise the handle is consumed and `*app` set to NULL, whether the mail is
/// saved or not: `RM_RESULT_OK`, or `RM_RESULT_INVALID_INPUT` (an earlier write failed, an
/// invalid keyword), `RM_RESULT_TOO_LARGE`, `RM_RESULT_UNAVAILABLE`, `RM_RESULT_CONFLICT`,
/// `RM_RESULT_IO`, or another code. `*out_uid` is written only on success.
///
/// # Safety
/// `app` is valid for reading and writing a pointer, and `*app` is NULL or a live handle
/// not used concurrently; `out_uid` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_finish(app: *mut *mut rm_append, flags: u32, out_uid: *mut u32) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let slot = unsafe { app.as_mut() }.ok_or_else(|| Failure::null("app"))?;
        // SAFETY: forwarded contract.
        let out = unsafe { Out::new(out_uid, "out_uid") }?;
        if slot.is_null() {
            return Err(Failure::null("*app"));
        }
        let flags = flags_arg(flags)?;
        // SAFETY: `*slot` is a live handle; the caller's pointer is cleared right away.
        let append = unsafe { take_handle(std::mem::replace(slot, std::ptr::null_mut())) }
            .ok_or_else(|| Failure::null("*app"))?;
        let mailbox = append.mailbox.clone();
        let (mail, options) = append.complete(flags)?;
        let mut txn = Transaction::new(ModseqSteps::Dovecot);
        txn.save(mail, options)?;
        out.set(mailbox.commit(txn)?.saved[0]);
        Ok(())
    })
}

/// Completes the mail in RADOS (its last chunk is written) and adds it, with the system
/// flags `flags` (`RM_FLAG_*`) and its keywords, to the transaction `txn`
/// ([`crate::txn`]), which must be on the same mailbox. The mail gets its UID when the
/// transaction commits ([`RM_TXN_SAVED`](crate::txn::RM_TXN_SAVED), in the order added);
/// abandoned with the transaction, its objects are removed.
///
/// If the arguments are rejected (`RM_RESULT_NULL_PARAMETER`: `app`, `*app` or `txn` NULL;
/// `RM_RESULT_INVALID_INPUT`: unknown flag bits, or `txn` is on another mailbox) nothing
/// happens and `*app` stays valid. Otherwise the handle is consumed and `*app` set to NULL:
/// `RM_RESULT_OK`, or `RM_RESULT_INVALID_INPUT` (an earlier write failed, an invalid
/// keyword), `RM_RESULT_TOO_LARGE`, `RM_RESULT_UNAVAILABLE`, or another code.
///
/// # Safety
/// `app` is valid for reading and writing a pointer, and `*app` is NULL or a live handle
/// not used concurrently; `txn` is a live handle not used concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_finish_into(app: *mut *mut rm_append, txn: *mut rm_txn, flags: u32) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let slot = unsafe { app.as_mut() }.ok_or_else(|| Failure::null("app"))?;
        // SAFETY: forwarded contract.
        let t = unsafe { borrow_handle_mut(txn, "txn") }?;
        if slot.is_null() {
            return Err(Failure::null("*app"));
        }
        let flags = flags_arg(flags)?;
        // SAFETY: `*slot` is a live handle per the contract (not consumed here).
        let mailbox = unsafe { borrow_handle(*slot, "*app") }?.mailbox.clone();
        if !Arc::ptr_eq(&mailbox, &t.mailbox) && mailbox.info().guid != t.mailbox.info().guid {
            return Err(Failure::invalid("the transaction is on another mailbox"));
        }
        // SAFETY: `*slot` is a live handle; the caller's pointer is cleared right away.
        let append = unsafe { take_handle(std::mem::replace(slot, std::ptr::null_mut())) }
            .ok_or_else(|| Failure::null("*app"))?;
        let (mail, options) = append.complete(flags)?;
        Ok(t.txn.save(mail, options)?)
    })
}

/// Abandons the mail: removes what was written of it, frees the handle and sets `*app` to
/// NULL.
/// `app` NULL or `*app` NULL is a no-op returning `RM_RESULT_OK`.
///
/// # Safety
/// `app` is NULL or valid for reading and writing a pointer, and `*app` is NULL or a live
/// handle not used concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_cancel(app: *mut *mut rm_append) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        if let Some(slot) = unsafe { app.as_mut() } {
            // SAFETY: `*slot` is NULL or a live handle; the caller's pointer is cleared.
            drop(unsafe { take_handle(std::mem::replace(slot, std::ptr::null_mut())) });
        }
        Ok(())
    })
}

/// Frees an append handle without saving, like [`rm_append_cancel`] but taking the
/// handle itself (for cleanup paths); NULL is a no-op.
///
/// # Safety
/// `app` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_append_free(app: *mut rm_append) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(app) }));
}
