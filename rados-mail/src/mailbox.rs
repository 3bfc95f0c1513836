//! One mailbox: appends, flags and keywords, expunges, copies and moves, fetches.
//!
//! The truth is in RADOS (see `docs/FORMAT.md`): a head object whose `hdr` value orders
//! every change (UIDs and modseqs are allocated by replacing it under an `omap_cmp` guard),
//! a write-ahead log of committed change sets in the same head object, and shard objects
//! holding the mail records. A [`Mailbox`] keeps a view of the index in memory and brings it
//! up to date with one read of the head object when nothing or little changed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use objstore::{CmpOp, Error as StoreError, OMAP_PAGE_MAX, ObjectStore, ReadOp, WriteOp};
use omap_index::names::{self, Guid, shard_of};
use omap_index::records::{Change, MailRecord, MailboxHeader, WalEntry, flags as flag_bits};
use omap_index::{frame, keys};
use rand::Rng;

use crate::body::{self, BodyReader, SavedBody};
use crate::cache::BodyCache;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Caches;
use crate::user::MailboxInfo;

/// IMAP system flags of a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u32);

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags(0);
    /// `\Seen`
    pub const SEEN: Flags = Flags(flag_bits::SEEN);
    /// `\Answered`
    pub const ANSWERED: Flags = Flags(flag_bits::ANSWERED);
    /// `\Flagged`
    pub const FLAGGED: Flags = Flags(flag_bits::FLAGGED);
    /// `\Deleted`
    pub const DELETED: Flags = Flags(flag_bits::DELETED);
    /// `\Draft`
    pub const DRAFT: Flags = Flags(flag_bits::DRAFT);

    /// From the stored bits (unknown bits are dropped).
    pub fn from_bits(bits: u32) -> Flags {
        Flags(bits & flag_bits::ALL)
    }
    /// The stored bits.
    pub fn bits(self) -> u32 {
        self.0
    }
    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// How [`Mailbox::store`] combines the given flags and keywords with the current ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// Replace them (IMAP `FLAGS`).
    Replace,
    /// Add them (IMAP `+FLAGS`).
    Add,
    /// Remove them (IMAP `-FLAGS`).
    Remove,
}

/// Options of a new mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOptions {
    /// Initial flags.
    pub flags: Flags,
    /// Initial keywords.
    pub keywords: Vec<String>,
    /// Received date (IMAP INTERNALDATE), Unix seconds; `None` means now.
    pub received: Option<i64>,
    /// The UID wanted (a migration keeps the UIDs it had). It is used when it is not below
    /// the mailbox's UIDNEXT at commit (nor below the UID given to the mail before it in
    /// the same call); otherwise the mail gets the next free UID, as Dovecot's own index
    /// does. `None`: the next free UID. [`u32::MAX`] and 0 are refused.
    pub uid: Option<u32>,
    /// The mail's GUID as mail servers show it, when not the new body's own (a migration
    /// keeps the GUIDs it had); kept in [`MailRecord::given_guid`].
    pub guid: Option<Guid>,
}

/// How [`Mailbox::copy_to_with`] and [`Mailbox::move_to_with`] make their copies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyOptions {
    /// The UID wanted for each copy, one per source UID in the same order (empty: the next
    /// free UIDs). Used as [`AppendOptions::uid`] is: a wanted UID below UIDNEXT, or not
    /// above the copy given the previous one, gets the next free UID instead.
    pub uids: Vec<u32>,
    /// The copies' flags and keywords; `None`: each keeps its source's.
    pub flags: Option<(Flags, Vec<String>)>,
}

/// What [`Mailbox::update`] changes in the mailbox header. Values only ever go up, except
/// the UIDVALIDITY, which may be set to anything but 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxUpdate {
    /// A new UIDVALIDITY.
    pub uidvalidity: Option<u32>,
    /// UIDNEXT becomes at least this (UIDs below are never handed out then).
    pub min_uidnext: Option<u32>,
    /// HIGHESTMODSEQ becomes at least this.
    pub min_highestmodseq: Option<u64>,
}

/// Mailbox status, as IMAP STATUS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Number of mails.
    pub messages: u32,
    /// Mails without `\Seen`.
    pub unseen: u32,
    /// Next UID.
    pub uidnext: u32,
    /// UIDVALIDITY.
    pub uidvalidity: u32,
    /// HIGHESTMODSEQ.
    pub highestmodseq: u64,
    /// Sum of physical sizes.
    pub psize_total: u64,
    /// Sum of virtual sizes (IMAP STATUS SIZE).
    pub vsize_total: u64,
    /// Random, not 0, chosen when the mailbox was created: a mailbox created again with the
    /// same GUID has another (0 for mailboxes created by older versions).
    pub incarnation: u32,
}

/// Outcome of [`Mailbox::store`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreResult {
    /// The modseq of the change (0 when nothing changed).
    pub modseq: u64,
    /// UIDs whose flags changed.
    pub changed: Vec<u32>,
    /// UIDs not changed because they were modified after `unchanged_since` (IMAP
    /// `[MODIFIED ...]`).
    pub modified: Vec<u32>,
}

/// What changed since a modseq ([`Mailbox::changes_since`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The mailbox's HIGHESTMODSEQ now.
    pub highestmodseq: u64,
    /// The mailbox's UIDVALIDITY, from the same read as `highestmodseq`.
    pub uidvalidity: u32,
    /// The mailbox's UIDNEXT, from the same read: above every UID in `changed`.
    pub uidnext: u32,
    /// The mailbox's incarnation, from the same read (see [`Status::incarnation`]).
    pub incarnation: u32,
    /// Current records of mails added or changed since, by UID.
    pub changed: Vec<MailRecord>,
    /// UIDs expunged since.
    pub expunged: Vec<u32>,
}

