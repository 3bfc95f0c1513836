//! `rados-mail migrate --layout`: moves a deployment from pool format v1 to v2
//! (`docs/FORMAT.md`, "Migrations"). Three steps, each idempotent and resumable:
//!
//! 1. [`MailStore::begin_layout_migration`]: the record becomes version 2 with the data
//!    pool and `migrating` set (one guarded write). Processes see it within a minute
//!    (their refresh) and then write xattr references and new bodies to the data pool,
//!    while still looking for bodies in the index pool.
//! 2. [`MailStore::migrate_user_bodies`], per user, after processes had time to re-read:
//!    every body's omap references become xattrs (one guarded write per body); with a
//!    separate data pool the body is copied there with its references, then the original
//!    is removed guarded by the version its references were read at. A conflict (a
//!    process changed the original's references meanwhile) applies the difference to the
//!    copy and tries again.
//! 3. [`MailStore::finish_layout_migration`]: `migrating` is cleared.

use std::collections::{BTreeMap, BTreeSet};

use objstore::{CmpOp, Error as StoreError, ObjectStore, ReadOp, WriteOp};
use omap_index::format::{self, FORMAT_KEY, FORMAT_OBJECT, PoolFormat, V2};
use omap_index::keys;
use omap_index::names::{self, Guid, SHARED_NAMESPACE, namespace_of, xattr};

use crate::error::{Error, Result};
use crate::store::MailStore;

/// What [`MailStore::migrate_user_bodies`] did for one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LayoutMoved {
    /// Bodies whose omap references became xattrs.
    pub converted: u64,
    /// Bodies copied to the data pool (and removed from the index pool).
    pub moved: u64,
    /// Body objects (chunks included) written to the data pool.
    pub objects: u64,
    /// Bytes written to the data pool.
    pub bytes: u64,
    /// Guarded writes that lost a race with a mail process and were done again.
    pub retries: u64,
}

impl MailStore {
    /// The format record as stored (read now, not cached), with its raw bytes.
    fn stored_format(&self) -> Result<(PoolFormat, Vec<u8>)> {
        let shared = self.pool().with_namespace(&namespace_of(&self.config().namespace_prefix, SHARED_NAMESPACE))?;
        self.layout_state().forget();
        // Creates the record when absent (v1 for a deployment with data); a data pool in
        // the settings is refused for v1 there, which is what is being changed here.
        match self.layout() {
            Ok(_) | Err(Error::InvalidInput(_)) => {}
            Err(e) => return Err(e),
        }
        let bytes = shared.omap_get(FORMAT_OBJECT, &[FORMAT_KEY])?.remove(FORMAT_KEY).unwrap_or_default();
        let record = format::decode(&bytes).map_err(|_| Error::Corrupted {
            object: FORMAT_OBJECT.into(),
            key: Some(FORMAT_KEY.into()),
            detail: "pool format record".into(),
        })?;
        Ok((record, bytes))
    }

