//! `rm_config`: a store's settings as `key = value` strings, and opening a store from them.

use std::ffi::c_char;

use rados_mail::settings::Settings;

use crate::error::rm_result;
use crate::ffi::{BoxHandle, Out, borrow_handle, borrow_handle_mut, into_handle, str_arg, take_handle};
use crate::panic::{ffi_call, ffi_void};
use crate::store::rm_store;

/// Settings of a store, filled with [`rm_config_set`] and used by [`rm_store_open`].
///
/// Not thread-safe while being set; [`rm_store_open`] only reads it, so one finished
/// `rm_config` may be opened from several threads. Free it with [`rm_config_free`] (the
/// stores opened from it do not borrow it).
pub struct rm_config {
    _private: [u8; 0],
}

impl BoxHandle for rm_config {
    type Rust = Settings;
}

/// A new `rm_config` with every setting at its default, in `*out`.
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_config_new(out: *mut *mut rm_config) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let out = unsafe { Out::new(out, "out") }?;
        out.set(into_handle(Settings::default()));
        Ok(())
    })
}

/// Sets the setting `key` to `value` (both NUL-terminated UTF-8). The keys, as in the
/// Dovecot plugin's `rados_*` settings without the prefix:
/// - `backend`: `rados` (default) or `memory` (a private in-memory store, for tests);
/// - `conf`: path of `ceph.conf` (default: `CEPH_CONF` or Ceph's search path);
/// - `keyring`: path of the keyring (default: what `ceph.conf` names);
/// - `client_name`: full client name (default `client.admin`);
/// - `pool`: pool of the mail data (default `mail`);
/// - `namespace_prefix`: namespaces are `<prefix>/<user>` (`<user>` when empty); no '/';
/// - `timeout`: seconds (`30`, `30s`, `2m`) after which connecting or a cluster operation
///   fails with `RM_RESULT_UNAVAILABLE` (default 30; `0` waits forever: avoid);
/// - `max_mail_size`: largest mail accepted (default `100M`);
/// - `max_keywords`: distinct keywords a mailbox may hold (default `1000`);
/// - `max_mailboxes`: mailboxes a user may have, and names a user may subscribe to;
///   creating or subscribing to one more fails with `RM_RESULT_TOO_LARGE` (default `10000`);
/// - `max_body_references`: references one body may carry; a copy past it stores a new
///   body (default `1000`);
/// - `max_dict_keys`: keys a user's private dict may hold; a commit setting more fails
///   with `RM_RESULT_TOO_LARGE` and sets nothing (default `50000`);
/// - `cache_memory`, `cache_max_item`: memory tier of the body cache and its largest item
///   (defaults `64M`, `1M`);
/// - `cache_disk_dir`, `cache_disk`: directory and bound of the disk tier (default: no
///   disk tier; `1G`);
/// - `read_in_flight`: body reads [`rm_mailbox_prefetch`](crate::body::rm_mailbox_prefetch)
///   keeps in flight at once (default 16);
/// - `notify`: `yes` (default) or `no`: notify watchers (`rm_watch`, other processes) of
///   every commit and mailbox list change.
///
/// Sizes are bytes with an optional `k`/`M`/`G`/`T` suffix (powers of 1024).
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_INVALID_INPUT` (unknown key, malformed value, not
/// UTF-8; the config is then unchanged), or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `cfg` is a live handle not used concurrently; `key` and `value` are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_config_set(cfg: *mut rm_config, key: *const c_char, value: *const c_char) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let cfg = unsafe { borrow_handle_mut(cfg, "cfg") }?;
        // SAFETY: forwarded contract of this export.
        let key = unsafe { str_arg(key, "key") }?;
        // SAFETY: forwarded contract of this export.
        let value = unsafe { str_arg(value, "value") }?;
        cfg.set(key, value)?;
        Ok(())
    })
}

/// Frees a config; NULL is a no-op.
///
/// # Safety
/// `cfg` is NULL or a live handle, not used afterwards nor concurrently with this call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_config_free(cfg: *mut rm_config) {
    // SAFETY: forwarded contract.
    ffi_void(|| drop(unsafe { take_handle(cfg) }));
}

/// Opens the store `cfg` describes, in `*out` (free it with
/// [`crate::store::rm_store_free`]): connects to the cluster, bounded by the `timeout`
/// setting, or makes a new in-memory store.
///
/// Returns `RM_RESULT_OK`, `RM_RESULT_UNAVAILABLE` (cluster unreachable),
/// `RM_RESULT_NULL_PARAMETER`, `RM_RESULT_INVALID_INPUT` (the cache directory cannot be
/// made), or another code with a message. `*out` is written only on success.
///
/// # Safety
/// `cfg` is a live handle not being set concurrently; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_store_open(cfg: *const rm_config, out: *mut *mut rm_store) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let cfg = unsafe { borrow_handle(cfg, "cfg") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let started = std::time::Instant::now();
        let store = cfg.open()?;
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "store opened");
        out.set(into_handle::<rm_store>(store));
        Ok(())
    })
}
