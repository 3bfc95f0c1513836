//! `rm_append`: saving one mail, written in pieces.
//!
//! The pieces go to an unlinked temporary file under `$TMPDIR` (`/tmp` when unset), and
//! [`rm_append_finish`] streams that file into `Mailbox::append`, which stores it in RADOS
//! in chunks: a mail is never held whole in memory. The file is unlinked as soon as it is
//! created, so nothing is left behind if the process dies; it is capped at the store's
//! largest mail size (`RM_RESULT_TOO_LARGE` as soon as a write crosses it). Its disk space
//! is freed when the handle ends.

use std::ffi::c_char;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rados_mail::{AppendOptions, Guid, Mailbox};

use crate::error::{Failure, rm_result};
use crate::ffi::{BoxHandle, Out, borrow_handle, borrow_handle_mut, into_handle, slice_arg, str_arg, take_handle};
use crate::mailbox::{flags_arg, rm_mailbox};
use crate::panic::{ffi_call, ffi_void};

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
    file: File,
    len: u64,
    max_len: u64,
    keywords: Vec<String>,
    received: Option<i64>,
    uid: Option<u32>,
    guid: Option<Guid>,
    /// Set when a write failed: the mail is incomplete and can only be cancelled.
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
        let len = self.len.saturating_add(data.len() as u64);
        if len > self.max_len {
            return Err(Failure::new(
                rm_result::TooLarge,
                format!("mail larger than the limit of {} bytes", self.max_len),
            ));
        }
        self.file
            .write_all(data)
            .map_err(|e| Failure::new(rm_result::Io, format!("writing the temporary file: {e}")))?;
        self.len = len;
        Ok(())
    }

    fn finish(mut self, flags: rados_mail::Flags) -> Result<u32, Failure> {
        self.file.seek(SeekFrom::Start(0)).map_err(|e| Failure::new(rm_result::Io, format!("rewinding: {e}")))?;
        let options =
            AppendOptions { flags, keywords: self.keywords, received: self.received, uid: self.uid, guid: self.guid };
        Ok(self.mailbox.append(BufReader::with_capacity(1 << 16, self.file), options)?)
    }
}

/// A new, already unlinked, temporary file readable and writable by this process only.
fn temp_file() -> Result<File, Failure> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    let mut last_error = None;
    for _ in 0..16 {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let name =
            format!("rados-mail-append-{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let path = dir.join(name);
        match OpenOptions::new().read(true).write(true).create_new(true).mode(0o600).open(&path) {
            Ok(file) => {
                std::fs::remove_file(&path)
                    .map_err(|e| Failure::new(rm_result::Io, format!("unlinking {}: {e}", path.display())))?;
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
            Err(e) => return Err(Failure::new(rm_result::Io, format!("creating a file in {}: {e}", dir.display()))),
        }
    }
    Err(Failure::new(rm_result::Io, format!("no unique temporary file name in {}: {last_error:?}", dir.display())))
}

/// Begins saving a mail into `mailbox`; the handle goes to `*out`.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_IO` (no temporary file
/// could be made). `*out` is written only on success.
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
            file: temp_file()?,
            len: 0,
            max_len: mb.max_mail_size,
            keywords: Vec::new(),
            received: None,
            uid: None,
            guid: None,
            failed: None,
        };
        out.set(into_handle(append));
        Ok(())
    })
}

/// Adds the bytes `data[0..len]` to the mail (`data` may be NULL when `len` is 0). Line
/// endings are stored as given.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_TOO_LARGE` (the mail
/// would exceed the store's limit), `RM_RESULT_IO` (the temporary file could not be
/// written), or `RM_RESULT_INVALID_INPUT` (an earlier write failed). After a failed write
/// the append can only be cancelled (finishing it fails).
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
        app.received = Some(unix_secs);
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
/// record's GUID (`guid` of [`rm_record`](crate::mailbox::rm_record)) is then this one, not
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
/// `*out_uid`.
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
        append.check_usable()?;
        out.set(append.finish(flags)?);
        Ok(())
    })
}

/// Abandons the mail: frees the handle and its temporary file, and sets `*app` to NULL.
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
