//! The head/WAL/shard engine of a mailbox index (see `docs/FORMAT.md`): reading the head
//! object and the shards into a [`View`], applying the WAL to the shards and trimming it,
//! creating and destroying the objects of a mailbox.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use objstore::{CmpOp, Error as StoreError, OMAP_PAGE_MAX, ObjectStore, ReadOp, WriteOp};
use omap_index::names::{self, Guid, shard_of};
use omap_index::records::{Change, MailRecord, MailboxHeader, WalEntry};
use omap_index::{frame, keys};
use rand::Rng;

use crate::caches::{Block, Slot};
use crate::damage::{self, DamagedRecord};
use crate::error::{Error, Result};
use crate::layout::Bodies;
use crate::retry::RetryPolicy;
use crate::types::Changes;

mod head;
mod wal;

pub(crate) use head::{read_head, read_head_async};
pub(crate) use wal::{apply_wal, apply_wal_async};

/// A consistent read of the head object.
#[derive(Clone)]
pub(crate) struct Head {
    pub(crate) hdr: MailboxHeader,
    pub(crate) hdr_bytes: Vec<u8>,
    pub(crate) trim: u64,
    pub(crate) wal: Vec<WalEntry>,
    /// The first recent UID (`recent`; 1 when absent), read with the header.
    pub(crate) first_recent: u32,
}

/// The in-memory view of the index at `hdr.highestmodseq`: the header and the WAL
/// entries it knows, never the records. Records are read from the shards by block
/// ([`read_block`]), through the process's bounded record cache, with the view's WAL
/// entries laid over them ([`View::slot`]); see `docs/FORMAT.md`, "Reading a mailbox".
/// Opening a mailbox, syncing a mail server's index that is current, and appending need
/// the head alone.
pub(crate) struct View {
    pub(crate) hdr: MailboxHeader,
    pub(crate) hdr_bytes: Vec<u8>,
    /// The records of the UIDs the operation at hand touches (read by
    /// `Mailbox::touch` before a plan), else empty.
    pub(crate) records: BTreeMap<u32, MailRecord>,
    /// The mails among those whose record failed its integrity check: still mails of the
    /// mailbox, unreadable. Never in `records` too.
    pub(crate) damaged: BTreeMap<u32, DamagedRecord>,
    /// The last change of each UID in the WAL entries this view knows, all above
    /// `wal_from` and up to `hdr.highestmodseq`: its modseq and the record after it
    /// (`None`: expunged).
    pub(crate) overlay: BTreeMap<u32, (u64, Option<MailRecord>)>,
    /// Every change above this modseq (up to `hdr.highestmodseq`) is in `overlay`: the
    /// trim mark of the head the overlay started from. A block read at a modseq below it
    /// may miss changes and is read again.
    pub(crate) wal_from: u64,
    /// The keyword names used by the mails not in `records`, when a plan needed them (a
    /// full keyword table), for the view's state as it is; `None` otherwise.
    pub(crate) keywords_in_use: Option<BTreeSet<String>>,
    /// The unseen count at a HIGHESTMODSEQ, from the last scan that counted it.
    pub(crate) unseen: Option<(u64, u32)>,
    /// WAL entries believed to be in the head object (to decide when to apply them).
    pub(crate) wal_len: usize,
    /// The head read that brought the view to `hdr`, while nothing newer was written
    /// through it: what the next "changes since" may answer from without reading again.
    pub(crate) head: Option<Head>,
    /// When the head was read by the open that made this view, until a sync used it or
    /// anything else read or wrote the head: the first "changes since" after an open (the
    /// sync a mail server does right after opening), within [`FRESH_HEAD`], answers from
    /// that read instead of reading the head again. Never set otherwise, so a later sync
    /// always reads.
    pub(crate) fresh: Option<Instant>,
    /// When a commit through this view last lost a race (see [`CONTENDED`]).
    pub(crate) contended: Option<Instant>,
    /// The first recent UID as last read or written (never above the truth: it only
    /// grows in RADOS; see `mailbox/recent.rs`).
    pub(crate) first_recent: u32,
}

/// For how long after a lost race a commit of new mails reads the head again right before
/// committing (after the bodies were written): under contention, that narrows the window
/// in which another commit makes the guard fail to one round trip.
pub(crate) const CONTENDED: Duration = Duration::from_secs(10);

/// How long the head read by an open serves the first sync after it.
pub(crate) const FRESH_HEAD: Duration = Duration::from_millis(500);

