//! `rm_store`: a mail store on one RADOS pool, or in memory.

use std::ffi::c_char;
use std::path::PathBuf;
use std::time::Duration;

use rados_mail::{Config, MailStore};

use crate::error::rm_result;
use crate::ffi::{BoxHandle, Out, borrow_handle, into_handle, opt_str_arg, take_handle};
use crate::panic::{ffi_call, ffi_void};

/// A mail store: a connection to one RADOS pool (or an in-memory store).
///
/// Thread-safe: one `rm_store` may be used from many threads at once. Handles opened from
/// it (`rm_user`) do not borrow it: they may outlive it, and the connection stays up until
/// the last of them is freed.
pub struct rm_store {
    _private: [u8; 0],
}

impl BoxHandle for rm_store {
    type Rust = MailStore;
}

/// Connects to a Ceph cluster and returns a store on `pool` in `*out`.
///
/// Every string is NUL-terminated UTF-8 and may be NULL for its default:
/// - `conf_path`: `ceph.conf` to read; NULL uses `CEPH_CONF` or Ceph's search path;
/// - `keyring`: keyring file; NULL uses the one the configuration names;
/// - `client_name`: full client name; NULL means `"client.admin"`;
/// - `pool`: the pool of the mail data; NULL means `"mail"`.
///
/// `timeout_secs`: seconds after which connecting or any cluster operation fails with
/// `RM_RESULT_UNAVAILABLE`; 0 means the default, 30 seconds.
///
/// Returns `RM_RESULT_OK` (and a handle to free with [`rm_store_free`]),
/// `RM_RESULT_NULL_PARAMETER` (`out` NULL), `RM_RESULT_INVALID_INPUT` (a string is not
/// UTF-8), `RM_RESULT_UNAVAILABLE` (cluster unreachable), or another code with a message
/// from [`crate::error::rm_last_error_message`]. `*out` is written only on success.
///
/// # Safety
/// Non-NULL strings are NUL-terminated; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_store_connect(
    conf_path: *const c_char,
    keyring: *const c_char,
    client_name: *const c_char,
    pool: *const c_char,
    timeout_secs: u32,
    out: *mut *mut rm_store,
) -> rm_result {
    /// Operation timeout used when `timeout_secs` is 0.
    const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let conf_path = unsafe { opt_str_arg(conf_path, "conf_path") }?;
        // SAFETY: forwarded contract of this export.
        let keyring = unsafe { opt_str_arg(keyring, "keyring") }?;
        // SAFETY: forwarded contract of this export.
        let client_name = unsafe { opt_str_arg(client_name, "client_name") }?;
        // SAFETY: forwarded contract of this export.
        let pool = unsafe { opt_str_arg(pool, "pool") }?;
        // SAFETY: forwarded contract.
        let out = unsafe { Out::new(out, "out") }?;
        let mut cluster = librados::ClusterConfig {
            conf_path: conf_path.map(PathBuf::from),
            keyring: keyring.map(PathBuf::from),
            op_timeout: Some(if timeout_secs == 0 {
                DEFAULT_TIMEOUT
            } else {
                Duration::from_secs(timeout_secs.into())
            }),
            ..librados::ClusterConfig::default()
        };
        if let Some(name) = client_name {
            cluster.client_name = name.to_string();
        }
        if let Some(pool) = pool {
            cluster.pool = pool.to_string();
        }
        let store = MailStore::connect(&cluster, Config::default())?;
        out.set(into_handle(store));
        Ok(())
    })
}

/// A new, empty store in memory (for tests and trying things out), in `*out`. Each call
/// makes a separate store; its contents are lost when the last handle on it is freed.
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_store_new_in_memory(out: *mut *mut rm_store) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract.
        let out = unsafe { Out::new(out, "out") }?;
        out.set(into_handle(MailStore::in_memory(Config::default())));
        Ok(())
    })
}

