//! The object-store layer of rados-mail.
//!
//! All RADOS I/O of the project goes through the [`ObjectStore`] trait: a narrow,
//! namespace-scoped view of one pool with RADOS semantics — byte data, xattrs, omap
//! key-values, object versions, and atomic compound operations with guards
//! ([`WriteOp`], [`ReadOp`]). Two backends implement it with the same semantics:
//!
//! * the `librados` crate of this workspace (the real one, what users run), and
//! * [`MemoryStore`] here, for fast unit and property tests and as a quick-start default.
//!
//! Clients of one object push events to each other with watch and notify
//! ([`ObjectStore::watch`], [`ObjectStore::notify`]; see [`WatchEvent`]).
//!
//! [`FaultyStore`] wraps any backend and injects failures (broken watches and failing
//! notifies included), [`CountingStore`] counts round trips, and [`conformance`] holds the
//! one suite of behaviour cases that every backend must pass.
//!
//! ```
//! use objstore::{CmpOp, MemoryStore, ObjectStore, WriteOp};
//!
//! let store = MemoryStore::new("alice");
//! store.write_op("counter", &WriteOp::new().create_exclusive().omap_set([("n", b"1")]))?;
//! // Compare-and-swap: only applies if nobody changed "n" meanwhile.
//! store.write_op(
//!     "counter",
//!     &WriteOp::new().omap_cmp("n", CmpOp::Eq, *b"1").omap_set([("n", b"2")]),
//! )?;
//! assert_eq!(store.omap_get("counter", &["n"])?["n"], b"2");
//! # Ok::<(), objstore::Error>(())
//! ```

pub mod conformance;
mod counting;
mod error;
mod fault;
mod memory;
mod op;
mod watch;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub use counting::{ByteCounts, CountingStore, OpCounts};
pub use error::{Error, Result};
pub use fault::{FaultMode, FaultyStore};
pub use futures::future::BoxFuture;
pub use memory::MemoryStore;
pub use op::{
    CmpOp, Guard, MAX_OID_LEN, MAX_READ, MAX_WRITE, MAX_XATTR_NAME_LEN, Mutation, OMAP_PAGE_MAX, OmapPage, OmapRange,
    ReadOp, ReadResult, Stat, WriteOp, check_namespace, check_oid,
};
pub use watch::{NotifyDone, WatchCallback, WatchEvent, WatchHandle, watch_broken};

/// An iterator over object names.
pub type ObjectIter<'a> = Box<dyn Iterator<Item = Result<String>> + Send + 'a>;

/// Every object of a pool as `(namespace, name)` pairs, from [`ObjectStore::list_pool`].
pub type PoolIter<'a> = Box<dyn Iterator<Item = Result<(String, String)>> + Send + 'a>;

/// Size of the first read of [`ObjectStore::read_full`]; larger objects take a second read.
const READ_FULL_FIRST: u64 = 1 << 20;