/// The most changes a view's overlay keeps before it starts again from a head read (or
/// from the shards, after applying the WAL): bounds a view's memory (about 0.5 MiB),
/// whatever the mailbox's size and however long the view lives. Starting again costs
/// the blocks cached before a read each, when next needed.
pub(crate) const OVERLAY_MAX: usize = 2_048;

/// UIDs per block of records: `1 << block_bits`, at most [`OMAP_PAGE_MAX`] (one read) and
/// never more than a shard holds (a block lies in one shard).
pub(crate) fn block_bits(shard_bits: u32) -> u32 {
    shard_bits.min(OMAP_PAGE_MAX.ilog2())
}

impl View {
    /// A view at `head`, just read.
    pub(crate) fn at_head(head: Head) -> View {
        let mut view = View {
            hdr: head.hdr.clone(),
            hdr_bytes: head.hdr_bytes.clone(),
            records: BTreeMap::new(),
            damaged: BTreeMap::new(),
            overlay: BTreeMap::new(),
            wal_from: head.trim,
            keywords_in_use: None,
            unseen: None,
            wal_len: head.wal.len(),
            first_recent: head.first_recent,
            head: None,
            fresh: None,
            contended: None,
        };
        view.note(&head.wal);
        view.head = Some(head);
        view
    }

    /// A view of the header `hdr` alone, to plan new mails against (they need no record).
    pub(crate) fn header_only(hdr: MailboxHeader) -> View {
        View {
            hdr_bytes: Vec::new(),
            wal_from: hdr.highestmodseq,
            hdr,
            records: BTreeMap::new(),
            damaged: BTreeMap::new(),
            overlay: BTreeMap::new(),
            keywords_in_use: None,
            unseen: None,
            wal_len: 0,
            head: None,
            fresh: None,
            contended: None,
            first_recent: 1,
        }
    }

    /// Takes the changes of WAL entries (in modseq order) into the overlay.
    pub(crate) fn note(&mut self, entries: &[WalEntry]) {
        for e in entries {
            for c in &e.changes {
                self.overlay.insert(c.uid, (e.modseq, c.record.clone()));
            }
        }
    }

    /// Starts the overlay again from `head` (whose trim mark becomes `wal_from`).
    pub(crate) fn restart_overlay(&mut self, head: &Head) {
        self.overlay.clear();
        self.wal_from = head.trim;
        self.note(&head.wal);
    }

    /// Whether `block` can serve this view: it was read at or above `wal_from`, so the
    /// overlay holds every change it may lack.
    pub(crate) fn usable(&self, block: &Block) -> bool {
        block.at >= self.wal_from
    }

    /// What this view knows of `uid`, which lies in `block` (usable): the overlay's change
    /// if it is newer than the block, else the block's.
    pub(crate) fn slot(&self, block: &Block, uid: u32) -> Option<Slot> {
        match self.overlay.get(&uid) {
            Some((modseq, rec)) if *modseq > block.at => rec.clone().map(Slot::Record),
            _ => block.slots.get(&uid).cloned(),
        }
    }

    /// The slots of `range` (within `block`) at this view, in UID order.
    pub(crate) fn slots(&self, block: &Block, range: std::ops::RangeInclusive<u32>) -> BTreeMap<u32, Slot> {
        let mut out: BTreeMap<u32, Slot> = block.slots.range(range.clone()).map(|(u, s)| (*u, s.clone())).collect();
        for (uid, (modseq, rec)) in self.overlay.range(range) {
            if *modseq > block.at {
                match rec {
                    Some(r) => drop(out.insert(*uid, Slot::Record(r.clone()))),
                    None => drop(out.remove(uid)),
                }
            }
        }
        out
    }

    /// Forgets what was derived from the view's state (it moved).
    pub(crate) fn moved(&mut self) {
        self.keywords_in_use = None;
    }

    /// The head just read, for a sync, if it is fresh and unused (see `fresh`).
    pub(crate) fn take_fresh_head(&mut self) -> Option<Head> {
        let read = self.fresh.take()?;
        if read.elapsed() > FRESH_HEAD {
            return None;
        }
        self.head.clone()
    }
}

/// Reads block `b` of mailbox `guid` for `view`: one read of its shard (the applied mark
/// and the block's `r/` keys), with the view's overlay entries above the shard's applied
/// mark laid over them. Damaged records are reported (once per process) and kept as such.
pub(crate) fn read_block(store: &dyn ObjectStore, guid: &Guid, view: &View, b: u32) -> Result<Block> {
    let read = BlockRead::new(guid, view, b);
    let result = store.read_op(&read.oid, &read.op);
    read.block(result)
}

