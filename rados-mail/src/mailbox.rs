//! One mailbox: appends, flags and keywords, expunges, copies and moves, fetches.
//!
//! The truth is in RADOS (see `docs/FORMAT.md`): a head object whose `hdr` value orders
//! every change (UIDs and modseqs are allocated by replacing it under an `omap_cmp` guard),
//! a write-ahead log of committed change sets in the same head object, and shard objects
//! holding the mail records. A [`Mailbox`] keeps a view of the index in memory and brings it
//! up to date with one read of the head object when nothing or little changed.

mod copy;
mod fetch;
mod prefetch;

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use objstore::{CmpOp, Error as StoreError, ObjectStore, WriteOp};
use omap_index::names;
use omap_index::records::{Change, MailRecord, MailboxHeader, WalEntry};
use omap_index::{frame, keys};

use crate::body::{self, SavedBody};
use crate::cache::BodyCache;
use crate::caches::Caches;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::{Head, View, apply_change, apply_wal, load_view, read_head};
use crate::retry::RetryPolicy;
use crate::types::{AppendOptions, Flags, MailboxInfo, MailboxUpdate, StoreMode, StoreResult};

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
    /// The store's retry policy.
    retry: RetryPolicy,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").field("name", &self.info.name).field("guid", &self.info.guid).finish()
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
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
        let retry = caches.retry.clone();
        if let Some(view) = caches.views.0.get(&key) {
            let mailbox = Mailbox { store, config, info, head, view, bodies, retry };
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
        let view = Arc::new(Mutex::new(load_view(store.as_ref(), &head, &info.guid, snapshot, &retry)?));
        caches.views.0.insert(key, view.clone());
        Ok(Mailbox { store, config, info, head, view, bodies, retry })
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
            *view = load_view(self.store.as_ref(), &self.head, &self.info.guid, head, &self.retry)?;
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
        *view = load_view(self.store.as_ref(), &self.head, &self.info.guid, head, &self.retry)?;
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
        let mut retry = self.retry.start();
        loop {
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
            retry.lost(|| format!("committing to mailbox {}", self.info.name))?;
            self.refresh(&mut view)?;
        }
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
            match apply_wal(self.store.as_ref(), &self.head, &self.info.guid, &self.retry) {
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
        let mut retry = self.retry.start();
        loop {
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
            retry.lost(|| format!("updating the header of mailbox {}", self.info.name))?;
            self.refresh(&mut view)?;
        }
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
