//! The in-memory backend: RADOS semantics without a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use futures::future::{self, BoxFuture, FutureExt};

use crate::error::{Error, Result};
use crate::op::{Guard, Mutation, OMAP_PAGE_MAX, OmapPage, ReadOp, ReadResult, Stat, WriteOp, check_namespace};
use crate::watch::{NotifyDone, WatchCallback, WatchEvent, WatchHandle};
use crate::{ObjectIter, ObjectStore, PoolIter, check_oid};

#[derive(Debug, Clone)]
struct Object {
    data: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
    omap: BTreeMap<String, Vec<u8>>,
    version: u64,
    mtime: SystemTime,
}

impl Object {
    fn empty() -> Self {
        Object {
            data: Vec::new(),
            xattrs: BTreeMap::new(),
            omap: BTreeMap::new(),
            version: 0,
            mtime: SystemTime::now(),
        }
    }
}

#[derive(Debug, Default)]
struct Pool {
    /// (namespace, object name) → object.
    objects: BTreeMap<(String, String), Object>,
    /// Pool-wide version counter: like a RADOS placement group's, versions of one object
    /// strictly increase but are not consecutive.
    last_version: u64,
    /// (namespace, object name) → the watches on it.
    watches: BTreeMap<(String, String), Vec<Arc<MemWatch>>>,
}

/// One watch of the in-memory backend.
struct MemWatch {
    callback: WatchCallback,
    /// False once unwatched or broken. Held while the callback runs, so that unwatching
    /// waits for a callback in progress.
    live: Mutex<bool>,
}

impl std::fmt::Debug for MemWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemWatch")
    }
}

impl MemWatch {
    /// Delivers `event` unless the watch is gone; an error ends the watch.
    fn deliver(&self, event: WatchEvent) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if *live {
            if matches!(event, WatchEvent::Error(_)) {
                *live = false;
            }
            (self.callback)(event);
        }
    }
}

/// The handle of a watch on a [`MemoryStore`].
#[derive(Debug)]
struct MemWatchHandle {
    pool: Arc<Mutex<Pool>>,
    key: (String, String),
    watch: Arc<MemWatch>,
}

impl WatchHandle for MemWatchHandle {
    fn oid(&self) -> &str {
        &self.key.1
    }

    fn check(&self) -> Result<()> {
        match *self.watch.live.lock().unwrap_or_else(|e| e.into_inner()) {
            true => Ok(()),
            false => Err(crate::watch_broken(&self.key.1, "the object was removed")),
        }
    }
}

impl Drop for MemWatchHandle {
    fn drop(&mut self) {
        {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(list) = pool.watches.get_mut(&self.key) {
                list.retain(|w| !Arc::ptr_eq(w, &self.watch));
                if list.is_empty() {
                    pool.watches.remove(&self.key);
                }
            }
        }
        // Waits for a callback in progress; none runs afterwards.
        *self.watch.live.lock().unwrap_or_else(|e| e.into_inner()) = false;
    }
}

/// An in-memory object store with the semantics of a RADOS pool: atomic compound operations
/// with guards, omap, xattrs and object versions.
///
/// Handles made with [`ObjectStore::with_namespace`] share the same pool. Everything is lost
/// when the last handle is dropped. One mutex serializes all operations, which makes every
/// compound operation trivially atomic.
///
/// Watches are per (namespace, object) and seen by every handle of the pool, so two
/// handles behave like two clients of one cluster. A notify is delivered on the notifying
/// thread, to every watcher, before [`ObjectStore::notify`] returns; removing a watched
/// object breaks its watches ([`crate::WatchEvent::Error`]), as on RADOS.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    pool: Arc<Mutex<Pool>>,
    namespace: String,
    /// Refuse omap as an erasure-coded RADOS pool does ([`MemoryStore::erasure_coded`]).
    no_omap: bool,
}

impl MemoryStore {
    /// A new, empty pool, seen through `namespace`.
    pub fn new(namespace: &str) -> Self {
        MemoryStore { pool: Arc::default(), namespace: namespace.to_string(), no_omap: false }
    }

