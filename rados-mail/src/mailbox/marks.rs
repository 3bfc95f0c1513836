//! Delivery marks on the mailbox head (`crate::delivery`, `docs/FORMAT.md`, "Delivery
//! keys"): what a commit of deliveries adds to its guarded write, and the read after a
//! failed guard that finds the deliveries committed before.

use std::collections::BTreeMap;
use std::time::Duration;

use objstore::{CmpOp, ReadOp, WriteOp};
use omap_index::records::DeliveryMark;
use omap_index::{frame, keys};

use std::sync::Arc;

use super::Mailbox;
use super::group::Pending;
use super::txn::PendingSave;
use crate::body::SavedBody;
use crate::delivery::DeliveryKey;
use crate::error::Result;

/// A delivery a commit stores: its key and the UID it gets.
pub(super) type Mark = (DeliveryKey, u32);

/// The buckets a mark of a delivery committed within `window` before `now` (Unix
/// seconds) may be in: from the window's start to one bucket ahead of `now` (a clock ahead
/// of this one by up to 4 hours).
fn buckets(now: i64, window: Duration) -> std::ops::RangeInclusive<u32> {
    let secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    let first = keys::delivery_bucket(now.saturating_sub(secs));
    first..=keys::delivery_bucket(now).saturating_add(1)
}

/// Adds the marks to a commit's write: guarded by the absence of each key in every bucket
/// of the window (so the write fails if any was delivered before), the marks set in the
/// bucket of `now`, and the buckets before the window (with one to spare) removed.
pub(super) fn add_marks(mut op: WriteOp, marks: &[Mark], window: Duration, now: i64) -> WriteOp {
    if marks.is_empty() {
        return op;
    }
    let range = buckets(now, window);
    for (key, _) in marks {
        for b in range.clone() {
            op = op.omap_cmp(keys::delivery(b, &key.0), CmpOp::Eq, Vec::new());
        }
    }
    let bucket = keys::delivery_bucket(now);
    op =
        op.omap_set(marks.iter().map(|(key, uid)| {
            (keys::delivery(bucket, &key.0), frame::encode(&DeliveryMark { uid: *uid, saved: now }))
        }));
    let keep = range.start().saturating_sub(1);
    if keep > 0 {
        op = op.omap_rm_range(keys::delivery_bucket_start(0), keys::delivery_bucket_start(keep));
    }
    op
}

impl Mailbox {
    /// After a write with `marks` failed its guard: which saves of `saves` (by index) were
    /// delivered before, with the UIDs they got.
    pub(super) fn known_deliveries(&self, saves: &[PendingSave], marks: &[Mark]) -> Result<BTreeMap<usize, u32>> {
        let found = self.delivered_before(&marks.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
        Ok(saves_found(saves, &found))
    }

    /// The same for a group commit's transactions, in one read: per transaction, its
    /// saves delivered before.
    pub(super) fn known_deliveries_of_group(
        &self,
        group: &[Arc<Pending>],
        marks: &[Mark],
    ) -> Result<Vec<BTreeMap<usize, u32>>> {
        let found = self.delivered_before(&marks.iter().map(|(k, _)| *k).collect::<Vec<_>>())?;
        Ok(group.iter().map(|p| saves_found(p.saves(), &found)).collect())
    }

    /// Removes the bodies of saves that were delivered before (`delivered_before`).
    pub(super) fn remove_redelivered(&self, bodies: &[SavedBody], delivered_before: &[usize]) {
        for b in delivered_before.iter().filter_map(|&i| bodies.get(i)) {
            crate::body::remove_objects(
                self.data.store().as_ref(),
                &b.guid,
                crate::body::object_count(b.psize, b.chunk_size),
            );
        }
    }

    /// The deliveries among `wanted` committed to this mailbox within the delivery window:
    /// their keys and the UIDs they got (one read of the head). A damaged mark counts as
    /// not there (the delivery is stored again rather than lost).
    pub(super) fn delivered_before(&self, wanted: &[DeliveryKey]) -> Result<BTreeMap<DeliveryKey, u32>> {
        let names = self.mark_names(wanted);
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let read = self.store.omap_get(&self.head, &names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>());
        self.found_marks(&names, read)
    }

    /// [`Mailbox::known_deliveries_of_group`] with an async read of the head.
    pub(super) async fn known_deliveries_of_group_async(
        &self,
        group: &[Arc<Pending>],
        marks: &[Mark],
    ) -> Result<Vec<BTreeMap<usize, u32>>> {
        let names = self.mark_names(&marks.iter().map(|(k, _)| *k).collect::<Vec<_>>());
        let found = if names.is_empty() {
            BTreeMap::new()
        } else {
            let op = ReadOp::new().omap_get(names.iter().map(|(n, _)| n.clone()));
            let read = self.store.read_op_async(&self.head, op).await.map(|r| r.omap.unwrap_or_default());
            self.found_marks(&names, read)?
        };
        Ok(group.iter().map(|p| saves_found(p.saves(), &found)).collect())
    }

    /// The keys of the marks of `wanted` that may be in the head now (none when the
    /// mailbox keeps no marks).
    fn mark_names(&self, wanted: &[DeliveryKey]) -> Vec<(String, DeliveryKey)> {
        if wanted.is_empty() || self.config.delivery_window.is_zero() {
            return Vec::new();
        }
        let range = buckets(super::now(), self.config.delivery_window);
        wanted.iter().flat_map(|k| range.clone().map(move |b| (keys::delivery(b, &k.0), *k))).collect()
    }

    /// The marks found by a read of `names` in the head.
    fn found_marks(
        &self,
        names: &[(String, DeliveryKey)],
        read: objstore::Result<BTreeMap<String, Vec<u8>>>,
    ) -> Result<BTreeMap<DeliveryKey, u32>> {
        let mut found = BTreeMap::new();
        let vals = match read {
            Ok(v) => v,
            Err(objstore::Error::NotFound { .. }) => return Ok(found),
            Err(e) => return Err(e.into()),
        };
        for (name, key) in names {
            let Some(v) = vals.get(name) else { continue };
            match frame::decode::<DeliveryMark>(v) {
                Ok(mark) => {
                    found.insert(*key, mark.uid);
                }
                Err(e) => tracing::error!(object = %self.head, key = %name, "a damaged delivery mark, ignored: {e}"),
            }
        }
        Ok(found)
    }
}

/// The saves (by index) whose delivery key is in `found`, with the UID found.
fn saves_found(saves: &[PendingSave], found: &BTreeMap<DeliveryKey, u32>) -> BTreeMap<usize, u32> {
    saves.iter().enumerate().filter_map(|(i, s)| s.delivery.and_then(|k| found.get(&k)).map(|uid| (i, *uid))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_covers_its_buckets_and_one_ahead() {
        let day = Duration::from_secs(24 * 3600);
        let now = 1_800_000_000;
        let r = buckets(now, day);
        assert_eq!(r.start(), &keys::delivery_bucket(now - 24 * 3600));
        assert_eq!(r.end(), &(keys::delivery_bucket(now) + 1));
        assert_eq!(r.clone().count(), 8, "24 h of 4 h buckets, the partial first one and one ahead");
        let op = add_marks(WriteOp::new(), &[(DeliveryKey([7; 16]), 3)], day, now);
        assert_eq!(op.guards.len(), 8);
        assert_eq!(op.mutations.len(), 2, "the mark, and the expired buckets removed");
    }
}