    /// Replaces the record when it still is `old` (guarded).
    fn replace_format(&self, old: &[u8], new: &PoolFormat) -> Result<()> {
        let shared = self.pool().with_namespace(&namespace_of(&self.config().namespace_prefix, SHARED_NAMESPACE))?;
        let op =
            WriteOp::new().omap_cmp(FORMAT_KEY, CmpOp::Eq, old.to_vec()).omap_set([(FORMAT_KEY, format::encode(new))]);
        match shared.write_op(FORMAT_OBJECT, &op) {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(Error::Conflict("the pool format record changed meanwhile; run migrate again".into()));
            }
            Err(e) => return Err(e.into()),
        }
        self.layout_state().forget();
        Ok(())
    }

    /// Step 1: the record becomes version 2 with this store's data pool
    /// ([`crate::Config::data_pool`]) and `migrating` set. Returns the record as it is
    /// afterwards and whether this call changed it (false: already begun, or the
    /// deployment is v2 already and nothing is to do). Refused when the record is v2 with
    /// another data pool.
    pub fn begin_layout_migration(&self) -> Result<(PoolFormat, bool)> {
        let (record, bytes) = self.stored_format()?;
        let wanted = &self.config().data_pool;
        if record.version >= V2 {
            if record.data_pool != *wanted {
                return Err(Error::InvalidInput(format!(
                    "the deployment is at format version 2 with data pool {:?}, not {wanted:?}",
                    record.data_pool
                )));
            }
            return Ok((record, false));
        }
        let new =
            PoolFormat { version: V2, data_pool: wanted.clone(), dict_shards: record.dict_shards, migrating: true };
        self.replace_format(&bytes, &new)?;
        Ok((new, true))
    }

    /// Step 3: clears `migrating`. Returns whether it was set.
    pub fn finish_layout_migration(&self) -> Result<bool> {
        let (record, bytes) = self.stored_format()?;
        if !record.migrating {
            return Ok(false);
        }
        self.replace_format(&bytes, &PoolFormat { migrating: false, ..record })?;
        Ok(true)
    }

    /// Spreads the shared dict over `to` objects (`rados-mail migrate --dict-shards N`):
    /// moves every key from the record's `dict_shards` layout to that of `to`
    /// ([`crate::dict::reshard`]), then records `to` (one guarded write). Idempotent and
    /// resumable: a run that failed midway moved each key or left it, and the next run
    /// finishes. **Offline**: every process using the shared dict must be stopped (readers
    /// and writers must agree on the layout; a process would otherwise see keys missing
    /// until it re-reads the record). `Ok(None)` when the record already says `to`.
    pub fn reshard_shared_dict(&self, to: u32) -> Result<Option<crate::dict::ReshardReport>> {
        let (record, bytes) = self.stored_format()?;
        if record.dict_shards == to {
            return Ok(None);
        }
        let shared = self.pool().with_namespace(&namespace_of(&self.config().namespace_prefix, SHARED_NAMESPACE))?;
        let report = crate::dict::reshard(&shared, record.dict_shards, to)?;
        self.replace_format(&bytes, &PoolFormat { dict_shards: to, ..record })?;
        self.layout_state().forget();
        Ok(Some(report))
    }

    /// Step 2 for user `name`: converts every body's omap references to xattrs, and moves
    /// the bodies to the data pool when it is another pool. Run it only after every mail
    /// process had time to see step 1 (their refresh, [`crate::FORMAT_REFRESH`]).
    pub fn migrate_user_bodies(&self, name: &str) -> Result<LayoutMoved> {
        let user = self.user(name)?;
        let bodies = user.bodies()?;
        let index = user.store().clone();
        let data = bodies.separate().then(|| bodies.store().clone());
        let mut done = LayoutMoved::default();
        let objects: Vec<String> = index.list_objects()?.collect::<objstore::Result<_>>()?;
        for oid in objects {
            let Some(guid) = oid.strip_prefix("mail.").and_then(|g| Guid::parse(g).ok()) else { continue };
            match &data {
                None => convert(index.as_ref(), &oid, &mut done)?,
                Some(data) => move_body(index.as_ref(), data.as_ref(), &guid, &mut done)?,
            }
        }
        Ok(done)
    }
}

/// The references on a body's first object (omap keys when `omap`, and xattrs), in the
/// omap key form, with the version they were read at.
fn references(store: &dyn ObjectStore, oid: &str, omap: bool) -> objstore::Result<(BTreeSet<String>, u64)> {
    let read = store.read_op(oid, &crate::refs::read_references(omap, objstore::OMAP_PAGE_MAX))?;
    let version = read.version;
    let refs = crate::refs::references_of(read);
    let mut all: BTreeSet<String> = refs.xattrs.iter().map(|(m, i)| keys::reference(m, *i)).collect();
    all.extend(refs.omap);
    if refs.more_omap {
        // A change after the first read fails the write guarded by its version.
        all.extend(store.omap_all(oid, keys::REFERENCE)?.into_iter().map(|(k, _)| k));
    }
    Ok((all, version))
}

/// The xattr of a reference in the omap key form.
fn xattr_of(key: &str) -> Option<String> {
    keys::parse_reference(key).map(|(m, i)| xattr::reference(&m, i))
}

