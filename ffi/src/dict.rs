//! `rm_dict` and `rm_dict_txn`: Dovecot-style dicts in omap (the backend of the Dovecot
//! dict driver `rados`: `mail_attribute_dict`, `quota = dict:`).
//!
//! Keys are Dovecot's full keys: `priv/<path>` (the user's private dict, in the user's
//! namespace) or `shared/<path>` (the shared dict, in the shared namespace). One handle
//! serves both and routes each key by its prefix.

use std::ffi::{CString, c_char, c_void};

use rados_mail::dict::{Committed, Dict, Scope, Transaction};

use crate::error::{Failure, rm_result};
use crate::ffi::{
    BoxHandle, Out, borrow_handle, borrow_handle_mut, into_handle, opt_str_arg, slice_arg, str_arg, take_handle,
};
use crate::panic::{ffi_call, ffi_void};
use crate::store::rm_store;

/// The dicts of one user (private keys) and the shared dict.
///
/// Thread-safe: one `rm_dict` may be used from many threads at once; it does not borrow
/// the `rm_store` it came from. Free it with [`rm_dict_free`].
pub struct rm_dict {
    _private: [u8; 0],
}

impl BoxHandle for rm_dict {
    type Rust = DictHandle;
}

/// What an `rm_dict` holds.
pub(crate) struct DictHandle {
    /// `None` when opened without a user: `priv/` keys are refused.
    private: Option<Dict>,
    shared: Dict,
}

impl DictHandle {
    /// The dict that holds `key`.
    fn route(&self, key: &str) -> Result<&Dict, Failure> {
        if key.starts_with(Scope::Shared.prefix()) || key == "shared" {
            Ok(&self.shared)
        } else if key.starts_with(Scope::Private.prefix()) || key == "priv" {
            self.private
                .as_ref()
                .ok_or_else(|| Failure::invalid(format!("dict key {key:?}: no user, so no priv/ keys")))
        } else {
            Err(Failure::invalid(format!("dict key {key:?}: must start with priv/ or shared/")))
        }
    }
}

/// Changes to the dicts, applied at [`rm_dict_txn_commit`].
///
/// Not thread-safe: one thread at a time. Free it with [`rm_dict_txn_free`] (which rolls
/// back a transaction not committed). It does not borrow its `rm_dict`.
pub struct rm_dict_txn {
    _private: [u8; 0],
}

impl BoxHandle for rm_dict_txn {
    type Rust = TxnHandle;
}

/// What an `rm_dict_txn` holds: one transaction per scope, `None` once committed.
pub(crate) struct TxnHandle {
    dict: DictHandle,
    parts: Option<(Option<Transaction>, Option<Transaction>)>,
}

/// Called by [`rm_dict_lookup`] with the value: `len` bytes at `value`, followed by a NUL
/// byte that `len` does not count (so text values can be used as C strings); valid during
/// the call only.
pub type rm_value_callback = Option<unsafe extern "C" fn(userdata: *mut c_void, value: *const u8, len: usize)>;

/// Called by [`rm_dict_iterate`] once per entry: the key (NUL-terminated, `key_len` bytes)
/// and the value (`value_len` bytes, followed by a NUL not counted); valid during the call
/// only.
pub type rm_entry_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, key: *const c_char, key_len: usize, value: *const u8, value_len: usize),
>;

/// Opens the dicts of user `user` (NUL-terminated UTF-8; NULL for the shared dict only)
/// of `store`, in `*out`.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_INVALID_INPUT` (invalid user name),
/// `RM_RESULT_NULL_PARAMETER`, or another code. `*out` is written only on success.
///
/// # Safety
/// `store` is a live handle; `user` is NULL or NUL-terminated; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_dict_open(
    store: *const rm_store,
    user: *const c_char,
    out: *mut *mut rm_dict,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let store = unsafe { borrow_handle(store, "store") }?;
        // SAFETY: forwarded contract of this export.
        let user = unsafe { opt_str_arg(user, "user") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let private = match user {
            Some(name) => Some(store.user(name)?.dict()),
            None => None,
        };
        out.set(into_handle(DictHandle { private, shared: store.shared_dict()? }));
        Ok(())
    })
}