    /// A new, empty pool that behaves as an erasure-coded RADOS pool: every operation that
    /// writes or compares omap, and every partial write (at an offset, append, truncate),
    /// fails with [`Error::Unsupported`] and changes nothing (librados answers
    /// `-EOPNOTSUPP`: `librados/tests/erasure.rs`); data and xattrs work as usual. Omap
    /// reads fail too, where a real pool answers them as an empty omap: stricter, so that a
    /// read that could only ever find nothing shows up. Tests put mail
    /// bodies on it to prove that nothing on their path uses omap.
    pub fn erasure_coded(namespace: &str) -> Self {
        MemoryStore { no_omap: true, ..MemoryStore::new(namespace) }
    }

    /// Refuses `what` when this pool is erasure-coded and `uses_omap` (an omap operation or
    /// a partial write).
    fn omap_allowed(&self, oid: &str, uses_omap: bool, what: &str) -> Result<()> {
        if self.no_omap && uses_omap {
            return Err(Error::Unsupported { object: oid.into(), op: what.into() });
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        // A panic while holding the lock cannot leave a half-applied operation behind (ops
        // are applied to a copy first), so a poisoned lock is safe to keep using.
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn key(&self, oid: &str) -> (String, String) {
        (self.namespace.clone(), oid.to_string())
    }

    fn do_write(&self, oid: &str, op: &WriteOp) -> Result<u64> {
        op.validate(oid)?;
        let omap = op.guards.iter().any(|g| matches!(g, Guard::OmapCmp { .. }))
            || op.mutations.iter().any(|m| {
                matches!(
                    m,
                    Mutation::OmapSet(_) | Mutation::OmapRmKeys(_) | Mutation::OmapRmRange { .. } | Mutation::OmapClear
                )
            });
        self.omap_allowed(oid, omap, "omap write")?;
        // An erasure-coded pool without `allow_ec_overwrites` (as in CI) writes whole
        // objects only: a write at an offset, an append or a truncate fails there too.
        let partial = op
            .mutations
            .iter()
            .any(|m| matches!(m, Mutation::Write { .. } | Mutation::Append(_) | Mutation::Truncate(_)));
        self.omap_allowed(oid, partial, "partial write")?;
        let mut pool = self.lock();
        let key = self.key(oid);
        let existing = pool.objects.get(&key);
        let existing_before = existing.is_some();
        check_guards(oid, existing, &op.guards)?;
        let created = op.guards.contains(&Guard::CreateExclusive);
        // Decide whether the whole operation succeeds before touching anything, so that it
        // can then be applied in place (copying a large object for every write is slow).
        let mut exists = existing.is_some() || created;
        for m in &op.mutations {
            exists = check_mutation(oid, exists, m)?;
        }
        pool.last_version += 1;
        let version = pool.last_version;
        let mut obj = pool.objects.remove(&key).or_else(|| created.then(Object::empty));
        for m in &op.mutations {
            apply(&mut obj, m);
        }
        let removed = obj.is_none() && existing_before;
        if let Some(mut o) = obj {
            o.version = version;
            o.mtime = SystemTime::now();
            pool.objects.insert(key.clone(), o);
        }
        // As on RADOS, removing a watched object breaks its watches.
        let broken = if removed { pool.watches.remove(&key).unwrap_or_default() } else { Vec::new() };
        drop(pool);
        for w in broken {
            w.deliver(WatchEvent::Error(crate::watch_broken(oid, "the object was removed")));
        }
        Ok(version)
    }

    fn do_watch(&self, oid: &str, callback: WatchCallback) -> Result<Box<dyn WatchHandle>> {
        check_oid(oid)?;
        let key = self.key(oid);
        let mut pool = self.lock();
        if !pool.objects.contains_key(&key) {
            return Err(Error::NotFound { object: oid.into() });
        }
        let watch = Arc::new(MemWatch { callback, live: Mutex::new(true) });
        pool.watches.entry(key.clone()).or_default().push(watch.clone());
        Ok(Box::new(MemWatchHandle { pool: self.pool.clone(), key, watch }))
    }

    /// Delivers on the calling thread, after the pool lock is released.
    fn do_notify(&self, oid: &str, payload: &[u8]) -> Result<()> {
        check_oid(oid)?;
        let key = self.key(oid);
        let pool = self.lock();
        if !pool.objects.contains_key(&key) {
            return Err(Error::NotFound { object: oid.into() });
        }
        let watchers = pool.watches.get(&key).cloned().unwrap_or_default();
        drop(pool);
        for w in watchers {
            w.deliver(WatchEvent::Notify(payload.to_vec()));
        }
        Ok(())
    }

    fn do_read(&self, oid: &str, op: &ReadOp) -> Result<ReadResult> {
        op.validate(oid)?;
        let omap = op.omap_keys.is_some()
            || op.omap_range.is_some()
            || op.guards.iter().any(|g| matches!(g, Guard::OmapCmp { .. }));
        self.omap_allowed(oid, omap, "omap read")?;
        let pool = self.lock();
        let obj = pool.objects.get(&self.key(oid));
        check_guards(oid, obj, &op.guards)?;
        let obj = obj.ok_or_else(|| Error::NotFound { object: oid.into() })?;
        let mut r = ReadResult { version: obj.version, ..Default::default() };
        if op.stat {
            r.stat = Some(Stat { size: obj.data.len() as u64, mtime: obj.mtime });
        }
        if let Some((off, len)) = op.read {
            let start = (off as usize).min(obj.data.len());
            let end = start.saturating_add(len as usize).min(obj.data.len());
            r.data = Some(obj.data[start..end].to_vec());
        }
        if op.xattrs {
            r.xattrs = Some(obj.xattrs.clone());
        }
        if let Some(keys) = &op.omap_keys {
            let found = keys.iter().filter_map(|k| obj.omap.get(k).map(|v| (k.clone(), v.clone())));
            r.omap = Some(found.collect());
        }
        if let Some(range) = &op.omap_range {
            let max = range.max.min(OMAP_PAGE_MAX);
            use std::ops::Bound;
            let lower = if range.start_after >= range.prefix {
                Bound::Excluded(&range.start_after)
            } else {
                Bound::Included(&range.prefix)
            };
            // Keys sharing a prefix are contiguous in key order.
            let mut matching = obj
                .omap
                .range::<String, _>((lower, Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(&range.prefix))
                .peekable();
            let mut page = OmapPage::default();
            while page.entries.len() < max {
                match matching.next() {
                    Some((k, v)) => page.entries.push((k.clone(), v.clone())),
                    None => break,
                }
            }
            page.more = matching.peek().is_some();
            r.omap_page = Some(page);
        }
        Ok(r)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new("")
    }
}

fn check_guards(oid: &str, obj: Option<&Object>, guards: &[Guard]) -> Result<()> {
    let not_found = || Error::NotFound { object: oid.into() };
    let conflict = |reason: &str| Error::Conflict { object: oid.into(), reason: reason.into() };
    for g in guards {
        match g {
            Guard::AssertExists => {
                obj.ok_or_else(not_found)?;
            }
            Guard::CreateExclusive => {
                if obj.is_some() {
                    return Err(Error::AlreadyExists { object: oid.into() });
                }
            }
            Guard::AssertVersion(v) => {
                let o = obj.ok_or_else(not_found)?;
                if o.version != *v {
                    return Err(conflict("object version differs"));
                }
            }
            Guard::OmapCmp { key, op, value } => {
                let o = obj.ok_or_else(not_found)?;
                let stored = o.omap.get(key).map(Vec::as_slice).unwrap_or_default();
                if !op.holds_signed(stored, value) {
                    return Err(conflict("omap comparison failed"));
                }
            }
            Guard::CmpXattr { name, op, value } => {
                let o = obj.ok_or_else(not_found)?;
                let stored = o.xattrs.get(name).map(Vec::as_slice).unwrap_or_default();
                if !op.holds(stored, value) {
                    return Err(conflict("xattr comparison failed"));
                }
            }
        }
    }
    Ok(())
}

/// Whether `m` can apply to an object that does (`exists`) or does not exist; returns
/// whether it exists afterwards.
fn check_mutation(oid: &str, exists: bool, m: &Mutation) -> Result<bool> {
    match m {
        Mutation::Remove
        | Mutation::OmapRmKeys(_)
        | Mutation::OmapRmRange { .. }
        | Mutation::OmapClear
        | Mutation::RmXattr(_)
            if !exists =>
        {
            Err(Error::NotFound { object: oid.into() })
        }
        Mutation::Remove => Ok(false),
        // RADOS truncates an existing object only; on a missing one it is a no-op.
        Mutation::Truncate(_) | Mutation::OmapRmKeys(_) | Mutation::OmapRmRange { .. } | Mutation::OmapClear => {
            Ok(exists)
        }
        Mutation::RmXattr(_) => Ok(exists),
        _ => Ok(true),
    }
}

/// Applies one mutation (already checked by [`check_mutation`]) to the object.
fn apply(obj: &mut Option<Object>, m: &Mutation) {
    match m {
        Mutation::Remove => *obj = None,
        Mutation::OmapRmKeys(keys) => {
            if let Some(o) = obj {
                keys.iter().for_each(|k| drop(o.omap.remove(k)));
            }
        }
        Mutation::OmapRmRange { start, end } => {
            if let Some(o) = obj {
                let doomed: Vec<String> = o.omap.range(start.clone()..end.clone()).map(|(k, _)| k.clone()).collect();
                doomed.iter().for_each(|k| drop(o.omap.remove(k)));
            }
        }
        Mutation::OmapClear => {
            if let Some(o) = obj {
                o.omap.clear();
            }
        }
        Mutation::Truncate(size) => {
            if let Some(o) = obj {
                o.data.resize(*size as usize, 0);
            }
        }
        Mutation::RmXattr(name) => {
            if let Some(o) = obj {
                o.xattrs.remove(name);
            }
        }
        _ => {
            let o = obj.get_or_insert_with(Object::empty);
            match m {
                Mutation::Create => {}
                Mutation::WriteFull(d) => o.data = d.clone(),
                Mutation::Write { offset, data } => {
                    let off = *offset as usize;
                    if o.data.len() < off + data.len() {
                        o.data.resize(off + data.len(), 0);
                    }
                    o.data[off..off + data.len()].copy_from_slice(data);
                }
                Mutation::Append(d) => o.data.extend_from_slice(d),
                Mutation::SetXattr { name, value } => drop(o.xattrs.insert(name.clone(), value.clone())),
                Mutation::OmapSet(entries) => {
                    entries.iter().for_each(|(k, v)| drop(o.omap.insert(k.clone(), v.clone())));
                }
                _ => unreachable!("handled above"),
            }
        }
    }
}

impl ObjectStore for MemoryStore {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn with_namespace(&self, namespace: &str) -> Result<Arc<dyn ObjectStore>> {
        check_namespace(namespace)?;
        Ok(Arc::new(MemoryStore { pool: self.pool.clone(), namespace: namespace.to_string(), no_omap: self.no_omap }))
    }

    fn write_op(&self, oid: &str, op: &WriteOp) -> Result<u64> {
        self.do_write(oid, op)
    }

    fn read_op(&self, oid: &str, op: &ReadOp) -> Result<ReadResult> {
        self.do_read(oid, op)
    }

    fn write_op_async(&self, oid: &str, op: WriteOp) -> BoxFuture<'static, Result<u64>> {
        future::ready(self.do_write(oid, &op)).boxed()
    }

    fn read_op_async(&self, oid: &str, op: ReadOp) -> BoxFuture<'static, Result<ReadResult>> {
        future::ready(self.do_read(oid, &op)).boxed()
    }

    fn list_objects(&self) -> Result<ObjectIter<'_>> {
        let pool = self.lock();
        let names: Vec<String> =
            pool.objects.keys().filter(|(ns, _)| *ns == self.namespace).map(|(_, name)| name.clone()).collect();
        Ok(Box::new(names.into_iter().map(Ok)))
    }

    fn list_pool(&self) -> Result<PoolIter<'_>> {
        let pool = self.lock();
        let all: Vec<(String, String)> = pool.objects.keys().cloned().collect();
        Ok(Box::new(all.into_iter().map(Ok)))
    }

    fn list_namespaces(&self) -> Result<Vec<String>> {
        let pool = self.lock();
        let set: BTreeSet<String> = pool.objects.keys().map(|(ns, _)| ns.clone()).collect();
        Ok(set.into_iter().collect())
    }

    fn watch(&self, oid: &str, callback: WatchCallback) -> Result<Box<dyn WatchHandle>> {
        self.do_watch(oid, callback)
    }

    fn notify(&self, oid: &str, payload: &[u8], done: Option<NotifyDone>) {
        let r = self.do_notify(oid, payload);
        if let Some(done) = done {
            done(r);
        }
    }
}
