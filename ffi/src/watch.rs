//! `rm_watch`: push events from other processes (RADOS watch/notify), for IDLE and NOTIFY.
//!
//! A watch is made from a user ([`rm_watch_new`]), then told what to watch: mailboxes
//! ([`rm_watch_add_mailbox`], [`rm_watch_add_mailbox_name`]) and the mailbox list
//! ([`rm_watch_add_list`]). Every commit to a watched mailbox through any process sets
//! [`RM_WATCH_CHANGED`]; every mailbox list change sets [`RM_WATCH_LIST`]; a watch that
//! broke (OSD restart, timeout) sets [`RM_WATCH_LOST`] at once and again when it is
//! established again in the background: notifies may have been missed, resync. The file
//! descriptor of [`rm_watch_fd`] is readable while events are pending; [`rm_watch_take`]
//! returns and clears them (never blocking), after which the descriptor is not readable
//! until new events arrive.
//!
//! Processes that make no `rm_watch` pay nothing: no thread, no RADOS operation.

use rados_mail::Watch;
use std::ffi::c_char;

use crate::error::rm_result;
use crate::ffi::{BoxHandle, Out, borrow_handle, into_handle, str_arg, take_handle};
use crate::mailbox::rm_mailbox;
use crate::panic::{ffi_call, ffi_void};
use crate::user::rm_user;

/// [`rm_watch_take`]: a watched mailbox was changed (a commit through any process).
pub const RM_WATCH_CHANGED: u32 = 1;
/// [`rm_watch_take`]: the watched mailbox list changed (create, delete, rename,
/// subscriptions, special use).
pub const RM_WATCH_LIST: u32 = 2;
/// [`rm_watch_take`]: a watch broke, or was established again after breaking: changes may
/// have been missed; resync everything watched.
pub const RM_WATCH_LOST: u32 = 4;

/// Push events of one user's mailboxes and mailbox list ([`rm_watch_new`]); freed with
/// [`rm_watch_free`], which unwatches everything.
///
/// Thread-safe: one `rm_watch` may be used from many threads at once. It does not borrow
/// the `rm_user` (nor the mailboxes) it was given: free them in any order.
pub struct rm_watch {
    _private: [u8; 0],
}

impl BoxHandle for rm_watch {
    type Rust = WatchHandle;
}

/// What an `rm_watch` holds.
pub(crate) struct WatchHandle {
    watch: Watch,
}

/// A new watch of `user`'s mail in `*watch_out`, watching nothing yet.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, or `RM_RESULT_UNAVAILABLE` (no file
/// descriptor could be made). `*watch_out` is written only on success.
///
/// # Safety
/// `user` is a live handle; `watch_out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_watch_new(user: *const rm_user, watch_out: *mut *mut rm_watch) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let user = unsafe { borrow_handle(user, "user") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(watch_out, "watch_out") }?;
        let watch = Watch::new(&user.user)?;
        out.set(into_handle(WatchHandle { watch }));
        Ok(())
    })
}

/// Watches an open mailbox: a commit to it through any process sets [`RM_WATCH_CHANGED`].
/// Watching a mailbox twice is not an error. One RADOS operation.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_NOT_FOUND` (deleted
/// meanwhile), `RM_RESULT_UNAVAILABLE`, or another code.
///
/// # Safety
/// `watch` and `mailbox` are live handles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_watch_add_mailbox(watch: *const rm_watch, mailbox: *const rm_mailbox) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let w = unsafe { borrow_handle(watch, "watch") }?;
        // SAFETY: forwarded contract of this export.
        let mailbox = unsafe { borrow_handle(mailbox, "mailbox") }?;
        w.watch.add_mailbox(&mailbox.mailbox)?;
        Ok(())
    })
}

/// Watches the user's mailbox `name` (NUL-terminated UTF-8), as
/// [`rm_watch_add_mailbox`] does. Two RADOS operations (the name is looked up).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_NOT_FOUND` (no such
/// mailbox), `RM_RESULT_INVALID_INPUT` (invalid name), `RM_RESULT_UNAVAILABLE`, or another
/// code.
///
/// # Safety
/// `watch` is a live handle; `name` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_watch_add_mailbox_name(watch: *const rm_watch, name: *const c_char) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let w = unsafe { borrow_handle(watch, "watch") }?;
        // SAFETY: forwarded contract of this export.
        let name = unsafe { str_arg(name, "name") }?;
        w.watch.add_mailbox_name(name)?;
        Ok(())
    })
}

/// Watches the user's mailbox list: a change sets [`RM_WATCH_LIST`]. A user who never had
/// a mailbox gets an empty list object made, to be watched. One or two RADOS operations.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_UNAVAILABLE`, or another
/// code.
///
/// # Safety
/// `watch` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_watch_add_list(watch: *const rm_watch) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let w = unsafe { borrow_handle(watch, "watch") }?;
        w.watch.add_list()?;
        Ok(())
    })
}

/// The watch's file descriptor, for `poll`/`epoll`: readable while events are pending.
/// Owned by the watch (valid until [`rm_watch_free`]); do not read, write or close it:
/// [`rm_watch_take`] does what is needed. -1 when `watch` is NULL.
///
/// # Safety
/// `watch` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_watch_fd(watch: *const rm_watch) -> i32 {
    let mut fd = -1;
    ffi_void(|| {
        // SAFETY: forwarded contract of this export.
        if let Ok(w) = unsafe { borrow_handle(watch, "watch") } {
            fd = w.watch.raw_fd();
        }
    });
    fd
}

/// The pending events ([`RM_WATCH_CHANGED`] | [`RM_WATCH_LIST`] | [`RM_WATCH_LOST`]),
/// cleared by this call; 0 when none are pending or `watch` is NULL. Never blocks.
///
/// # Safety
/// `watch` is NULL or a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_watch_take(watch: *const rm_watch) -> u32 {
    let mut bits = 0;
    ffi_void(|| {
        // SAFETY: forwarded contract of this export.
        if let Ok(w) = unsafe { borrow_handle(watch, "watch") } {
            bits = w.watch.take().bits();
        }
    });
    bits
}

/// Frees a watch, unwatching everything (without waiting for the cluster); NULL is a no-op.
///
/// # Safety
/// `watch` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_watch_free(watch: *mut rm_watch) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(watch) }));
}
