//! The per-process caches shared by every user and mailbox of a [`crate::MailStore`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use omap_index::names::Guid;
use omap_index::records::MailRecord;
use quick_cache::sync::DefaultLifecycle;
use quick_cache::{DefaultHashBuilder, OptionsBuilder, Weighter};

use crate::cache::BodyCache;
use crate::damage::DamagedRecord;
use crate::index::View;
use crate::retry::RetryPolicy;

/// The per-process caches, shared by every user and mailbox of a [`crate::MailStore`].
#[derive(Debug, Clone)]
pub(crate) struct Caches {
    /// Mailbox index views.
    pub views: ViewCache,
    /// Mail bodies.
    pub bodies: Arc<BodyCache>,
    /// Mail records, by block.
    pub records: RecordCache,
    /// The retry policy and its counters.
    pub retry: RetryPolicy,
    /// Counters of notifies and watches.
    pub push: Arc<crate::watch::PushCounters>,
    /// The deployment's layout (format record) and data pool.
    pub layout: Arc<crate::layout::LayoutState>,
}

/// The per-process cache of mailbox views, keyed by namespace and mailbox GUID. A view in
/// the cache is revalidated with one read of the head object when a handle is opened.
#[derive(Clone)]
pub(crate) struct ViewCache(pub(crate) Arc<quick_cache::sync::Cache<ViewKey, SharedView>>);

/// (namespace, mailbox GUID).
pub(crate) type ViewKey = (String, Guid);
pub(crate) type SharedView = Arc<MailboxShared>;

/// What every handle of one mailbox in the process shares: the view, and the transactions
/// of new mails waiting to be committed together (group commit, `mailbox/group.rs`, which
/// alone knows their type: kept here as `Any`, so that this module needs no mailbox type).
pub(crate) struct MailboxShared {
    pub(crate) view: Mutex<View>,
    pub(crate) waiting: Mutex<Vec<Arc<dyn std::any::Any + Send + Sync>>>,
    /// Taken by each async commit of new mails to the mailbox in turn
    /// (`mailbox/aio_commit.rs`).
    pub(crate) async_commit: futures::lock::Mutex<()>,
}

impl MailboxShared {
    pub(crate) fn new(view: View) -> MailboxShared {
        MailboxShared {
            view: Mutex::new(view),
            waiting: Mutex::new(Vec::new()),
            async_commit: futures::lock::Mutex::new(()),
        }
    }
}

impl ViewCache {
    pub(crate) fn new(mailboxes: usize) -> ViewCache {
        ViewCache(Arc::new(quick_cache::sync::Cache::new(mailboxes.max(1))))
    }
}

impl std::fmt::Debug for ViewCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ViewCache({} mailboxes)", self.0.len())
    }
}

/// What a view knows of one UID: its record, or the damage in its place.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Slot {
    /// The record.
    Record(MailRecord),
    /// The record failed its integrity check: the mail is there, unreadable.
    Damaged(DamagedRecord),
}

/// The records of one block of UIDs of a mailbox (`index::block_bits`: up to 1,024
/// consecutive UIDs, always within one shard), as read from the shard with the WAL laid
/// over them: the mailbox's state at modseq `at`, for these UIDs. A UID of the block that
/// is not in `slots` is no mail (never was, or expunged) at `at`. Never changed once made:
/// a view lays the WAL entries above `at` it knows over it (`index::View::slot`).
#[derive(Debug)]
pub(crate) struct Block {
    /// The modseq whose state this is (that of the view that read it, or the shard's
    /// applied mark when the shard was newer).
    pub(crate) at: u64,
    pub(crate) slots: BTreeMap<u32, Slot>,
}

/// (namespace, mailbox GUID, incarnation, block number).
pub(crate) type BlockKey = (String, Guid, u32, u32);

/// Weighs a block by its records (at least 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockWeight;

impl Weighter<BlockKey, Arc<Block>> for BlockWeight {
    fn weight(&self, _key: &BlockKey, block: &Arc<Block>) -> u64 {
        block.slots.len().max(1) as u64
    }
}

type BlockCache = quick_cache::sync::Cache<
    BlockKey,
    Arc<Block>,
    BlockWeight,
    DefaultHashBuilder,
    DefaultLifecycle<BlockKey, Arc<Block>>,
>;

/// The per-process cache of mail records, shared by every mailbox: blocks of records,
/// bounded by [`crate::Config::record_cache_records`] records in all. What makes a view's
/// memory independent of its mailbox's size (see `docs/FORMAT.md`, "Reading a mailbox").
#[derive(Clone)]
pub(crate) struct RecordCache(Option<Arc<BlockCache>>);

impl RecordCache {
    /// A cache of up to `records` records (0: none; every read goes to RADOS).
    pub(crate) fn new(records: usize) -> RecordCache {
        if records == 0 {
            return RecordCache(None);
        }
        let bound = records as u64;
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        // Each shard of the cache holds at least four full blocks.
        let wanted = (bound / (4 * 1024)).clamp(1, parallelism * 4);
        let options = OptionsBuilder::new()
            .shards(1 << wanted.ilog2())
            .estimated_items_capacity((bound / 256).clamp(16, 1 << 16) as usize)
            .weight_capacity(bound)
            .build()
            .expect("valid record cache options");
        let cache =
            BlockCache::with_options(options, BlockWeight, DefaultHashBuilder::default(), DefaultLifecycle::default());
        RecordCache(Some(Arc::new(cache)))
    }

    pub(crate) fn get(&self, key: &BlockKey) -> Option<Arc<Block>> {
        self.0.as_ref()?.get(key)
    }

    pub(crate) fn insert(&self, key: BlockKey, block: Arc<Block>) {
        if let Some(c) = &self.0 {
            c.insert(key, block);
        }
    }

    /// Records held.
    #[cfg(test)]
    pub(crate) fn weight(&self) -> u64 {
        self.0.as_ref().map_or(0, |c| c.weight())
    }
}

impl std::fmt::Debug for RecordCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(c) => write!(f, "RecordCache({} blocks, {} records)", c.len(), c.weight()),
            None => write!(f, "RecordCache(off)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(records: u32) -> Arc<Block> {
        let slots = (1..=records).map(|uid| (uid, Slot::Record(MailRecord { uid, ..Default::default() }))).collect();
        Arc::new(Block { at: 1, slots })
    }

    #[test]
    fn the_record_cache_stays_within_its_bound() {
        let cache = RecordCache::new(8192);
        for b in 0..64 {
            cache.insert((String::new(), Guid([1; 16]), 1, b), block(1024));
            assert!(cache.weight() <= 8192, "{} records after block {b}", cache.weight());
        }
        assert!(cache.weight() >= 4096, "it holds blocks: {}", cache.weight());
        let off = RecordCache::new(0);
        off.insert((String::new(), Guid([1; 16]), 1, 0), block(10));
        assert!(off.get(&(String::new(), Guid([1; 16]), 1, 0)).is_none());
        assert_eq!(off.weight(), 0);
    }
}
