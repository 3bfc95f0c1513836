//! Applying a mailbox's WAL to its shards and trimming it, blocking and async: both make
//! the same reads and guarded writes ([`shard_write`], [`trim_write`]) under the one retry
//! policy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use objstore::{CmpOp, Error as StoreError, ObjectStore, ReadOp, WriteOp};
use omap_index::names::{self, Guid, shard_of};
use omap_index::{frame, keys};

use super::{Head, hex_value, read_head, read_head_async};
use crate::error::Result;
use crate::retry::RetryPolicy;

/// Applies every WAL entry of the head to its shards, then trims the WAL. Safe to run by
/// many processes at once: each shard accepts entries only above its `applied` mark, under
/// an `omap_cmp` guard. Returns how many entries are left in the WAL.
pub(crate) fn apply_wal(store: &dyn ObjectStore, head_oid: &str, guid: &Guid, retry: &RetryPolicy) -> Result<usize> {
    let head = read_head(store, head_oid)?;
    let Some(target) = head.wal.last().map(|e| e.modseq) else { return Ok(0) };
    for k in shards_of(&head) {
        let oid = names::mailbox_shard(guid, k);
        let mut attempts = retry.start();
        loop {
            let applied = applied_mark(&oid, store.read_op(&oid, &applied_read()))?;
            let Some(op) = shard_write(&head, k, applied) else { break };
            match store.write_op(&oid, &op) {
                Ok(_) => break,
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {
                    attempts.lost(|| format!("applying the WAL of mailbox {guid} to shard {oid}"))?
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    match store.write_op(head_oid, &trim_write(target)) {
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// [`apply_wal`] with the object store's async operations: the same reads and writes,
/// the retry policy's pauses as tokio timers. A damaged head is an error here (the next
/// blocking read of it rebuilds it).
pub(crate) async fn apply_wal_async(
    store: Arc<dyn ObjectStore>,
    head_oid: &str,
    guid: &Guid,
    retry: &RetryPolicy,
) -> Result<usize> {
    let head = read_head_async(store.clone(), head_oid).await?;
    let Some(target) = head.wal.last().map(|e| e.modseq) else { return Ok(0) };
    for k in shards_of(&head) {
        let oid = names::mailbox_shard(guid, k);
        let mut attempts = retry.start();
        loop {
            let applied = applied_mark(&oid, store.read_op_async(&oid, applied_read()).await)?;
            let Some(op) = shard_write(&head, k, applied) else { break };
            match store.write_op_async(&oid, op).await {
                Ok(_) => break,
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {
                    attempts.lost_async(|| format!("applying the WAL of mailbox {guid} to shard {oid}")).await?
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    match store.write_op_async(head_oid, trim_write(target)).await {
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// The shards the WAL's changes touch.
fn shards_of(head: &Head) -> BTreeSet<u32> {
    let bits = head.hdr.shard_bits;
    head.wal.iter().flat_map(|e| e.changes.iter().map(|c| shard_of(c.uid, bits))).collect()
}

/// The read of a shard's applied mark.
fn applied_read() -> ReadOp {
    ReadOp::new().omap_get([keys::APPLIED])
}

/// A shard's applied mark, and whether the shard exists, from [`applied_read`].
fn applied_mark(oid: &str, read: objstore::Result<objstore::ReadResult>) -> Result<Option<u64>> {
    match read {
        Ok(r) => Ok(Some(hex_value(oid, keys::APPLIED, r.omap.as_ref().and_then(|m| m.get(keys::APPLIED)))?)),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The write that brings shard `k` from its `applied` mark (`None`: no shard object yet)
/// to the end of the WAL, guarded by that mark; `None` when it has every change already.
fn shard_write(head: &Head, k: u32, applied: Option<u64>) -> Option<WriteOp> {
    let bits = head.hdr.shard_bits;
    let from = applied.unwrap_or(0);
    // Final state of every key this shard's pending changes touch, in order.
    let mut touched: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut last = from;
    for e in head.wal.iter().filter(|e| e.modseq > from) {
        for c in e.changes.iter().filter(|c| shard_of(c.uid, bits) == k) {
            if c.prev_modseq > 0 {
                touched.insert(keys::modseq_index(c.prev_modseq, c.uid), None);
            }
            match &c.record {
                Some(r) => {
                    touched.insert(keys::record(c.uid), Some(frame::encode(r)));
                    touched.insert(keys::modseq_index(e.modseq, c.uid), Some(Vec::new()));
                }
                None => {
                    touched.insert(keys::record(c.uid), None);
                    touched.insert(keys::tombstone(e.modseq, c.uid), Some(Vec::new()));
                }
            }
            last = e.modseq;
        }
    }
    if touched.is_empty() {
        return None;
    }
    let guard = match applied {
        Some(applied) => WriteOp::new().omap_cmp(keys::APPLIED, CmpOp::Eq, keys::hex64(applied).into_bytes()),
        None => WriteOp::new().create_exclusive(),
    };
    let rm: Vec<String> = touched.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.clone()).collect();
    let mut set: Vec<(String, Vec<u8>)> = touched.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
    set.push((keys::APPLIED.to_string(), keys::hex64(last).into_bytes()));
    Some(if rm.is_empty() { guard.omap_set(set) } else { guard.omap_rm_keys(rm).omap_set(set) })
}

/// The write that trims the WAL up to `target` once every shard has it (a no-op guard
/// failure when another process trimmed further).
fn trim_write(target: u64) -> WriteOp {
    WriteOp::new()
        .omap_cmp(keys::TRIM, CmpOp::Lt, keys::hex64(target).into_bytes())
        .omap_rm_range(keys::wal(0), keys::wal(target + 1))
        .omap_set([(keys::TRIM, keys::hex64(target).into_bytes())])
}