/// A consistent read of the head object.
struct Head {
    hdr: MailboxHeader,
    hdr_bytes: Vec<u8>,
    trim: u64,
    wal: Vec<WalEntry>,
}

/// The in-memory view of the index at `hdr.highestmodseq`.
struct View {
    hdr: MailboxHeader,
    hdr_bytes: Vec<u8>,
    records: BTreeMap<u32, MailRecord>,
    /// WAL entries believed to be in the head object (to decide when to apply them).
    wal_len: usize,
}

/// One mailbox of a user. Safe to share between threads; every method is a complete
/// operation against RADOS.
///
/// Reads ([`Mailbox::record`], [`Mailbox::uids`], fetches) answer from the in-memory view;
/// [`Mailbox::sync`] brings it up to date (one RADOS read when nothing changed) and every
/// change brings it up to date as a side effect.
pub struct Mailbox {
    store: Arc<dyn ObjectStore>,
    config: Arc<Config>,
    info: MailboxInfo,
    head: String,
    /// Shared by every handle on this mailbox in the process (through the [`ViewCache`]).
    view: Arc<Mutex<View>>,
    /// The process's body cache.
    bodies: Arc<BodyCache>,
}

/// The per-process cache of mailbox views, keyed by namespace and mailbox GUID. A view in
/// the cache is revalidated with one read of the head object when a handle is opened.
#[derive(Clone)]
pub(crate) struct ViewCache(Arc<quick_cache::sync::Cache<ViewKey, SharedView>>);

/// (namespace, mailbox GUID).
type ViewKey = (String, Guid);
type SharedView = Arc<Mutex<View>>;

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

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").field("name", &self.info.name).field("guid", &self.info.guid).finish()
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn decode<M: prost::Message + Default>(object: &str, key: &str, bytes: &[u8]) -> Result<M> {
    frame::decode(bytes).map_err(|e| Error::corrupted(object, key, e))
}

fn hex_value(object: &str, key: &str, bytes: Option<&Vec<u8>>) -> Result<u64> {
    match bytes {
        None => Ok(0),
        Some(b) => keys::parse_hex64(b).map_err(|e| Error::corrupted(object, key, e)),
    }
}