/// The read of one block of records ([`read_block`]) in two halves, for asynchronous
/// callers: the operation, made from the view, and the block, made from its result and
/// what the view knew then.
pub(crate) struct BlockRead {
    /// The shard object to read.
    pub(crate) oid: String,
    /// The read.
    pub(crate) op: ReadOp,
    last: u32,
    /// The view's overlay over the block's UIDs.
    overlay: Vec<(u32, (u64, Option<MailRecord>))>,
    highestmodseq: u64,
}

impl BlockRead {
    /// The read of block `b` at `view`.
    pub(crate) fn new(guid: &Guid, view: &View, b: u32) -> BlockRead {
        let bits = block_bits(view.hdr.shard_bits);
        let first = b << bits;
        let last = first | ((1u32 << bits) - 1);
        let oid = names::mailbox_shard(guid, shard_of(first, view.hdr.shard_bits));
        let after = if first == 0 { String::new() } else { keys::record(first - 1) };
        let op = ReadOp::new().omap_get([keys::APPLIED]).omap_range(after, keys::RECORD, 1usize << bits);
        let overlay = view.overlay.range(first..=last).map(|(u, v)| (*u, v.clone())).collect();
        BlockRead { oid, op, last, overlay, highestmodseq: view.hdr.highestmodseq }
    }

    /// The block, from the result of the read.
    pub(crate) fn block(self, result: objstore::Result<objstore::ReadResult>) -> Result<Block> {
        let BlockRead { oid, last, overlay, highestmodseq, .. } = self;
        read_block_from(oid, last, overlay, highestmodseq, result)
    }
}

