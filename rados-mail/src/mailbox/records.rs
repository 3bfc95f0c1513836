//! Reading records on demand: by block of UIDs from the shards, through the process's
//! bounded record cache, with the view's WAL entries laid over them (`docs/FORMAT.md`,
//! "Reading a mailbox"). A view never holds a whole mailbox: a FETCH of a few mails reads
//! the blocks they are in, a plan the blocks of the mails it touches, a scan (status,
//! UIDs, EXPUNGE of `\Deleted`) one block at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

use omap_index::records::MailRecord;

use super::Mailbox;
use crate::caches::{Block, BlockKey, Slot};
use crate::error::Result;
use crate::index::{View, block_bits, read_block};

impl Mailbox {
    pub(super) fn block_key(&self, view: &View, b: u32) -> BlockKey {
        (self.store.namespace().to_string(), self.info.guid, view.hdr.incarnation, b)
    }

    /// Block `b` for `view`: from the record cache when it can serve the view, else read
    /// (one RADOS read) and cached.
    pub(crate) fn block(&self, view: &View, b: u32) -> Result<Arc<Block>> {
        let key = self.block_key(view, b);
        if let Some(block) = self.records.get(&key)
            && view.usable(&block)
        {
            return Ok(block);
        }
        let block = Arc::new(read_block(self.store.as_ref(), &self.info.guid, view, b)?);
        self.records.insert(key, block.clone());
        Ok(block)
    }

    /// What `view` knows of `uid`: its record, its damage, or nothing (no such mail).
    pub(crate) fn slot(&self, view: &View, uid: u32) -> Result<Option<Slot>> {
        if uid == 0 || uid >= view.hdr.uidnext {
            return Ok(None);
        }
        let block = self.block(view, uid >> block_bits(view.hdr.shard_bits))?;
        Ok(view.slot(&block, uid))
    }

    /// The slots of the UIDs of `range` that are mails at `view`, in UID order, block by
    /// block (one read per block not cached); `f` returns false to stop.
    pub(crate) fn scan(
        &self,
        view: &View,
        range: RangeInclusive<u32>,
        mut f: impl FnMut(u32, Slot) -> bool,
    ) -> Result<()> {
        let lo = (*range.start()).max(1);
        let hi = (*range.end()).min(view.hdr.uidnext.saturating_sub(1));
        if lo > hi {
            return Ok(());
        }
        let bits = block_bits(view.hdr.shard_bits);
        for b in (lo >> bits)..=(hi >> bits) {
            let block = self.block(view, b)?;
            let first = (b << bits).max(lo);
            let last = (b << bits | ((1u32 << bits) - 1)).min(hi);
            for (uid, slot) in view.slots(&block, first..=last) {
                if !f(uid, slot) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// The slots of `uids` at `view` (those that are mails), reading each block once.
    pub(crate) fn slots_of(&self, view: &View, uids: &[u32]) -> Result<BTreeMap<u32, Slot>> {
        let bits = block_bits(view.hdr.shard_bits);
        let wanted: BTreeSet<u32> = uids.iter().copied().filter(|u| *u != 0 && *u < view.hdr.uidnext).collect();
        let mut out = BTreeMap::new();
        let mut current: Option<(u32, Arc<Block>)> = None;
        for uid in wanted {
            let b = uid >> bits;
            let block = match &current {
                Some((at, block)) if *at == b => block.clone(),
                _ => {
                    let block = self.block(view, b)?;
                    current = Some((b, block.clone()));
                    block
                }
            };
            if let Some(slot) = view.slot(&block, uid) {
                out.insert(uid, slot);
            }
        }
        Ok(out)
    }

    /// The records of `uids` at `view` that are mails and intact, in UID order.
    pub(crate) fn records_of(&self, view: &View, uids: &[u32]) -> Result<Vec<MailRecord>> {
        Ok(self
            .slots_of(view, uids)?
            .into_values()
            .filter_map(|s| match s {
                Slot::Record(r) => Some(r),
                Slot::Damaged(_) => None,
            })
            .collect())
    }

    /// Reads the records of the UIDs a plan touches into `view.records` (and their damage
    /// into `view.damaged`), in place of whatever was there.
    pub(crate) fn touch(&self, view: &mut View, uids: &[u32]) -> Result<()> {
        view.fresh = None;
        let slots = self.slots_of(view, uids)?;
        view.records.clear();
        view.damaged.clear();
        for (uid, slot) in slots {
            match slot {
                Slot::Record(r) => drop(view.records.insert(uid, r)),
                Slot::Damaged(d) => drop(view.damaged.insert(uid, d)),
            }
        }
        Ok(())
    }

    /// The keyword names on the mails of `view` other than `except`, read from every
    /// record (one block at a time): what recomputing a full keyword table needs. Rare.
    pub(crate) fn keywords_in_use(&self, view: &View, except: &BTreeSet<u32>) -> Result<BTreeSet<String>> {
        let mut used = BTreeSet::new();
        self.scan(view, 1..=u32::MAX, |uid, slot| {
            if let Slot::Record(r) = slot
                && !except.contains(&uid)
            {
                used.extend(r.keywords);
            }
            true
        })?;
        Ok(used)
    }
}
