//! Re-sharding: moving a dict's keys from a layout of `from` shards to one of `to` shards
//! (the core of the `migrate` step that changes the pool's `dict_shards`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use objstore::{OMAP_PAGE_MAX, ObjectStore, ReadOp, WriteOp};

use super::shard::{check_shards, shard_object, shard_objects};
use crate::error::Result;

/// At most this many bytes of keys and values per write of a re-shard.
const WRITE_BYTES: usize = 16 << 20;

/// What [`reshard`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReshardReport {
    /// Keys copied to their new object and removed from their old one.
    pub moved: u64,
    /// Objects of the old layout that the new one does not use, removed once empty.
    pub removed: Vec<String>,
}

/// Moves every key of the dict kept in the namespace of `store` from the layout of `from`
/// shards to that of `to` shards (0: the one object `dict`; see
/// [`super::shard_object`]). Idempotent and resumable: run it again after a failure and it
/// finishes; once it succeeded, readers must use `to` shards.
///
/// Stop every writer of the dict first (readers and writers must agree on the layout).
/// Each object of the old layout is read page by page (1,024 keys); the keys whose object
/// changes are written to their new object (`create` + `omap_set`), then removed from the
/// old one. At every moment, crash included, each key is in its old object or its new one
/// (or briefly both, with the same value), never lost nor torn. Objects of the old layout
/// that the new one does not use are removed when empty (guarded by their version).
///
/// Fails with [`crate::Error::InvalidInput`] for a number of shards above
/// [`super::MAX_SHARDS`], and with the store's error otherwise (nothing is lost: run it
/// again).
pub fn reshard(store: &Arc<dyn ObjectStore>, from: u32, to: u32) -> Result<ReshardReport> {
    check_shards(from)?;
    check_shards(to)?;
    let mut report = ReshardReport::default();
    if from == to {
        return Ok(report);
    }
    let kept: BTreeSet<String> = shard_objects(to).into_iter().collect();
    for source in shard_objects(from) {
        let mut after = String::new();
        loop {
            let page = match store.omap_range(&source, &after, "", OMAP_PAGE_MAX) {
                Ok(page) => page,
                Err(objstore::Error::NotFound { .. }) => break,
                Err(e) => return Err(e.into()),
            };
            let Some(last) = page.entries.last().map(|(k, _)| k.clone()) else {
                break;
            };
            let mut moving: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
            for (key, value) in page.entries {
                let target = shard_object(to, &key);
                if target != source {
                    moving.entry(target).or_default().push((key, value));
                }
            }
            let mut moved = Vec::new();
            for (target, entries) in moving {
                for batch in batches(entries) {
                    moved.extend(batch.iter().map(|(k, _)| k.clone()));
                    store.write_op(&target, &WriteOp::new().create().omap_set(batch))?;
                }
            }
            if !moved.is_empty() {
                report.moved += moved.len() as u64;
                store.write_op(&source, &WriteOp::new().omap_rm_keys(moved))?;
            }
            if !page.more {
                break;
            }
            after = last;
        }
        if !kept.contains(&source) && remove_if_empty(store, &source)? {
            report.removed.push(source);
        }
    }
    Ok(report)
}

/// Splits entries into writes of at most [`WRITE_BYTES`] (at least one entry each).
fn batches(entries: Vec<(String, Vec<u8>)>) -> Vec<Vec<(String, Vec<u8>)>> {
    let mut out: Vec<Vec<(String, Vec<u8>)>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry.0.len() + entry.1.len();
        match out.last_mut() {
            Some(batch) if bytes + size <= WRITE_BYTES => batch.push(entry),
            _ => {
                out.push(vec![entry]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    out
}

/// Removes `object` if it exists and has no omap key, guarded by the version read.
fn remove_if_empty(store: &Arc<dyn ObjectStore>, object: &str) -> Result<bool> {
    let read = match store.read_op(object, &ReadOp::new().omap_range("", "", 1)) {
        Ok(read) => read,
        Err(objstore::Error::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if !read.omap_page.unwrap_or_default().entries.is_empty() {
        return Ok(false);
    }
    match store.write_op(object, &WriteOp::new().assert_version(read.version).remove()) {
        Ok(_) => Ok(true),
        Err(objstore::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_below_the_write_size() {
        let big = |k: &str| (k.to_string(), vec![0u8; WRITE_BYTES / 2]);
        let sizes: Vec<usize> =
            batches(vec![big("a"), big("b"), big("c"), ("d".into(), vec![])]).iter().map(Vec::len).collect();
        // Two halves plus their keys do not fit one write; the empty entry joins the last.
        assert_eq!(sizes, [1, 1, 2]);
        assert!(batches(Vec::new()).is_empty());
    }
}
