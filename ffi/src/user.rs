//! `rm_user`: one user's mailbox list.

use std::ffi::{c_char, c_void};

use rados_mail::{CreateOptions, Guid, User};

use crate::error::{Failure, rm_result};
use crate::ffi::{
    BoxHandle, Out, borrow_handle, call_names, into_handle, opt_str_arg, slice_arg, str_arg, take_handle,
};
use crate::panic::{ffi_call, ffi_void};
use crate::store::rm_store;

/// One user's mail. Users need no creation: a user without mailboxes is empty.
///
/// Thread-safe: one `rm_user` may be used from many threads at once. It does not borrow
/// the `rm_store` it came from (either may be freed first), and mailboxes opened from it
/// do not borrow it.
pub struct rm_user {
    _private: [u8; 0],
}

impl BoxHandle for rm_user {
    type Rust = UserHandle;
}

/// What an `rm_user` holds.
pub(crate) struct UserHandle {
    pub user: User,
}

/// Called once per name by [`rm_user_mailbox_list`]: `name` is NUL-terminated UTF-8 of
/// `name_len` bytes (without the NUL), valid only during the call; `userdata` is the
/// caller's pointer, passed through untouched.
pub type rm_name_callback = Option<unsafe extern "C" fn(userdata: *mut c_void, name: *const c_char, name_len: usize)>;

/// Opens the user `name` (NUL-terminated UTF-8) of `store`, in `*out`; free it with
/// [`rm_user_free`]. The name must pass [`rm_user_name_check`] under the store's
/// `namespace_prefix`.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_INVALID_INPUT` (invalid
/// name or UTF-8), or another code. `*out` is written only on success.
///
/// # Safety
/// `store` is a live handle; `name` is NUL-terminated; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_open(
    store: *const rm_store,
    name: *const c_char,
    out: *mut *mut rm_user,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let store = unsafe { borrow_handle(store, "store") }?;
        // SAFETY: forwarded contract of this export.
        let name = unsafe { str_arg(name, "name") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let user = store.user(name)?;
        out.set(into_handle(UserHandle { user }));
        Ok(())
    })
}

/// Checks, without a store, whether user `name` can be stored under namespace prefix
/// `prefix` (both NUL-terminated UTF-8; `prefix` is the `namespace_prefix` setting, NULL
/// for none): its namespace is `<prefix>/<name>` (`<name>` without a prefix), so the name
/// must be non-empty, without '/' or control characters, not start with '.', and the
/// namespace must fit Ceph's 256 bytes.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_INVALID_INPUT` (the message names the reason;
/// permanent: a mail server refuses such a recipient for good, LMTP `550 5.1.x`), or
/// `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `name` is NUL-terminated; `prefix` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_name_check(prefix: *const c_char, name: *const c_char) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let prefix = unsafe { opt_str_arg(prefix, "prefix") }?.unwrap_or("");
        // SAFETY: forwarded contract of this export.
        let name = unsafe { str_arg(name, "name") }?;
        rados_mail::check_user_name(prefix, name)?;
        Ok(())
    })
}

/// Frees a user handle; NULL is a no-op.
///
/// # Safety
/// `user` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_free(user: *mut rm_user) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(user) }));
}

/// Creates the mailbox `name`: NUL-terminated UTF-8, 1–255 bytes, levels separated by
/// '/', no empty level, no control characters, no '*' or '%'; "inbox" in any case is
/// INBOX.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_ALREADY_EXISTS`, `RM_RESULT_INVALID_INPUT`,
/// `RM_RESULT_NULL_PARAMETER`, or another code.
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_mailbox_create(user: *const rm_user, name: *const c_char) -> rm_result {
    // SAFETY: forwarded contract.
    unsafe { user_name_op(user, name, |u, name| u.create_mailbox(name).map(drop)) }
}

/// Creates the mailbox `name` (as [`rm_user_mailbox_create`]) with the identity it had
/// elsewhere, for migrations: the mailbox GUID `guid[0..16]` unless `guid` is NULL, and the
/// UIDVALIDITY `uidvalidity` unless it is 0 (then fresh values, as
/// [`rm_user_mailbox_create`] gives). Mailboxes created later still get larger
/// UIDVALIDITYs.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_ALREADY_EXISTS` (the name, or another mailbox of the
/// user has that GUID), `RM_RESULT_INVALID_INPUT`, `RM_RESULT_NULL_PARAMETER`, or another
/// code.
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated; a non-NULL `guid` is readable for 16
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_mailbox_create_with(
    user: *const rm_user,
    name: *const c_char,
    guid: *const u8,
    uidvalidity: u32,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let user = unsafe { borrow_handle(user, "user") }?;
        // SAFETY: forwarded contract of this export.
        let name = unsafe { str_arg(name, "name") }?;
        let guid = if guid.is_null() {
            None
        } else {
            // SAFETY: a non-NULL `guid` is readable for 16 bytes per the contract.
            let bytes = unsafe { slice_arg(guid, 16, "guid") }?;
            Some(Guid(bytes.try_into().expect("16 bytes")))
        };
        let options = CreateOptions { guid, uidvalidity: (uidvalidity != 0).then_some(uidvalidity) };
        user.user.create_mailbox_with(name, &options)?;
        Ok(())
    })
}