/// Frees a store handle; NULL is a no-op.
///
/// # Safety
/// `store` is NULL or a handle from this library not freed before; it must not be used
/// afterwards (nor concurrently with this call).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_store_free(store: *mut rm_store) {
    ffi_void(|| {
        // SAFETY: forwarded contract.
        drop(unsafe { take_handle(store) });
        // Operations, notifies and unwatches still in flight must end before the process
        // does (a run-out wait is logged and counted by librados).
        librados::quiesce(librados::QUIESCE_TIMEOUT);
    });
}

/// Counters of a store since it was opened ([`rm_store_stats`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct rm_stats {
    /// Body lookups answered from the memory cache.
    pub cache_memory_hits: u64,
    /// Body lookups answered from the disk cache.
    pub cache_disk_hits: u64,
    /// Body lookups answered by neither cache tier.
    pub cache_misses: u64,
    /// Body bytes in the memory cache now.
    pub cache_memory_bytes: u64,
    /// File bytes in the disk cache now.
    pub cache_disk_bytes: u64,
    /// Cache entries dropped because they were corrupt.
    pub cache_corrupt_dropped: u64,
    /// RADOS read operations (reads, stats, omap and xattr reads).
    pub rados_reads: u64,
    /// RADOS write operations (every compound write counts once).
    pub rados_writes: u64,
    /// RADOS object listings.
    pub rados_lists: u64,
    /// Guarded writes refused because another process had changed the object first (each
    /// followed by a retry, or counted in `retries_exhausted` too).
    pub guard_failures: u64,
    /// Operations that gave up with `RM_RESULT_CONFLICT` after every attempt.
    pub retries_exhausted: u64,
    /// Notifies sent: one per mailbox head write (every commit), one per mailbox list
    /// change.
    pub notifies_sent: u64,
    /// Notifies that failed or that not every watcher acknowledged in time (their commits
    /// succeeded all the same).
    pub notify_failures: u64,
    /// Watches (`rm_watch`) that broke: `RM_WATCH_LOST` was reported.
    pub watch_errors: u64,
    /// Broken watches established again.
    pub rewatches: u64,
    /// Payload bytes returned by RADOS reads (object data, xattrs, omap keys and values).
    pub rados_bytes_read: u64,
    /// Payload bytes sent by RADOS writes (object data, xattrs, omap keys and values).
    pub rados_bytes_written: u64,
}

/// The store's counters (body cache and RADOS operations) in `*out`.
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `store` is a live handle; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_store_stats(store: *const rm_store, out: *mut rm_stats) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let store = unsafe { borrow_handle(store, "store") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let s = store.stats();
        out.set(rm_stats {
            cache_memory_hits: s.cache.memory_hits,
            cache_disk_hits: s.cache.disk_hits,
            cache_misses: s.cache.misses,
            cache_memory_bytes: s.cache.memory_bytes,
            cache_disk_bytes: s.cache.disk_bytes,
            cache_corrupt_dropped: s.cache.corrupt_dropped,
            rados_reads: s.rados.reads,
            rados_writes: s.rados.writes,
            rados_lists: s.rados.lists,
            guard_failures: s.retries.guard_failures,
            retries_exhausted: s.retries.exhausted,
            notifies_sent: s.push.notifies,
            notify_failures: s.push.notify_failures,
            watch_errors: s.push.watch_errors,
            rewatches: s.push.rewatches,
            rados_bytes_read: s.bytes.read,
            rados_bytes_written: s.bytes.written,
        });
        Ok(())
    })
}

/// The store's `max_mail_size` in bytes, in `*out`: the largest mail it accepts (what an
/// IMAP server advertises as `APPENDLIMIT`). No RADOS operation.
///
/// Returns `RM_RESULT_OK` or `RM_RESULT_NULL_PARAMETER`.
///
/// # Safety
/// `store` is a live handle; `out` is valid for writing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_store_max_mail_size(store: *const rm_store, out: *mut u64) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let store = unsafe { borrow_handle(store, "store") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        out.set(store.config().max_mail_size);
        Ok(())
    })
}