/// Sleeps a little before retrying a guarded update; grows with the attempt number.
fn backoff(attempt: u32) {
    let cap_ms = 1u64 << attempt.min(7); // up to 128 ms
    std::thread::sleep(Duration::from_micros(rand::rng().random_range(100..=cap_ms * 1000)));
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
pub(crate) fn destroy(store: &dyn ObjectStore, guid: &Guid) -> Result<()> {
    let head_oid = names::mailbox_head(guid);
    let head = match read_head(store, &head_oid) {
        Ok(h) => h,
        Err(Error::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let view = load_view(store, &head_oid, guid, head, crate::Config::default().max_attempts)?;
    for rec in view.records.values() {
        drop_reference(store, guid, rec)?;
    }
    let shards = if view.hdr.uidnext <= 1 { 0 } else { shard_of(view.hdr.uidnext - 1, view.hdr.shard_bits) + 1 };
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

/// Reads the head object: header, trim mark and the whole WAL tail.
fn read_head(store: &dyn ObjectStore, oid: &str) -> Result<Head> {
    let first = store
        .read_op(oid, &ReadOp::new().omap_get([keys::HDR, keys::TRIM]).omap_range("", keys::WAL, OMAP_PAGE_MAX))?;
    let vals = first.omap.unwrap_or_default();
    let hdr_bytes = vals.get(keys::HDR).cloned().ok_or_else(|| Error::Corrupted {
        object: oid.into(),
        key: Some(keys::HDR.into()),
        detail: "missing".into(),
    })?;
    let hdr: MailboxHeader = decode(oid, keys::HDR, &hdr_bytes)?;
    let trim = hex_value(oid, keys::TRIM, vals.get(keys::TRIM))?;
    let mut page = first.omap_page.unwrap_or_default();
    let mut raw = std::mem::take(&mut page.entries);
    while page.more {
        let after = raw.last().map(|(k, _)| k.clone()).unwrap_or_default();
        let op = ReadOp::new().assert_version(first.version).omap_range(after, keys::WAL, OMAP_PAGE_MAX);
        match store.read_op(oid, &op) {
            Ok(r) => {
                page = r.omap_page.unwrap_or_default();
                raw.append(&mut page.entries);
            }
            // Changed between pages: read it all again.
            Err(StoreError::Conflict { .. }) => return read_head(store, oid),
            Err(e) => return Err(e.into()),
        }
    }
    let wal = raw.iter().map(|(k, v)| decode::<WalEntry>(oid, k, v)).collect::<Result<Vec<_>>>()?;
    Ok(Head { hdr, hdr_bytes, trim, wal })
}

/// Reads a shard: its applied mark and every record, at one object version.
fn read_shard(store: &dyn ObjectStore, oid: &str) -> Result<(u64, BTreeMap<u32, MailRecord>)> {
    'again: loop {
        let first = match store
            .read_op(oid, &ReadOp::new().omap_get([keys::APPLIED]).omap_range("", keys::RECORD, OMAP_PAGE_MAX))
        {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => return Ok((0, BTreeMap::new())),
            Err(e) => return Err(e.into()),
        };
        let applied = hex_value(oid, keys::APPLIED, first.omap.as_ref().and_then(|m| m.get(keys::APPLIED)))?;
        let mut records = BTreeMap::new();
        let mut page = first.omap_page.unwrap_or_default();
        loop {
            for (k, v) in &page.entries {
                let rec: MailRecord = decode(oid, k, v)?;
                records.insert(rec.uid, rec);
            }
            if !page.more {
                return Ok((applied, records));
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
fn apply_change(records: &mut BTreeMap<u32, MailRecord>, c: &Change) {
    match &c.record {
        Some(r) => drop(records.insert(c.uid, r.clone())),
        None => drop(records.remove(&c.uid)),
    }
}

/// Loads the whole view consistently: the head, then every shard, re-reading until the
/// shards are no newer than the head (a concurrent writer may apply meanwhile).
fn load_view(store: &dyn ObjectStore, head_oid: &str, guid: &Guid, mut head: Head, attempts: u32) -> Result<View> {
    let mut shards: BTreeMap<u32, (u64, BTreeMap<u32, MailRecord>)> = BTreeMap::new();
    for attempt in 0..attempts {
        let bits = head.hdr.shard_bits;
        let count = if head.hdr.uidnext <= 1 { 0 } else { shard_of(head.hdr.uidnext - 1, bits) + 1 };
        let mut consistent = true;
        for k in 0..count {
            let stale = shards.get(&k).is_none_or(|(applied, _)| *applied < head.trim);
            if stale {
                shards.insert(k, read_shard(store, &names::mailbox_shard(guid, k))?);
            }
            if shards[&k].0 > head.hdr.highestmodseq {
                consistent = false;
            }
        }
        if consistent {
            let mut records = BTreeMap::new();
            for (_, recs) in shards.values() {
                records.extend(recs.iter().map(|(u, r)| (*u, r.clone())));
            }
            for e in &head.wal {
                for c in &e.changes {
                    let applied = shards.get(&shard_of(c.uid, bits)).map_or(0, |(a, _)| *a);
                    if e.modseq > applied {
                        apply_change(&mut records, c);
                    }
                }
            }
            let wal_len = head.wal.len();
            return Ok(View { hdr: head.hdr, hdr_bytes: head.hdr_bytes, records, wal_len });
        }
        backoff(attempt.min(3));
        head = read_head(store, head_oid)?;
    }
    Err(Error::Conflict(format!("loading mailbox {guid}")))
}

/// Drops one record's reference on its body object, deleting the body when no reference
/// is left. A body that meanwhile got a new reference (a concurrent copy) stays.
fn drop_reference(store: &dyn ObjectStore, mailbox: &Guid, rec: &MailRecord) -> Result<()> {
    let guid = Guid::from_slice(&rec.mail_guid).map_err(|e| Error::corrupted("(record)", &keys::record(rec.uid), e))?;
    let oid = names::mail(&guid);
    match store.omap_rm_keys(&oid, &[&keys::reference(mailbox, rec.instance)]) {
        Ok(_) => {}
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let left = match store.read_op(&oid, &ReadOp::new().omap_range("", keys::REFERENCE, 1)) {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if left.omap_page.is_some_and(|p| p.entries.is_empty()) {
        match store.write_op(&oid, &WriteOp::new().assert_version(left.version).remove()) {
            Ok(_) => {
                // The first object is gone: nobody can reach the other chunks any more.
                let objects = body::object_count(rec.psize, rec.chunk_size);
                for n in 1..objects {
                    match store.remove(&names::mail_chunk(&guid, n)) {
                        Ok(()) | Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Validates keywords (IMAP flag-keyword atoms) and returns them sorted, deduplicated.
fn normalize_keywords(keywords: &[impl AsRef<str>]) -> Result<Vec<String>> {
    let mut out = BTreeSet::new();
    for k in keywords {
        let k = k.as_ref();
        let bad = k.is_empty()
            || k.len() > 128
            || k.starts_with('\\')
            || k.chars().any(|c| c.is_control() || c.is_whitespace() || "(){%*\"\\]".contains(c) || !c.is_ascii());
        if bad {
            return Err(Error::InvalidInput(format!("invalid keyword {k:?}")));
        }
        out.insert(k.to_string());
    }
    Ok(out.into_iter().collect())
}

/// Refuses wanted UIDs that can never be given: 0, and [`u32::MAX`] (no UIDNEXT after it).
fn check_wanted_uid(uid: Option<u32>) -> Result<()> {
    match uid {
        Some(0) => Err(Error::InvalidInput("UID 0".into())),
        Some(u32::MAX) => Err(Error::TooLarge(format!("UID {} leaves no room for UIDNEXT", u32::MAX))),
        _ => Ok(()),
    }
}

/// The UID of the next new mail of a change set: `wanted` when it is not below `*next`,
/// else `*next`; `*next` moves past it. UIDs so given are unique and increasing.
fn assign_uid(next: &mut u32, wanted: Option<u32>) -> Result<u32> {
    let uid = wanted.filter(|w| *w >= *next).unwrap_or(*next);
    if uid == u32::MAX {
        return Err(Error::TooLarge("UID space exhausted".into()));
    }
    *next = uid + 1;
    Ok(uid)
}

impl Mailbox {
    /// Opens a mailbox: one read of its head object, then its shards.
    pub(crate) fn open(
        store: Arc<dyn ObjectStore>,
        config: Arc<Config>,
        info: MailboxInfo,
        caches: &Caches,
    ) -> Result<Mailbox> {
        let head = names::mailbox_head(&info.guid);
        let key = (store.namespace().to_string(), info.guid);
        let bodies = caches.bodies.clone();
        if let Some(view) = caches.views.0.get(&key) {
            let mailbox = Mailbox { store, config, info, head, view, bodies };
            let mut view = mailbox.lock();
            match mailbox.refresh(&mut view) {
                Ok(_) => {
                    drop(view);
                    return Ok(mailbox);
                }
                Err(Error::NotFound(_)) => return Err(Error::NotFound(format!("mailbox {}", mailbox.info.name))),
                Err(e) => return Err(e),
            }
        }
        let snapshot = read_head(store.as_ref(), &head).map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(format!("mailbox {}", info.name)),
            e => e,
        })?;
        let view = Arc::new(Mutex::new(load_view(store.as_ref(), &head, &info.guid, snapshot, config.max_attempts)?));
        caches.views.0.insert(key, view.clone());
        Ok(Mailbox { store, config, info, head, view, bodies })
    }

    /// The mailbox as listed.
    pub fn info(&self) -> &MailboxInfo {
        &self.info
    }

    fn lock(&self) -> MutexGuard<'_, View> {
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the view up to date: one read of the head object, plus the shards only when
    /// the WAL no longer covers what changed. Returns whether anything changed.
    pub fn sync(&self) -> Result<bool> {
        let mut view = self.lock();
        self.refresh(&mut view)
    }

    fn refresh(&self, view: &mut View) -> Result<bool> {
        let head = read_head(self.store.as_ref(), &self.head)?;
        self.catch_up(view, head)
    }

    /// Brings the view up to `head`, a fresh read of the head object.
    fn catch_up(&self, view: &mut View, head: Head) -> Result<bool> {
        let known = view.hdr.highestmodseq;
        if head.hdr.incarnation != view.hdr.incarnation || head.hdr.highestmodseq < known {
            // Another mailbox with the same GUID (deleted and created again): nothing of
            // the view is valid any more.
            *view = load_view(self.store.as_ref(), &self.head, &self.info.guid, head, self.config.max_attempts)?;
            return Ok(true);
        }
        if head.hdr.highestmodseq == known {
            view.hdr_bytes = head.hdr_bytes;
            view.wal_len = head.wal.len();
            return Ok(false);
        }
        if head.trim <= known {
            for e in head.wal.iter().filter(|e| e.modseq > known) {
                e.changes.iter().for_each(|c| apply_change(&mut view.records, c));
            }
            view.hdr = head.hdr;
            view.hdr_bytes = head.hdr_bytes;
            view.wal_len = head.wal.len();
            return Ok(true);
        }
        *view = load_view(self.store.as_ref(), &self.head, &self.info.guid, head, self.config.max_attempts)?;
        Ok(true)
    }

    /// Commits one change set: `plan` looks at the current view and returns the changes
    /// (each record already carrying `modseq`), or `None` when there is nothing to do.
    /// Retries on concurrent changes. Returns the modseq and what `plan` returned.
    fn commit<T>(
        &self,
        mut plan: impl FnMut(&View, u64) -> Result<Option<(Vec<Change>, T)>>,
    ) -> Result<Option<(u64, T)>> {
        let mut view = self.lock();
        for attempt in 0..self.config.max_attempts {
            let modseq = view.hdr.highestmodseq + 1;
            let Some((changes, out)) = plan(&view, modseq)? else {
                return Ok(None);
            };
            let mut hdr = view.hdr.clone();
            hdr.highestmodseq = modseq;
            for c in &changes {
                if let Some(old) = view.records.get(&c.uid) {
                    hdr.messages -= 1;
                    hdr.psize_total -= old.psize;
                    hdr.vsize_total -= old.vsize;
                }
                if let Some(new) = &c.record {
                    hdr.messages += 1;
                    hdr.psize_total += new.psize;
                    hdr.vsize_total += new.vsize;
                    hdr.uidnext = hdr.uidnext.max(new.uid + 1);
                }
            }
            if self.write_head(&mut view, hdr, WalEntry { modseq, changes })? {
                return Ok(Some((modseq, out)));
            }
            backoff(attempt);
            self.refresh(&mut view)?;
        }
        Err(Error::Conflict(format!("mailbox {}", self.info.name)))
    }

    /// Writes `hdr` and the WAL entry `entry` (whose modseq is `hdr.highestmodseq`) in one
    /// operation guarded by the header `view` was read at, and brings `view` along.
    /// Returns false when the guard failed (a concurrent change won: refresh and retry).
    fn write_head(&self, view: &mut View, hdr: MailboxHeader, entry: WalEntry) -> Result<bool> {
        let hdr_bytes = frame::encode(&hdr);
        let op = WriteOp::new()
            .omap_cmp(keys::HDR, CmpOp::Eq, view.hdr_bytes.clone())
            .omap_set([(keys::HDR.to_string(), hdr_bytes.clone()), (keys::wal(entry.modseq), frame::encode(&entry))]);
        match self.store.write_op(&self.head, &op) {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        entry.changes.iter().for_each(|c| apply_change(&mut view.records, c));
        view.hdr = hdr;
        view.hdr_bytes = hdr_bytes;
        view.wal_len += 1;
        if view.wal_len >= self.config.wal_apply_threshold {
            // The change is committed; applying is housekeeping that anyone may finish
            // later, so its failure is not the caller's.
            match apply_wal(self.store.as_ref(), &self.head, &self.info.guid) {
                Ok(left) => view.wal_len = left,
                Err(e) => tracing::warn!(mailbox = %self.info.guid, "applying the WAL: {e}"),
            }
        }
        Ok(true)
    }

    /// Changes the header: a new UIDVALIDITY, a higher UIDNEXT, a higher HIGHESTMODSEQ
    /// (what a migration brings along). It is one change set of its own, without mail
    /// changes, whose modseq is `max(HIGHESTMODSEQ + 1, min_highestmodseq)`. Returns
    /// whether anything changed (nothing does when every value already is as asked).
    ///
    /// The mailbox list keeps a copy of the UIDVALIDITY: [`crate::User::update_mailbox`]
    /// changes both.
    pub fn update(&self, update: &MailboxUpdate) -> Result<bool> {
        if update.uidvalidity == Some(0) {
            return Err(Error::InvalidInput("UIDVALIDITY 0".into()));
        }
        if update.min_uidnext == Some(0) {
            return Err(Error::InvalidInput("UIDNEXT 0".into()));
        }
        let mut view = self.lock();
        for attempt in 0..self.config.max_attempts {
            let mut hdr = view.hdr.clone();
            hdr.uidvalidity = update.uidvalidity.unwrap_or(hdr.uidvalidity);
            hdr.uidnext = hdr.uidnext.max(update.min_uidnext.unwrap_or(0));
            let min_modseq = update.min_highestmodseq.unwrap_or(0);
            if hdr == view.hdr && hdr.highestmodseq >= min_modseq {
                return Ok(false);
            }
            let modseq = (hdr.highestmodseq + 1).max(min_modseq);
            hdr.highestmodseq = modseq;
            if self.write_head(&mut view, hdr, WalEntry { modseq, changes: Vec::new() })? {
                return Ok(true);
            }
            backoff(attempt);
            self.refresh(&mut view)?;
        }
        Err(Error::Conflict(format!("mailbox {}", self.info.name)))
    }

    /// Appends one mail; returns its UID. The body is streamed to RADOS in chunks, never
    /// held whole in memory.
    pub fn append(&self, body: impl Read, options: AppendOptions) -> Result<u32> {
        let uids = self.append_many(vec![(Box::new(body) as Box<dyn Read>, options)])?;
        Ok(uids[0])
    }

    /// Appends several mails with one UID allocation (a contiguous UID range, one modseq).
    pub fn append_many(&self, mails: Vec<(Box<dyn Read + '_>, AppendOptions)>) -> Result<Vec<u32>> {
        let mut saved = Vec::with_capacity(mails.len());
        let mut prepared = Vec::with_capacity(mails.len());
        for (_, options) in &mails {
            check_wanted_uid(options.uid)?;
        }
        for (mut body, options) in mails {
            let keywords = normalize_keywords(&options.keywords)?;
            match body::save(&self.store, &self.config, &self.info.guid, body.as_mut(), options.received) {
                Ok(s) => {
                    let given = options.guid.filter(|g| *g != s.guid).map(|g| g.0.to_vec()).unwrap_or_default();
                    prepared.push((options.flags, keywords, options.uid, given));
                    saved.push(s);
                }
                Err(e) => {
                    self.discard_bodies(&saved);
                    return Err(e);
                }
            }
        }
        let result = self.commit(|view, modseq| {
            let mut next = view.hdr.uidnext;
            let mut changes = Vec::with_capacity(saved.len());
            let mut uids = Vec::with_capacity(saved.len());
            for (s, (flags, keywords, wanted, given)) in saved.iter().zip(&prepared) {
                let uid = assign_uid(&mut next, *wanted)?;
                let record = MailRecord {
                    uid,
                    mail_guid: s.guid.0.to_vec(),
                    instance: s.instance,
                    flags: flags.bits(),
                    keywords: keywords.clone(),
                    modseq,
                    psize: s.psize,
                    vsize: s.vsize,
                    hdr_len: s.hdr_len,
                    received: s.received,
                    saved: s.saved,
                    crc32: s.crc32,
                    chunk_size: s.chunk_size,
                    given_guid: given.clone(),
                };
                changes.push(Change { uid, prev_modseq: 0, record: Some(record) });
                uids.push(uid);
            }
            Ok(Some((changes, uids)))
        });
        match result {
            Ok(Some((_, uids))) => Ok(uids),
            Ok(None) => unreachable!("appends always commit"),
            Err(e) => {
                if !e.is_temporary() {
                    self.discard_bodies(&saved);
                }
                // On a temporary failure the commit may have happened without us hearing
                // of it: the bodies stay; if unreferenced, `check` finds them as orphans.
                Err(e)
            }
        }
    }

    fn discard_bodies(&self, saved: &[SavedBody]) {
        for s in saved {
            body::remove_objects(self.store.as_ref(), &s.guid, body::object_count(s.psize, s.chunk_size));
        }
    }

    /// Changes flags and keywords of the given UIDs (missing UIDs are ignored). With
    /// `unchanged_since` (CONDSTORE UNCHANGEDSINCE), mails modified after that modseq are
    /// left alone and reported in [`StoreResult::modified`].
    pub fn store(
        &self,
        uids: &[u32],
        mode: StoreMode,
        flags: Flags,
        keywords: &[&str],
        unchanged_since: Option<u64>,
    ) -> Result<StoreResult> {
        let keywords = normalize_keywords(keywords)?;
        let mut outcome = StoreResult::default();
        self.commit(|view, modseq| {
            outcome = StoreResult::default();
            let mut changes = Vec::new();
            for uid in uids.iter().copied().collect::<BTreeSet<_>>() {
                let Some(cur) = view.records.get(&uid) else { continue };
                if unchanged_since.is_some_and(|u| cur.modseq > u) {
                    outcome.modified.push(uid);
                    continue;
                }
                let mut kw: BTreeSet<String> = cur.keywords.iter().cloned().collect();
                let new_flags = match mode {
                    StoreMode::Replace => {
                        kw = keywords.iter().cloned().collect();
                        flags.bits()
                    }
                    StoreMode::Add => {
                        kw.extend(keywords.iter().cloned());
                        cur.flags | flags.bits()
                    }
                    StoreMode::Remove => {
                        for k in &keywords {
                            kw.remove(k);
                        }
                        cur.flags & !flags.bits()
                    }
                };
                let new_kw: Vec<String> = kw.into_iter().collect();
                if new_flags == cur.flags && new_kw == cur.keywords {
                    continue;
                }
                let record = MailRecord { flags: new_flags, keywords: new_kw, modseq, ..cur.clone() };
                changes.push(Change { uid, prev_modseq: cur.modseq, record: Some(record) });
                outcome.changed.push(uid);
            }
            if changes.is_empty() {
                return Ok(None);
            }
            outcome.modseq = modseq;
            Ok(Some((changes, ())))
        })?;
        Ok(outcome)
    }
}

impl Mailbox {
    /// Expunges the given UIDs (missing ones are ignored); returns those expunged. Bodies
    /// lose this mailbox's reference, and are deleted when no other mailbox refers to them.
    pub fn expunge(&self, uids: &[u32]) -> Result<Vec<u32>> {
        let mut gone: Vec<MailRecord> = Vec::new();
        self.commit(|view, _modseq| {
            gone = uids
                .iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .iter()
                .filter_map(|u| view.records.get(u).cloned())
                .collect();
            if gone.is_empty() {
                return Ok(None);
            }
            let changes = gone.iter().map(|r| Change { uid: r.uid, prev_modseq: r.modseq, record: None }).collect();
            Ok(Some((changes, ())))
        })?;
        for rec in &gone {
            // The expunge is committed; a body left behind by a failure here is an orphan
            // that `check` finds, never a dangling record.
            if let Err(e) = drop_reference(self.store.as_ref(), &self.info.guid, rec) {
                tracing::warn!(uid = rec.uid, "dropping a body reference: {e}");
            }
        }
        Ok(gone.iter().map(|r| r.uid).collect())
    }

    /// Expunges every mail flagged `\Deleted` (IMAP EXPUNGE).
    pub fn expunge_deleted(&self) -> Result<Vec<u32>> {
        let uids: Vec<u32> = {
            let view = self.lock();
            view.records.values().filter(|r| r.flags & flag_bits::DELETED != 0).map(|r| r.uid).collect()
        };
        self.expunge(&uids)
    }

    /// Copies mails into `dest` without copying bytes: each copy is a new record referring
    /// to the same body object, which gains a reference first. Returns `(source UID,
    /// destination UID)` pairs, ascending by source UID; mails expunged meanwhile are
    /// skipped.
    pub fn copy_to(&self, uids: &[u32], dest: &Mailbox) -> Result<Vec<(u32, u32)>> {
        self.copy_to_with(uids, dest, &CopyOptions::default())
    }

    /// [`Mailbox::copy_to`] with wanted UIDs, or flags and keywords, for the copies. A UID
    /// given twice is copied once (with the first wanted UID given for it).
    pub fn copy_to_with(&self, uids: &[u32], dest: &Mailbox, options: &CopyOptions) -> Result<Vec<(u32, u32)>> {
        if !options.uids.is_empty() && options.uids.len() != uids.len() {
            return Err(Error::InvalidInput(format!(
                "{} wanted UIDs for {} mails to copy",
                options.uids.len(),
                uids.len()
            )));
        }
        options.uids.iter().try_for_each(|u| check_wanted_uid(Some(*u)))?;
        let new_flags = match &options.flags {
            Some((flags, keywords)) => Some((flags.bits(), normalize_keywords(keywords)?)),
            None => None,
        };
        // Source UID -> the UID wanted for its copy, the first one given.
        let mut wanted: BTreeMap<u32, Option<u32>> = BTreeMap::new();
        for (i, uid) in uids.iter().enumerate() {
            wanted.entry(*uid).or_insert_with(|| options.uids.get(i).copied());
        }
        let mut sources: Vec<(MailRecord, Option<u32>)> = {
            let view = self.lock();
            wanted.iter().filter_map(|(u, w)| view.records.get(u).map(|r| (r.clone(), *w))).collect()
        };
        // Copies get their UIDs in the order of the UIDs wanted, so that as many as
        // possible get theirs.
        sources.sort_by_key(|(src, w)| (w.unwrap_or(0), src.uid));
        let mut referenced = Vec::new();
        let mut rng = rand::rng();
        for (src, want) in sources {
            let guid = Guid::from_slice(&src.mail_guid)
                .map_err(|e| Error::corrupted(&self.head, &keys::record(src.uid), e))?;
            let instance: u64 = rng.random();
            let op =
                WriteOp::new().assert_exists().omap_set([(keys::reference(&dest.info.guid, instance), Vec::new())]);
            match self.store.write_op(&names::mail(&guid), &op) {
                Ok(_) => referenced.push((src, instance, want)),
                Err(StoreError::NotFound { .. }) => {} // expunged and deleted meanwhile
                Err(e) => {
                    dest.release(&referenced);
                    return Err(e.into());
                }
            }
        }
        let saved = now();
        let committed = dest.commit(|view, modseq| {
            if referenced.is_empty() {
                return Ok(None);
            }
            let mut next = view.hdr.uidnext;
            let mut changes = Vec::new();
            let mut pairs = Vec::new();
            for (src, instance, want) in &referenced {
                let uid = assign_uid(&mut next, *want)?;
                let mut record = MailRecord { uid, instance: *instance, modseq, saved, ..src.clone() };
                if let Some((flags, keywords)) = &new_flags {
                    record.flags = *flags;
                    record.keywords = keywords.clone();
                }
                changes.push(Change { uid, prev_modseq: 0, record: Some(record) });
                pairs.push((src.uid, uid));
            }
            pairs.sort_unstable();
            Ok(Some((changes, pairs)))
        });
        match committed {
            Ok(done) => Ok(done.map(|(_, pairs)| pairs).unwrap_or_default()),
            Err(e) => {
                if !e.is_temporary() {
                    dest.release(&referenced);
                }
                Err(e)
            }
        }
    }

    /// Drops references taken for a copy that did not happen.
    fn release(&self, referenced: &[(MailRecord, u64, Option<u32>)]) {
        for (src, instance, _) in referenced {
            let rec = MailRecord { instance: *instance, ..src.clone() };
            if let Err(e) = drop_reference(self.store.as_ref(), &self.info.guid, &rec) {
                tracing::warn!("releasing a copy reference: {e}");
            }
        }
    }

    /// Moves mails into `dest`: a copy, then an expunge here. When it returns, each mail is
    /// in `dest` and no longer here.
    pub fn move_to(&self, uids: &[u32], dest: &Mailbox) -> Result<Vec<(u32, u32)>> {
        self.move_to_with(uids, dest, &CopyOptions::default())
    }

    /// [`Mailbox::move_to`] with the options of [`Mailbox::copy_to_with`].
    pub fn move_to_with(&self, uids: &[u32], dest: &Mailbox, options: &CopyOptions) -> Result<Vec<(u32, u32)>> {
        let pairs = self.copy_to_with(uids, dest, options)?;
        let moved: Vec<u32> = pairs.iter().map(|(s, _)| *s).collect();
        self.expunge(&moved)?;
        Ok(pairs)
    }

    /// The record of a UID in the view.
    pub fn record(&self, uid: u32) -> Result<Option<MailRecord>> {
        Ok(self.lock().records.get(&uid).cloned())
    }

    /// Records of the UIDs in `range` (inclusive), in UID order.
    pub fn records(&self, range: std::ops::RangeInclusive<u32>) -> Vec<MailRecord> {
        self.lock().records.range(range).map(|(_, r)| r.clone()).collect()
    }

    /// Every UID in the view, ascending.
    pub fn uids(&self) -> Vec<u32> {
        self.lock().records.keys().copied().collect()
    }

    /// Status after bringing the view up to date.
    pub fn status(&self) -> Result<Status> {
        let mut view = self.lock();
        self.refresh(&mut view)?;
        let unseen = view.records.values().filter(|r| r.flags & flag_bits::SEEN == 0).count() as u32;
        Ok(Status {
            messages: view.hdr.messages,
            unseen,
            uidnext: view.hdr.uidnext,
            uidvalidity: view.hdr.uidvalidity,
            highestmodseq: view.hdr.highestmodseq,
            psize_total: view.hdr.psize_total,
            vsize_total: view.hdr.vsize_total,
            incarnation: view.hdr.incarnation,
        })
    }

    fn body_of(&self, uid: u32) -> Result<(Guid, MailRecord)> {
        let rec = self.record(uid)?.ok_or_else(|| Error::NotFound(format!("UID {uid} in {}", self.info.name)))?;
        let guid = Guid::from_slice(&rec.mail_guid).map_err(|e| Error::corrupted(&self.head, &keys::record(uid), e))?;
        Ok((guid, rec))
    }

    /// A small body from the cache, or read whole from RADOS (crc32 verified) and cached;
    /// `None` for bodies too large to cache, which are always streamed.
    fn cached_body(&self, guid: &Guid, rec: &MailRecord) -> Result<Option<Arc<[u8]>>> {
        if rec.psize > self.config.cache.max_item_bytes || self.config.cache.memory_bytes == 0 {
            return Ok(None);
        }
        if let Some(hit) = self.bodies.get(guid, rec.crc32, rec.psize) {
            return Ok(Some(hit));
        }
        let bytes =
            body::read_range(self.store.as_ref(), guid, rec, 0, rec.psize, self.config.read_chunk.max(1) as u64)?;
        let crc = crc32fast::hash(&bytes);
        if crc != rec.crc32 || bytes.len() as u64 != rec.psize {
            return Err(Error::Corrupted {
                object: names::mail(guid),
                key: None,
                detail: format!(
                    "body crc32 {crc:08x} / {} bytes, record says {:08x} / {}",
                    bytes.len(),
                    rec.crc32,
                    rec.psize
                ),
            });
        }
        let bytes: Arc<[u8]> = bytes.into();
        self.bodies.put(guid, bytes.clone());
        Ok(Some(bytes))
    }

    /// Streams a whole body; the crc32 is verified when it has been read to the end. Small
    /// bodies come from (and go to) the local cache: a cache hit costs no RADOS operation.
    pub fn open_body(&self, uid: u32) -> Result<BodyReader> {
        let (guid, rec) = self.body_of(uid)?;
        if let Some(bytes) = self.cached_body(&guid, &rec)? {
            return Ok(BodyReader::from_memory(bytes, rec.crc32));
        }
        Ok(BodyReader::from_rados(self.store.clone(), guid, rec, self.config.read_chunk as u64))
    }

    /// `len` bytes of a body from `offset` (fewer at its end); from the cache when small.
    pub fn read_range(&self, uid: u32, offset: u64, len: u64) -> Result<Vec<u8>> {
        let (guid, rec) = self.body_of(uid)?;
        if let Some(bytes) = self.cached_body(&guid, &rec)? {
            let start = (offset as usize).min(bytes.len());
            let end = start.saturating_add(len.min(usize::MAX as u64) as usize).min(bytes.len());
            return Ok(bytes[start..end].to_vec());
        }
        body::read_range(self.store.as_ref(), &guid, &rec, offset, len, self.config.read_chunk.max(1) as u64)
    }

    /// The header of a mail, with the empty line that ends it.
    pub fn header(&self, uid: u32) -> Result<Vec<u8>> {
        let rec = self.record(uid)?.ok_or_else(|| Error::NotFound(format!("UID {uid} in {}", self.info.name)))?;
        self.read_range(uid, 0, rec.hdr_len)
    }

    /// What changed since `modseq` (QRESYNC-style): records added or changed, and UIDs
    /// expunged. One read of the head object when the WAL still covers it; otherwise the
    /// shards' modseq indexes and tombstones. The mailbox's view is brought up to the same
    /// read, so [`Mailbox::record`] agrees with the changes returned.
    pub fn changes_since(&self, modseq: u64) -> Result<Changes> {
        let head = read_head(self.store.as_ref(), &self.head)?;
        if head.trim <= modseq {
            let mut changed: BTreeMap<u32, Option<MailRecord>> = BTreeMap::new();
            for e in head.wal.iter().filter(|e| e.modseq > modseq) {
                for c in &e.changes {
                    changed.insert(c.uid, c.record.clone());
                }
            }
            let out = split_changes(&head.hdr, changed);
            // The view follows the same read, so records read next agree with these
            // changes (as after `status`), still one RADOS read in all.
            self.catch_up(&mut self.lock(), head)?;
            return Ok(out);
        }
        // The WAL was trimmed past `modseq`: bring the view up to date with the head just
        // read (no second read) and ask the shards which UIDs were expunged since.
        let wal_expunged: Vec<u32> = head
            .wal
            .iter()
            .filter(|e| e.modseq > modseq)
            .flat_map(|e| e.changes.iter().filter(|c| c.record.is_none()).map(|c| c.uid))
            .collect();
        let mut view = self.lock();
        self.catch_up(&mut view, head)?;
        let bits = view.hdr.shard_bits;
        let count = if view.hdr.uidnext <= 1 { 0 } else { shard_of(view.hdr.uidnext - 1, bits) + 1 };
        let mut expunged = BTreeSet::new();
        for k in 0..count {
            let oid = names::mailbox_shard(&self.info.guid, k);
            let mut after = keys::after_modseq(keys::EXPUNGED, modseq);
            loop {
                let page = match self.store.omap_range(&oid, &after, keys::EXPUNGED, OMAP_PAGE_MAX) {
                    Ok(p) => p,
                    Err(StoreError::NotFound { .. }) => break,
                    Err(e) => return Err(e.into()),
                };
                for (key, _) in &page.entries {
                    let (_, uid) = keys::parse_indexed(key).map_err(|e| Error::corrupted(&oid, key, e))?;
                    expunged.insert(uid);
                }
                match page.entries.last() {
                    Some((k, _)) if page.more => after = k.clone(),
                    _ => break,
                }
            }
        }
        // Expunges still in the WAL (not yet tombstones).
        expunged.extend(wal_expunged);
        let changed: Vec<MailRecord> = view.records.values().filter(|r| r.modseq > modseq).cloned().collect();
        expunged.retain(|u| !view.records.contains_key(u));
        Ok(Changes { changed, expunged: expunged.into_iter().collect(), ..changes_of(&view.hdr) })
    }

    /// Applies the WAL to the shards and trims it now (normally done automatically).
    pub fn apply_wal(&self) -> Result<()> {
        let left = apply_wal(self.store.as_ref(), &self.head, &self.info.guid)?;
        self.lock().wal_len = left;
        Ok(())
    }
}

/// Splits the final state of changed UIDs into changed records and expunged UIDs.
fn split_changes(hdr: &MailboxHeader, changed: BTreeMap<u32, Option<MailRecord>>) -> Changes {
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
fn changes_of(hdr: &MailboxHeader) -> Changes {
    Changes {
        highestmodseq: hdr.highestmodseq,
        uidvalidity: hdr.uidvalidity,
        uidnext: hdr.uidnext,
        incarnation: hdr.incarnation,
        ..Default::default()
    }
}

/// Applies every WAL entry of the head to its shards, then trims the WAL. Safe to run by
/// many processes at once: each shard accepts entries only above its `applied` mark, under
/// an `omap_cmp` guard. Returns how many entries are left in the WAL.
fn apply_wal(store: &dyn ObjectStore, head_oid: &str, guid: &Guid) -> Result<usize> {
    let head = read_head(store, head_oid)?;
    let Some(target) = head.wal.last().map(|e| e.modseq) else { return Ok(0) };
    let bits = head.hdr.shard_bits;
    let shards: BTreeSet<u32> = head.wal.iter().flat_map(|e| e.changes.iter().map(|c| shard_of(c.uid, bits))).collect();
    for k in shards {
        let oid = names::mailbox_shard(guid, k);
        for attempt in 0..200 {
            let (applied, exists) = match store.omap_get(&oid, &[keys::APPLIED]) {
                Ok(m) => (hex_value(&oid, keys::APPLIED, m.get(keys::APPLIED))?, true),
                Err(StoreError::NotFound { .. }) => (0, false),
                Err(e) => return Err(e.into()),
            };
            // Final state of every key this shard's pending changes touch, in order.
            let mut touched: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
            let mut last = applied;
            for e in head.wal.iter().filter(|e| e.modseq > applied) {
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
                break;
            }
            let guard = if exists {
                WriteOp::new().omap_cmp(keys::APPLIED, CmpOp::Eq, keys::hex64(applied).into_bytes())
            } else {
                WriteOp::new().create_exclusive()
            };
            let rm: Vec<String> = touched.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.clone()).collect();
            let mut set: Vec<(String, Vec<u8>)> = touched.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect();
            set.push((keys::APPLIED.to_string(), keys::hex64(last).into_bytes()));
            let op = if rm.is_empty() { guard.omap_set(set) } else { guard.omap_rm_keys(rm).omap_set(set) };
            match store.write_op(&oid, &op) {
                Ok(_) => break,
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => backoff(attempt.min(4)),
                Err(e) => return Err(e.into()),
            }
        }
    }
    let trim = WriteOp::new()
        .omap_cmp(keys::TRIM, CmpOp::Lt, keys::hex64(target).into_bytes())
        .omap_rm_range(keys::wal(0), keys::wal(target + 1))
        .omap_set([(keys::TRIM, keys::hex64(target).into_bytes())]);
    match store.write_op(head_oid, &trim) {
        Ok(_) | Err(StoreError::Conflict { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(0)
}