/// Converts the omap references of a body in place (bodies in the index pool).
fn convert(store: &dyn ObjectStore, oid: &str, done: &mut LayoutMoved) -> Result<()> {
    loop {
        let read = match store.read_op(oid, &crate::refs::read_references(true, objstore::OMAP_PAGE_MAX)) {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let version = read.version;
        let page = read.omap_page.clone().unwrap_or_default();
        let keys_now: Vec<String> = if page.more {
            store.omap_all(oid, keys::REFERENCE)?.into_iter().map(|(k, _)| k).collect()
        } else {
            page.entries.into_iter().map(|(k, _)| k).collect()
        };
        if keys_now.is_empty() {
            return Ok(());
        }
        let mut op = WriteOp::new().assert_version(version);
        for k in &keys_now {
            if let Some(x) = xattr_of(k) {
                op = op.set_xattr(x, Vec::new());
            }
        }
        match store.write_op(oid, &op.omap_rm_keys(keys_now)) {
            Ok(_) => {
                done.converted += 1;
                return Ok(());
            }
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(StoreError::Conflict { .. }) => done.retries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Moves a body from the index pool to the data pool: the chunks, then the first object
/// with its xattrs and its references as xattrs, then the original is removed guarded by
/// the version its references were read at; a conflict applies the change of the
/// original's references to the copy and tries again.
fn move_body(index: &dyn ObjectStore, data: &dyn ObjectStore, guid: &Guid, done: &mut LayoutMoved) -> Result<()> {
    let oid = names::mail(guid);
    let first = match index.read_op(&oid, &ReadOp::new().stat().xattrs()) {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let attrs: BTreeMap<String, Vec<u8>> = first.xattrs.unwrap_or_default();
    let chunks: u64 = attrs.get(xattr::CHUNKS).and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(1);
    for n in 1..chunks.max(1) {
        let part = names::mail_chunk(guid, n);
        match index.read_full(&part) {
            Ok((bytes, _)) => {
                data.write_full(&part, &bytes)?;
                done.objects += 1;
                done.bytes += bytes.len() as u64;
            }
            Err(StoreError::NotFound { .. }) => {} // moved before (an interrupted run)
            Err(e) => return Err(e.into()),
        }
    }
    let (mut refs, mut version) = match references(index, &oid, true) {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let (body, _) = index.read_full(&oid)?;
    // The copy: data, the describing xattrs, every reference as an xattr. A copy left by
    // an interrupted run is completed, never replaced (processes may use it already).
    let mut op = WriteOp::new().create().write_full(body.clone());
    for (name, value) in attrs.iter().filter(|(n, _)| !n.starts_with(xattr::REFERENCE)) {
        op = op.set_xattr(name.clone(), value.clone());
    }
    for r in &refs {
        if let Some(x) = xattr_of(r) {
            op = op.set_xattr(x, Vec::new());
        }
    }
    data.write_op(&oid, &op)?;
    done.objects += 1;
    done.bytes += body.len() as u64;
    loop {
        match index.write_op(&oid, &WriteOp::new().assert_version(version).remove()) {
            Ok(_) => break,
            Err(StoreError::NotFound { .. }) => {
                // The original went (its last reference was dropped there): so do the
                // references it had on the copy.
                apply_difference(data, &oid, &refs, &BTreeSet::new())?;
                break;
            }
            Err(StoreError::Conflict { .. }) => {
                done.retries += 1;
                let (now, v) = match references(index, &oid, true) {
                    Ok(r) => r,
                    Err(StoreError::NotFound { .. }) => (BTreeSet::new(), 0),
                    Err(e) => return Err(e.into()),
                };
                apply_difference(data, &oid, &refs, &now)?;
                if v == 0 {
                    break;
                }
                (refs, version) = (now, v);
            }
            Err(e) => return Err(e.into()),
        }
    }
    for n in 1..chunks.max(1) {
        match index.remove(&names::mail_chunk(guid, n)) {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    done.moved += 1;
    Ok(())
}

/// Applies the change of the original's references (`before` to `after`) to the copy;
/// removes the copy (and its chunks) when no reference is left on it.
fn apply_difference(
    data: &dyn ObjectStore,
    oid: &str,
    before: &BTreeSet<String>,
    after: &BTreeSet<String>,
) -> Result<()> {
    let mut op = WriteOp::new().assert_exists();
    let mut any = false;
    for added in after.difference(before).filter_map(|k| xattr_of(k)) {
        op = op.set_xattr(added, Vec::new());
        any = true;
    }
    for gone in before.difference(after).filter_map(|k| xattr_of(k)) {
        op = op.rm_xattr(gone);
        any = true;
    }
    if !any {
        return Ok(());
    }
    match data.write_op(oid, &op) {
        Ok(_) | Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    // Nobody holds the copy any more: remove it (guarded, as a drop would).
    let (left, version) = match references(data, oid, false) {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if left.is_empty() {
        match data.write_op(oid, &WriteOp::new().assert_version(version).remove()) {
            Ok(_) | Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