/// One namespace of one pool, with RADOS semantics.
///
/// Implementations are cheap to share (`Arc<dyn ObjectStore>`) and safe to call from many
/// threads at once. The required methods are the primitives; everything else is provided on
/// top of them, so every backend behaves the same for the conveniences.
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// The namespace this handle reads and writes ("" is the pool's default namespace).
    fn namespace(&self) -> &str;

    /// A handle on another namespace of the same pool, sharing the connection.
    fn with_namespace(&self, namespace: &str) -> Result<Arc<dyn ObjectStore>>;

    /// Applies a compound write atomically and returns the object's new version.
    fn write_op(&self, oid: &str, op: &WriteOp) -> Result<u64>;

    /// Performs a compound read in one round trip.
    fn read_op(&self, oid: &str, op: &ReadOp) -> Result<ReadResult>;

    /// [`ObjectStore::write_op`] without blocking: the returned future completes when the
    /// cluster acknowledged the write. Backends bound the number of operations in flight.
    fn write_op_async(&self, oid: &str, op: WriteOp) -> BoxFuture<'static, Result<u64>>;

    /// [`ObjectStore::read_op`] without blocking.
    fn read_op_async(&self, oid: &str, op: ReadOp) -> BoxFuture<'static, Result<ReadResult>>;

    /// Lists the names of the objects in this namespace (in no particular order).
    fn list_objects(&self) -> Result<ObjectIter<'_>>;

    /// Lists the namespaces of the pool that hold at least one object (sorted). This walks
    /// the whole pool on RADOS: an operator tool, not a data-path call.
    fn list_namespaces(&self) -> Result<Vec<String>>;

    /// Lists every object of the pool, in every namespace, as `(namespace, name)` pairs in
    /// no particular order: one walk of the pool (RADOS: one listing with
    /// `LIBRADOS_ALL_NSPACES`), for operator tools that visit every user. The default lists
    /// each namespace in turn; backends override it with a single walk.
    fn list_pool(&self) -> Result<PoolIter<'_>> {
        let mut all = Vec::new();
        for ns in self.list_namespaces()? {
            let store = self.with_namespace(&ns)?;
            for name in store.list_objects()? {
                all.push(Ok((ns.clone(), name?)));
            }
        }
        Ok(Box::new(all.into_iter()))
    }

    /// Watches `oid` (which must exist: [`Error::NotFound`] otherwise): `callback` gets every
    /// notify sent on it from now on, and [`WatchEvent::Error`] once if the watch breaks.
    /// Dropping the returned handle unwatches. One round trip (RADOS: `rados_watch2`).
    fn watch(&self, oid: &str, callback: WatchCallback) -> Result<Box<dyn WatchHandle>>;

    /// Sends `payload` to every watcher of `oid`, fire-and-forget: returns as soon as the
    /// notify is submitted, never waiting for the watchers; `done`, if given, hears how it
    /// ended (see [`NotifyDone`]). One operation (RADOS: `rados_aio_notify` with a short
    /// timeout).
    fn notify(&self, oid: &str, payload: &[u8], done: Option<NotifyDone>);

    // ---- Provided conveniences, built on the primitives above. ----

    /// [`ObjectStore::notify`] whose outcome is a future (the notify is sent at once,
    /// whether the future is polled or not).
    fn notify_async(&self, oid: &str, payload: &[u8]) -> BoxFuture<'static, Result<()>> {
        let (tx, rx) = futures::channel::oneshot::channel();
        self.notify(oid, payload, Some(Box::new(move |r| drop(tx.send(r)))));
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err(Error::Unavailable("notify outcome lost".into()))) })
    }

    /// Size, mtime and version of an object.
    fn stat(&self, oid: &str) -> Result<(Stat, u64)> {
        let r = self.read_op(oid, &ReadOp::new().stat())?;
        Ok((r.stat.expect("stat requested"), r.version))
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of the object).
    fn read(&self, oid: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let r = self.read_op(oid, &ReadOp::new().read(offset, len))?;
        Ok(r.data.unwrap_or_default())
    }

    /// Reads a whole object (at most [`MAX_READ`] bytes; stream larger ones with
    /// [`ObjectStore::read`]). Returns the data and the version it was read at.
    fn read_full(&self, oid: &str) -> Result<(Vec<u8>, u64)> {
        let first = self.read_op(oid, &ReadOp::new().stat().read(0, READ_FULL_FIRST))?;
        let size = first.stat.expect("stat requested").size;
        let mut data = first.data.unwrap_or_default();
        if size > data.len() as u64 {
            if size > MAX_READ {
                return Err(Error::TooLarge(format!("object {oid:?} has {size} bytes; read it in ranges")));
            }
            let have = data.len() as u64;
            let op = ReadOp::new().assert_version(first.version).read(have, size - have);
            let rest = self.read_op(oid, &op)?;
            data.extend_from_slice(&rest.data.unwrap_or_default());
        }
        Ok((data, first.version))
    }

    /// Replaces an object's data (creating it if needed); returns the new version.
    fn write_full(&self, oid: &str, data: &[u8]) -> Result<u64> {
        self.write_op(oid, &WriteOp::new().write_full(data))
    }

    /// Removes an object; [`Error::NotFound`] if it does not exist.
    fn remove(&self, oid: &str) -> Result<()> {
        self.write_op(oid, &WriteOp::new().remove()).map(drop)
    }

    /// One xattr's value.
    fn get_xattr(&self, oid: &str, name: &str) -> Result<Vec<u8>> {
        let mut all = self.xattrs(oid)?;
        all.remove(name).ok_or_else(|| Error::XattrNotFound { object: oid.into(), name: name.into() })
    }

    /// All xattrs of an object.
    fn xattrs(&self, oid: &str) -> Result<BTreeMap<String, Vec<u8>>> {
        Ok(self.read_op(oid, &ReadOp::new().xattrs())?.xattrs.unwrap_or_default())
    }

    /// Sets one xattr (creating the object if needed).
    fn set_xattr(&self, oid: &str, name: &str, value: &[u8]) -> Result<u64> {
        self.write_op(oid, &WriteOp::new().set_xattr(name, value))
    }

    /// Values of the given omap keys; missing keys are absent from the map.
    fn omap_get(&self, oid: &str, keys: &[&str]) -> Result<BTreeMap<String, Vec<u8>>> {
        let r = self.read_op(oid, &ReadOp::new().omap_get(keys.iter().copied()))?;
        Ok(r.omap.unwrap_or_default())
    }

    /// One page of omap entries after `start_after` that begin with `prefix`.
    fn omap_range(&self, oid: &str, start_after: &str, prefix: &str, max: usize) -> Result<OmapPage> {
        let r = self.read_op(oid, &ReadOp::new().omap_range(start_after, prefix, max))?;
        Ok(r.omap_page.unwrap_or_default())
    }

    /// Every omap entry that begins with `prefix`, paging as needed.
    fn omap_all(&self, oid: &str, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        let mut after = String::new();
        loop {
            let page = self.omap_range(oid, &after, prefix, OMAP_PAGE_MAX)?;
            if let Some((k, _)) = page.entries.last() {
                after = k.clone();
            }
            let done = !page.more || page.entries.is_empty();
            out.extend(page.entries);
            if done {
                return Ok(out);
            }
        }
    }

    /// Sets omap entries (creating the object if needed).
    fn omap_set(&self, oid: &str, entries: &[(&str, &[u8])]) -> Result<u64> {
        self.write_op(oid, &WriteOp::new().omap_set(entries.iter().map(|(k, v)| (*k, v.to_vec()))))
    }

    /// Removes omap keys (missing keys are ignored; the object must exist).
    fn omap_rm_keys(&self, oid: &str, keys: &[&str]) -> Result<u64> {
        self.write_op(oid, &WriteOp::new().omap_rm_keys(keys.iter().copied()))
    }
}