/// Gives the mailbox `name` the GUID `guid[0..16]`, for migrations that adopt the GUID a
/// mailbox has elsewhere. Only a mailbox that never had a mail (UIDNEXT 1) can: its
/// UIDVALIDITY, HIGHESTMODSEQ, special use and subscription stay. `rm_mailbox` handles
/// opened before refer to the old mailbox, which is gone (calls on them fail with
/// `RM_RESULT_NOT_FOUND`): open it again. Nothing happens when it already has `guid`.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_INVALID_INPUT` (the mailbox has had mails, or an
/// invalid name), `RM_RESULT_ALREADY_EXISTS` (another mailbox has `guid`),
/// `RM_RESULT_NOT_FOUND`, `RM_RESULT_NULL_PARAMETER`, or another code.
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated; `guid` is readable for 16 bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_mailbox_change_guid(
    user: *const rm_user,
    name: *const c_char,
    guid: *const u8,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let user = unsafe { borrow_handle(user, "user") }?;
        // SAFETY: forwarded contract of this export.
        let name = unsafe { str_arg(name, "name") }?;
        if guid.is_null() {
            return Err(Failure::null("guid"));
        }
        // SAFETY: `guid` is readable for 16 bytes per the contract.
        let bytes = unsafe { slice_arg(guid, 16, "guid") }?;
        let guid = Guid(bytes.try_into().expect("16 bytes"));
        user.user.change_mailbox_guid(name, &guid)?;
        Ok(())
    })
}

/// Deletes the mailbox `name` with all its mails (mailboxes below it stay).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NOT_FOUND`, `RM_RESULT_INVALID_INPUT`,
/// `RM_RESULT_NULL_PARAMETER`, or another code.
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_mailbox_delete(user: *const rm_user, name: *const c_char) -> rm_result {
    // SAFETY: forwarded contract.
    unsafe { user_name_op(user, name, |u, name| u.delete_mailbox(name).map(drop)) }
}

/// Renames the mailbox `old_name` and every mailbox below it to `new_name`, atomically.
/// `old_name` may be no mailbox itself but have mailboxes below it (IMAP `\NoSelect`):
/// they are renamed, in the same one update.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NOT_FOUND` (neither `old_name` nor anything below it),
/// `RM_RESULT_ALREADY_EXISTS` (a new name exists; nothing changed),
/// `RM_RESULT_INVALID_INPUT` (invalid name, INBOX itself, a new name below the old one),
/// `RM_RESULT_NULL_PARAMETER`, or another code.
///
/// # Safety
/// `user` is a live handle; the names are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_mailbox_rename(
    user: *const rm_user,
    old_name: *const c_char,
    new_name: *const c_char,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let user = unsafe { borrow_handle(user, "user") }?;
        // SAFETY: forwarded contract of this export.
        let old_name = unsafe { str_arg(old_name, "old_name") }?;
        // SAFETY: forwarded contract of this export.
        let new_name = unsafe { str_arg(new_name, "new_name") }?;
        user.user.rename_mailbox(old_name, new_name)?;
        Ok(())
    })
}

/// Lists the mailboxes whose names match the IMAP LIST `pattern` (`*` any run of
/// characters, `%` any run without '/'; "" matches nothing), calling `cb(userdata, name,
/// name_len)` once per mailbox, sorted by name.
///
/// The whole list is read first: `cb` is called only when the call succeeds, and never
/// after it returns. `cb` must not unwind (C++ exceptions, `longjmp`) into this library.
/// `userdata` may be NULL.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER` (`user`, `pattern` or `cb` NULL),
/// `RM_RESULT_INVALID_INPUT` (pattern not UTF-8), or another code.
///
/// # Safety
/// `user` is a live handle; `pattern` is NUL-terminated; `cb` is safe to call with
/// `userdata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_mailbox_list(
    user: *const rm_user,
    pattern: *const c_char,
    cb: rm_name_callback,
    userdata: *mut c_void,
) -> rm_result {
    // SAFETY: forwarded contract.
    unsafe {
        user_pattern_names(user, pattern, cb, userdata, |u, p| {
            Ok(u.list_mailboxes(p)?.into_iter().map(|info| info.name).collect())
        })
    }
}

/// Subscribes to the mailbox `name` (which need not exist, as IMAP allows); subscribing
/// twice is not an error.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_INVALID_INPUT` (invalid name),
/// `RM_RESULT_NULL_PARAMETER`, or another code.
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_subscribe(user: *const rm_user, name: *const c_char) -> rm_result {
    // SAFETY: forwarded contract.
    unsafe { user_name_op(user, name, |u, name| u.subscribe(name).map(drop)) }
}