fn read_block_from(
    oid: String,
    last: u32,
    overlay: Vec<(u32, (u64, Option<MailRecord>))>,
    highestmodseq: u64,
    result: objstore::Result<objstore::ReadResult>,
) -> Result<Block> {
    let (applied, entries) = match result {
        Ok(r) => {
            let applied = hex_value(&oid, keys::APPLIED, r.omap.as_ref().and_then(|m| m.get(keys::APPLIED)))?;
            (applied, r.omap_page.unwrap_or_default().entries)
        }
        Err(StoreError::NotFound { .. }) => (0, Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut slots = BTreeMap::new();
    for (k, v) in &entries {
        let uid = keys::parse_record(k).map_err(|e| Error::corrupted(&oid, k, e))?;
        if uid > last {
            break;
        }
        match decode_record(uid, v) {
            Ok(rec) => drop(slots.insert(uid, Slot::Record(rec))),
            Err(detail) => {
                let d = DamagedRecord { object: oid.clone(), key: k.clone(), detail, modseq: applied };
                damage::report(&d.error(), "a mail record");
                slots.insert(uid, Slot::Damaged(d));
            }
        }
    }
    for (uid, (modseq, rec)) in overlay {
        if modseq > applied {
            match rec {
                Some(r) => drop(slots.insert(uid, Slot::Record(r))),
                None => drop(slots.remove(&uid)),
            }
        }
    }
    Ok(Block { at: applied.max(highestmodseq), slots })
}

pub(crate) fn decode<M: prost::Message + Default>(object: &str, key: &str, bytes: &[u8]) -> Result<M> {
    frame::decode(bytes).map_err(|e| Error::corrupted(object, key, e))
}

pub(crate) fn hex_value(object: &str, key: &str, bytes: Option<&Vec<u8>>) -> Result<u64> {
    match bytes {
        None => Ok(0),
        Some(b) => keys::parse_hex64(b).map_err(|e| Error::corrupted(object, key, e)),
    }
}

/// Creates the head object of a new mailbox (exclusively).
pub(crate) fn create_head(store: &dyn ObjectStore, guid: &Guid, uidvalidity: u32, shard_bits: u32) -> Result<()> {
    create_head_at(store, guid, uidvalidity, shard_bits, 1)
}

/// Creates the head object of a new, empty mailbox whose HIGHESTMODSEQ starts at
/// `highestmodseq` (exclusively).
fn create_head_at(
    store: &dyn ObjectStore,
    guid: &Guid,
    uidvalidity: u32,
    shard_bits: u32,
    highestmodseq: u64,
) -> Result<()> {
    let hdr = MailboxHeader {
        guid: guid.0.to_vec(),
        uidvalidity,
        uidnext: 1,
        highestmodseq,
        shard_bits,
        incarnation: rand::rng().random_range(1..=u32::MAX),
        ..Default::default()
    };
    let op = WriteOp::new().create_exclusive().omap_set([
        (keys::HDR.to_string(), frame::encode(&hdr)),
        (keys::TRIM.to_string(), keys::hex64(0).into_bytes()),
    ]);
    store.write_op(&names::mailbox_head(guid), &op)?;
    Ok(())
}

/// The header of a mailbox that never had a mail (UIDNEXT 1), with its bytes; else
/// [`Error::InvalidInput`] (`what` says what was asked for).
pub(crate) fn never_used_header(store: &dyn ObjectStore, guid: &Guid, what: &str) -> Result<(MailboxHeader, Vec<u8>)> {
    let head = read_head(store, &names::mailbox_head(guid))?;
    if head.hdr.uidnext != 1 || head.hdr.messages != 0 {
        return Err(Error::InvalidInput(format!(
            "{what}: mailbox {guid} has had mails (UIDNEXT {})",
            head.hdr.uidnext
        )));
    }
    Ok((head.hdr, head.hdr_bytes))
}

/// The current header bytes of a mailbox's head.
pub(crate) fn header_bytes(store: &dyn ObjectStore, guid: &Guid) -> Result<Vec<u8>> {
    Ok(read_head(store, &names::mailbox_head(guid))?.hdr_bytes)
}

/// Creates the head of an empty mailbox `guid` that takes over from the never used one
/// whose header is `old`: same UIDVALIDITY, HIGHESTMODSEQ and shard size.
pub(crate) fn create_successor_head(store: &dyn ObjectStore, guid: &Guid, old: &MailboxHeader) -> Result<()> {
    create_head_at(store, guid, old.uidvalidity, old.shard_bits, old.highestmodseq)
}

/// Removes the head of a never used mailbox, provided its header is still `hdr_bytes`
/// (no change committed since). Returns false when a change came in between.
pub(crate) fn remove_unused_head(store: &dyn ObjectStore, guid: &Guid, hdr_bytes: &[u8]) -> Result<bool> {
    let op = WriteOp::new().omap_cmp(keys::HDR, CmpOp::Eq, hdr_bytes.to_vec()).remove();
    match store.write_op(&names::mailbox_head(guid), &op) {
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(true),
        Err(StoreError::Conflict { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes every mail of a mailbox (dropping its references on body objects and deleting
/// bodies nobody references any more), then its shard and head objects. Idempotent: a
/// mailbox already (partly) gone is finished off.
pub(crate) fn destroy(bodies: &Bodies, guid: &Guid, retry: &RetryPolicy, in_flight: usize) -> Result<()> {
    let store = bodies.index_store();
    let head_oid = names::mailbox_head(guid);
    let head = match read_head(store.as_ref(), &head_oid) {
        Ok(h) => h,
        Err(Error::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let (hdr, records) = load_records(store.as_ref(), &head_oid, guid, head, retry)?;
    let records: Vec<MailRecord> = records.into_values().collect();
    for r in crate::refs::drop_references(bodies, guid, &records, in_flight, retry) {
        r?;
    }
    let shards = if hdr.uidnext <= 1 { 0 } else { shard_of(hdr.uidnext - 1, hdr.shard_bits) + 1 };
    for k in 0..shards {
        match store.remove(&names::mailbox_shard(guid, k)) {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match store.remove(&head_oid) {
        Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The first recent UID stored in a head (`keys::RECENT`): 1 when absent, as in a fresh
/// Dovecot index (every mail is still recent).
pub(crate) fn first_recent_value(object: &str, bytes: Option<&Vec<u8>>) -> Result<u32> {
    match bytes {
        None => Ok(1),
        Some(b) => keys::parse_hex32(b).map_err(|e| Error::corrupted(object, keys::RECENT, e)),
    }
}

/// A shard as read: its applied mark, its records, and the records that failed their
/// integrity check (each reported once per process).
pub(crate) struct Shard {
    pub(crate) applied: u64,
    pub(crate) records: BTreeMap<u32, MailRecord>,
    pub(crate) damaged: BTreeMap<u32, DamagedRecord>,
}

/// Decodes the record stored under the key of `uid`: a value that fails its frame check,
/// or whose UID is not its key's, is damage confined to that one mail (the error says what
/// is wrong). The shard read here and the raw scan of `check`/`repair` both decode so.
pub(crate) fn decode_record(uid: u32, value: &[u8]) -> std::result::Result<MailRecord, String> {
    let rec: MailRecord = frame::decode(value).map_err(|e| e.to_string())?;
    if rec.uid == uid { Ok(rec) } else { Err(format!("record of UID {} stored under UID {uid}", rec.uid)) }
}

/// Reads a shard: its applied mark and every record, at one object version.
pub(crate) fn read_shard(store: &dyn ObjectStore, oid: &str) -> Result<Shard> {
    'again: loop {
        let first = match store
            .read_op(oid, &ReadOp::new().omap_get([keys::APPLIED]).omap_range("", keys::RECORD, OMAP_PAGE_MAX))
        {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => {
                return Ok(Shard { applied: 0, records: BTreeMap::new(), damaged: BTreeMap::new() });
            }
            Err(e) => return Err(e.into()),
        };
        let applied = hex_value(oid, keys::APPLIED, first.omap.as_ref().and_then(|m| m.get(keys::APPLIED)))?;
        let mut shard = Shard { applied, records: BTreeMap::new(), damaged: BTreeMap::new() };
        let mut page = first.omap_page.unwrap_or_default();
        loop {
            for (k, v) in &page.entries {
                let uid = keys::parse_record(k).map_err(|e| Error::corrupted(oid, k, e))?;
                match decode_record(uid, v) {
                    Ok(rec) => drop(shard.records.insert(uid, rec)),
                    Err(detail) => {
                        let d = DamagedRecord { object: oid.into(), key: k.clone(), detail, modseq: applied };
                        damage::report(&d.error(), "a mail record");
                        shard.damaged.insert(uid, d);
                    }
                }
            }
            if !page.more {
                return Ok(shard);
            }
            let after = page.entries.last().map(|(k, _)| k.clone()).unwrap_or_default();
            let op = ReadOp::new().assert_version(first.version).omap_range(after, keys::RECORD, OMAP_PAGE_MAX);
            page = match store.read_op(oid, &op) {
                Ok(r) => r.omap_page.unwrap_or_default(),
                Err(StoreError::Conflict { .. }) => continue 'again,
                Err(e) => return Err(e.into()),
            };
        }
    }
}

/// Applies one change to a set of records.
pub(crate) fn apply_change(records: &mut BTreeMap<u32, MailRecord>, c: &Change) {
    match &c.record {
        Some(r) => drop(records.insert(c.uid, r.clone())),
        None => drop(records.remove(&c.uid)),
    }
}

/// Reads every record of a mailbox consistently: the head, then every shard, re-reading
/// until the shards are no newer than the head (a concurrent writer may apply meanwhile),
/// with the WAL laid over them. Holds the whole mailbox in memory: only for deleting a
/// mailbox (the data path reads records by block, see [`read_block`]).
pub(crate) fn load_records(
    store: &dyn ObjectStore,
    head_oid: &str,
    guid: &Guid,
    mut head: Head,
    retry: &RetryPolicy,
) -> Result<(MailboxHeader, BTreeMap<u32, MailRecord>)> {
    let mut shards: BTreeMap<u32, Shard> = BTreeMap::new();
    let mut attempts = retry.start();
    loop {
        let bits = head.hdr.shard_bits;
        let count = if head.hdr.uidnext <= 1 { 0 } else { shard_of(head.hdr.uidnext - 1, bits) + 1 };
        let mut consistent = true;
        for k in 0..count {
            let stale = shards.get(&k).is_none_or(|s| s.applied < head.trim);
            if stale {
                shards.insert(k, read_shard(store, &names::mailbox_shard(guid, k))?);
            }
            if shards[&k].applied > head.hdr.highestmodseq {
                consistent = false;
            }
        }
        if consistent {
            let mut records = BTreeMap::new();
            for s in shards.values() {
                records.extend(s.records.iter().map(|(u, r)| (*u, r.clone())));
            }
            for e in &head.wal {
                for c in &e.changes {
                    let applied = shards.get(&shard_of(c.uid, bits)).map_or(0, |s| s.applied);
                    if e.modseq > applied {
                        apply_change(&mut records, c);
                    }
                }
            }
            return Ok((head.hdr, records));
        }
        // A shard was applied past the head just read: read the head again.
        attempts.lost(|| format!("loading mailbox {guid}"))?;
        head = read_head(store, head_oid)?;
    }
}

/// Splits the final state of changed UIDs into changed records and expunged UIDs.
pub(crate) fn split_changes(hdr: &MailboxHeader, changed: BTreeMap<u32, Option<MailRecord>>) -> Changes {
    let mut out = changes_of(hdr);
    for (uid, rec) in changed {
        match rec {
            Some(r) => out.changed.push(r),
            None => out.expunged.push(uid),
        }
    }
    out
}

/// Empty [`Changes`] carrying the header values of `hdr`.
pub(crate) fn changes_of(hdr: &MailboxHeader) -> Changes {
    Changes {
        highestmodseq: hdr.highestmodseq,
        uidvalidity: hdr.uidvalidity,
        uidnext: hdr.uidnext,
        incarnation: hdr.incarnation,
        first_recent: 1,
        keywords: hdr.keywords.len(),
        ..Default::default()
    }
}