/// Frees a dict handle; NULL is a no-op.
///
/// # Safety
/// `dict` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_dict_free(dict: *mut rm_dict) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(dict) }));
}

/// Looks `key` up: calls `cb(userdata, value, len)` once and returns `RM_RESULT_OK` when it
/// is set; returns `RM_RESULT_NOT_FOUND` (without calling `cb`) when it is not.
///
/// Returns also `RM_RESULT_INVALID_INPUT` (a key not under `priv/` or `shared/`, or
/// `priv/` without a user), `RM_RESULT_NULL_PARAMETER`, a temporary code, or another code.
///
/// # Safety
/// `dict` is a live handle; `key` is NUL-terminated; `cb` is safe to call with `userdata`
/// and does not unwind.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_dict_lookup(
    dict: *const rm_dict,
    key: *const c_char,
    cb: rm_value_callback,
    userdata: *mut c_void,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let d = unsafe { borrow_handle(dict, "dict") }?;
        // SAFETY: forwarded contract of this export.
        let key = unsafe { str_arg(key, "key") }?;
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        let mut value = d
            .route(key)?
            .lookup(key)?
            .ok_or_else(|| Failure::new(rm_result::NotFound, format!("dict key {key:?} not set")))?;
        let len = value.len();
        value.push(0);
        // SAFETY: the caller vouches for `cb`; `value` has `len` bytes and a NUL and
        // outlives the call.
        unsafe { cb(userdata, value.as_ptr(), len) };
        Ok(())
    })
}

/// Calls `cb` for every entry below the path `prefix` (like `priv/quota`; a trailing `/`
/// optional; `priv` or `shared` alone for a whole dict), in key order: only the keys
/// directly below it, or all below it at any depth when `recursive`. Everything is read
/// first: `cb` is not called on failure.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_INVALID_INPUT`, `RM_RESULT_NULL_PARAMETER`, a
/// temporary code, or another code.
///
/// # Safety
/// `dict` is a live handle; `prefix` is NUL-terminated; `cb` is safe to call with
/// `userdata` and does not unwind.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_dict_iterate(
    dict: *const rm_dict,
    prefix: *const c_char,
    recursive: bool,
    cb: rm_entry_callback,
    userdata: *mut c_void,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let d = unsafe { borrow_handle(dict, "dict") }?;
        // SAFETY: forwarded contract of this export.
        let prefix = unsafe { str_arg(prefix, "prefix") }?;
        let cb = cb.ok_or_else(|| Failure::null("cb"))?;
        let entries = d.route(prefix)?.iterate(prefix, recursive)?;
        let entries = entries
            .into_iter()
            .map(|(k, mut v)| {
                let len = v.len();
                v.push(0);
                CString::new(k).map(|k| (k, v, len)).map_err(|e| Failure::invalid(format!("dict key with NUL: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (k, v, len) in &entries {
            // SAFETY: the caller vouches for `cb`; the buffers outlive the call.
            unsafe { cb(userdata, k.as_ptr(), k.as_bytes().len(), v.as_ptr(), *len) };
        }
        Ok(())
    })
}

/// Begins a transaction on `dict`, in `*out`. Nothing is written before
/// [`rm_dict_txn_commit`].
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `dict` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_dict_txn_begin(dict: *const rm_dict, out: *mut *mut rm_dict_txn) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let d = unsafe { borrow_handle(dict, "dict") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let dict = DictHandle { private: d.private.clone(), shared: d.shared.clone() };
        out.set(into_handle(TxnHandle { dict, parts: Some((None, None)) }));
        Ok(())
    })
}

/// Runs `f` on the transaction of the scope of `key`.
///
/// # Safety
/// `txn` is a live handle not used concurrently; `key` is NUL-terminated.
unsafe fn with_txn(
    txn: *mut rm_dict_txn,
    key: *const c_char,
    f: impl FnOnce(&mut Transaction, &str) -> Result<(), Failure>,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let t = unsafe { borrow_handle_mut(txn, "txn") }?;
        // SAFETY: forwarded contract.
        let key = unsafe { str_arg(key, "key") }?;
        let dict = t.dict.route(key)?.clone();
        let (private, shared) =
            t.parts.as_mut().ok_or_else(|| Failure::invalid("dict transaction already committed".to_string()))?;
        let part = match dict.scope() {
            Scope::Private => private,
            Scope::Shared => shared,
        };
        f(part.get_or_insert_with(|| dict.transaction()), key)
    })
}