/// Removes the subscription of `name`; not an error if it was not subscribed.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_INVALID_INPUT`, `RM_RESULT_NULL_PARAMETER`, or
/// another code.
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_unsubscribe(user: *const rm_user, name: *const c_char) -> rm_result {
    // SAFETY: forwarded contract.
    unsafe { user_name_op(user, name, |u, name| u.unsubscribe(name).map(drop)) }
}

/// Calls `cb(userdata, name, name_len)` for each subscribed name matching the IMAP LIST
/// `pattern` (as in [`rm_user_mailbox_list`]), sorted; same callback rules.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_INVALID_INPUT`, or
/// another code.
///
/// # Safety
/// `user` is a live handle; `pattern` is NUL-terminated; `cb` is safe to call with
/// `userdata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_subscriptions(
    user: *const rm_user,
    pattern: *const c_char,
    cb: rm_name_callback,
    userdata: *mut c_void,
) -> rm_result {
    // SAFETY: forwarded contract.
    unsafe { user_pattern_names(user, pattern, cb, userdata, |u, p| u.subscriptions(p)) }
}

/// Replaces the special-use attributes (RFC 6154) of the mailbox `name` with
/// `attrs[0..n_attrs]` (each one of `\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`,
/// `\Sent`, `\Trash`, any case; `n_attrs` 0 removes them all; `attrs` may then be NULL).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NOT_FOUND`, `RM_RESULT_INVALID_INPUT` (unknown
/// attribute, invalid name), `RM_RESULT_NULL_PARAMETER`, or another code.
///
/// # Safety
/// `user` is a live handle; `name` and the `n_attrs` strings of `attrs` are
/// NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_mailbox_set_special_use(
    user: *const rm_user,
    name: *const c_char,
    attrs: *const *const c_char,
    n_attrs: usize,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let user = unsafe { borrow_handle(user, "user") }?;
        // SAFETY: forwarded contract of this export.
        let name = unsafe { str_arg(name, "name") }?;
        // SAFETY: forwarded contract of this export.
        let attrs = unsafe { slice_arg(attrs, n_attrs, "attrs") }?;
        let attrs = attrs
            .iter()
            // SAFETY: each pointer is a NUL-terminated string per the contract.
            .map(|&a| unsafe { str_arg(a, "attrs[i]") })
            .collect::<Result<Vec<_>, _>>()?;
        user.user.set_special_use(name, &attrs)?;
        Ok(())
    })
}

/// Calls `cb(userdata, attr, attr_len)` for each special-use attribute of the mailbox
/// `name`, in canonical spelling (`\Sent`) and order; same callback rules as
/// [`rm_user_mailbox_list`].
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_NOT_FOUND`, `RM_RESULT_INVALID_INPUT`,
/// `RM_RESULT_NULL_PARAMETER`, or another code.
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated; `cb` is safe to call with
/// `userdata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_mailbox_special_use(
    user: *const rm_user,
    name: *const c_char,
    cb: rm_name_callback,
    userdata: *mut c_void,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let user = unsafe { borrow_handle(user, "user") }?;
        // SAFETY: forwarded contract of this export.
        let name = unsafe { str_arg(name, "name") }?;
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        let info = user.user.mailbox_info(name)?;
        // SAFETY: the caller vouches for `cb` and `userdata`.
        unsafe { call_names(cb, userdata, &info.special_use) }
    })
}

/// The body of the exports that take a user and one mailbox name and return nothing
/// else: borrows both, runs `op`.
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated.
unsafe fn user_name_op(
    user: *const rm_user,
    name: *const c_char,
    op: impl FnOnce(&User, &str) -> rados_mail::Result<()>,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let user = unsafe { borrow_handle(user, "user") }?;
        // SAFETY: forwarded contract.
        let name = unsafe { str_arg(name, "name") }?;
        op(&user.user, name)?;
        Ok(())
    })
}

/// The body of the exports that list names matching a pattern: borrows the arguments,
/// reads the whole list with `list`, then calls `cb` once per name.
///
/// # Safety
/// `user` is a live handle; `pattern` is NUL-terminated; `cb` is safe to call with
/// `userdata`.
unsafe fn user_pattern_names(
    user: *const rm_user,
    pattern: *const c_char,
    cb: rm_name_callback,
    userdata: *mut c_void,
    list: impl FnOnce(&User, &str) -> rados_mail::Result<Vec<String>>,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let user = unsafe { borrow_handle(user, "user") }?;
        // SAFETY: forwarded contract.
        let pattern = unsafe { str_arg(pattern, "pattern") }?;
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        let names = list(&user.user, pattern)?;
        // SAFETY: the caller vouches for `cb` and `userdata`.
        unsafe { call_names(cb, userdata, &names) }
    })
}