/// Sets `key` to `value[0..len]` in the transaction (`value` may be NULL when `len` is 0).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_INVALID_INPUT` (invalid key — the transaction then
/// cannot commit —, or already committed), or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `txn` is a live handle not used concurrently; `key` is NUL-terminated; `value` holds
/// `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_dict_txn_set(
    txn: *mut rm_dict_txn,
    key: *const c_char,
    value: *const u8,
    len: usize,
) -> rm_result {
    // SAFETY: forwarded contract (the value is checked inside the boundary below).
    unsafe {
        with_txn(txn, key, |t, key| {
            // SAFETY: forwarded contract of this export.
            let value = slice_arg(value, len, "value")?;
            Ok(t.set(key, value)?)
        })
    }
}

/// Unsets `key` in the transaction (not an error if it is not set).
///
/// Returns as [`rm_dict_txn_set`].
///
/// # Safety
/// `txn` is a live handle not used concurrently; `key` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_dict_txn_unset(txn: *mut rm_dict_txn, key: *const c_char) -> rm_result {
    // SAFETY: forwarded contract.
    unsafe { with_txn(txn, key, |t, key| Ok(t.unset(key)?)) }
}

/// Adds `delta` to the decimal counter `key` at commit, atomically. As in Dovecot, only
/// a key that is set changes: an unset one stays unset and the commit reports it
/// (`*out_not_found`).
///
/// Returns as [`rm_dict_txn_set`].
///
/// # Safety
/// `txn` is a live handle not used concurrently; `key` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_dict_txn_atomic_inc(txn: *mut rm_dict_txn, key: *const c_char, delta: i64) -> rm_result {
    // SAFETY: forwarded contract.
    unsafe { with_txn(txn, key, |t, key| Ok(t.atomic_inc(key, delta)?)) }
}

/// Commits the transaction: its `priv/` changes in one atomic write, its `shared/` changes
/// in another (a transaction that touches both scopes is atomic per scope only; the
/// private part is written first). A shared dict spread over shard objects (pool format 2)
/// takes one atomic write per shard the `shared/` changes touch: each key is always old or
/// new, but another reader may see some of them applied before the others (docs/FORMAT.md,
/// "Dicts"). `*out_not_found` (may be NULL) becomes true when an
/// `atomic_inc` found its key unset (Dovecot's `DICT_COMMIT_RET_NOTFOUND`); the rest was
/// applied.
///
/// Afterwards the handle only accepts [`rm_dict_txn_free`]; committing twice fails with
/// `RM_RESULT_INVALID_INPUT`.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_INVALID_INPUT` (an operation was refused, a counter
/// is not a number), `RM_RESULT_TOO_LARGE`, `RM_RESULT_CONFLICT` / `RM_RESULT_UNAVAILABLE`
/// (temporary: nothing applied, or for `UNAVAILABLE` possibly applied), or another code. On
/// failure nothing is reported as applied: never "OK" on failure.
///
/// # Safety
/// `txn` is a live handle not used concurrently; `out_not_found` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_dict_txn_commit(txn: *mut rm_dict_txn, out_not_found: *mut bool) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let t = unsafe { borrow_handle_mut(txn, "txn") }?;
        let (private, shared) =
            t.parts.take().ok_or_else(|| Failure::invalid("dict transaction already committed".to_string()))?;
        let mut not_found = false;
        for part in [private, shared].into_iter().flatten() {
            not_found |= part.commit()? == Committed::CounterNotFound;
        }
        if !out_not_found.is_null() {
            // SAFETY: non-NULL and writable per the contract.
            unsafe { out_not_found.write(not_found) };
        }
        Ok(())
    })
}

/// Frees a transaction, rolling it back if it was not committed; NULL is a no-op.
///
/// # Safety
/// `txn` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_dict_txn_free(txn: *mut rm_dict_txn) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(txn) }));
}
