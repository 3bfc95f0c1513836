//! One mailbox: appends, flags and keywords, expunges, copies and moves, fetches.
//!
//! The truth is in RADOS (see `docs/FORMAT.md`): a head object whose `hdr` value orders
//! every change (UIDs and modseqs are allocated by replacing it under an `omap_cmp` guard),
//! a write-ahead log of committed change sets in the same head object, and shard objects
//! holding the mail records. A [`Mailbox`] keeps a view of the index in memory (the header
//! and the WAL, never all records: those are read by block when needed) and brings it up to
//! date with one read of the head object when nothing or little changed.

mod aio;
mod aio_commit;
mod commit;
mod copy;
mod fetch;
mod group;
mod marks;
mod plan;
mod prefetch;
mod recent;
mod records;
mod txn;

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::{Arc, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use objstore::{CmpOp, Error as StoreError, ObjectStore, WriteOp};
use omap_index::names::{self, Guid};
use omap_index::records::{MailboxHeader, WalEntry};
use omap_index::{frame, keys};

pub(crate) use aio::BodySource;
pub use txn::{Committed, ModseqSteps, SavedMail, Transaction};

use crate::body::{self, BodyWriter};
use crate::cache::BodyCache;
use crate::caches::{Caches, MailboxShared, RecordCache, SharedView};
use crate::config::Config;
use crate::delivery::{DeliveryHasher, DeliveryKey};
use crate::error::{Error, Result};
use crate::index::{Head, OVERLAY_MAX, View, apply_wal, read_head};
use crate::layout::Bodies;
use crate::retry::RetryPolicy;
use crate::types::{AppendOptions, Flags, MailboxInfo, MailboxUpdate, StoreMode, StoreResult};
use crate::watch::PushCounters;

/// One mailbox of a user. Safe to share between threads; every method is a complete
/// operation against RADOS.
///
/// Reads ([`Mailbox::record`], [`Mailbox::uids`], fetches) answer at the state of the
/// in-memory view (its header and the WAL changes it knows), reading the records they need
/// from the shards by block of UIDs, through the process's bounded record cache (see
/// [`crate::Config::record_cache_records`]); [`Mailbox::sync`] brings the view up to date
/// (one RADOS read when nothing changed) and every change brings it up to date as a side
/// effect.
pub struct Mailbox {
    store: Arc<dyn ObjectStore>,
    /// Where the user's bodies are (the data pool) and how references are kept.
    data: Bodies,
    config: Arc<Config>,
    info: MailboxInfo,
    head: String,
    /// Shared by every handle on this mailbox in the process (through the [`ViewCache`]).
    shared: SharedView,
    /// The process's body cache.
    bodies: Arc<BodyCache>,
    /// The process's record cache.
    records: RecordCache,
    /// The store's retry policy.
    retry: RetryPolicy,
    /// Counters of notifies.
    push: Arc<PushCounters>,
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
    /// Opens a mailbox: one read of its head object (the records are read from the shards
    /// when first needed).
    pub(crate) fn open(
        store: Arc<dyn ObjectStore>,
        config: Arc<Config>,
        info: MailboxInfo,
        caches: &Caches,
    ) -> Result<Mailbox> {
        let head = names::mailbox_head(&info.guid);
        let key = (store.namespace().to_string(), info.guid);
        let (bodies, records) = (caches.bodies.clone(), caches.records.clone());
        let (retry, push) = (caches.retry.clone(), caches.push.clone());
        let data = caches.layout.bodies(&store)?;
        if let Some(view) = caches.views.0.get(&key) {
            let mailbox = Mailbox { store, data, config, info, head, shared: view, bodies, records, retry, push };
            let mut view = mailbox.lock();
            match mailbox.refresh(&mut view) {
                Ok(_) => {
                    view.fresh = Some(std::time::Instant::now());
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
        let mut view = View::at_head(snapshot);
        view.fresh = Some(std::time::Instant::now());
        let view = Arc::new(MailboxShared::new(view));
        caches.views.0.insert(key, view.clone());
        Ok(Mailbox { store, data, config, info, head, shared: view, bodies, records, retry, push })
    }

    /// [`Mailbox::open`], except that a view this process has cached is used as it is (see
    /// [`crate::User::open_mailbox_to_append`]).
    pub(crate) fn open_cached(
        store: Arc<dyn ObjectStore>,
        config: Arc<Config>,
        info: MailboxInfo,
        caches: &Caches,
    ) -> Result<Mailbox> {
        let key = (store.namespace().to_string(), info.guid);
        match caches.views.0.get(&key) {
            Some(view) => {
                let head = names::mailbox_head(&info.guid);
                let (bodies, records) = (caches.bodies.clone(), caches.records.clone());
                let (retry, push) = (caches.retry.clone(), caches.push.clone());
                let data = caches.layout.bodies(&store)?;
                Ok(Mailbox { store, data, config, info, head, shared: view, bodies, records, retry, push })
            }
            None => Mailbox::open(store, config, info, caches),
        }
    }

    /// The mailbox as listed.
    pub fn info(&self) -> &MailboxInfo {
        &self.info
    }

    /// The settings of the store it belongs to.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The object store of the mailbox's user.
    pub(crate) fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The name of the head object (`mbox.<guid>`).
    pub(crate) fn head_oid(&self) -> &str {
        &self.head
    }

    /// Tells the watchers of this mailbox that a commit raised its HIGHESTMODSEQ to
    /// `modseq` (the payload: 8 bytes, little-endian). Not waited for; never fails.
    pub(super) fn notify_head(&self, modseq: u64) {
        crate::watch::notify(self.store.as_ref(), &self.push, self.config.notify, &self.head, &modseq.to_le_bytes());
    }

    fn lock(&self) -> MutexGuard<'_, View> {
        self.shared.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The view, to read records through: the head read by the open no longer serves a
    /// sync after that (see `View::fresh`).
    fn lock_to_read(&self) -> MutexGuard<'_, View> {
        let mut view = self.lock();
        view.fresh = None;
        view
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
            *view = View::at_head(head);
            return Ok(true);
        }
        view.fresh = None;
        view.first_recent = view.first_recent.max(head.first_recent);
        if head.hdr.highestmodseq == known {
            view.hdr_bytes = head.hdr_bytes.clone();
            view.wal_len = head.wal.len();
            view.head = Some(head);
            return Ok(false);
        }
        view.moved();
        let newer: Vec<WalEntry> = head.wal.iter().filter(|e| e.modseq > known).cloned().collect();
        if head.trim <= known
            && view.overlay.len() + newer.iter().map(|e| e.changes.len()).sum::<usize>() <= OVERLAY_MAX
        {
            // The WAL holds every change since the view's state: laid over what it knew,
            // the blocks cached stay good.
            view.note(&newer);
        } else {
            // The WAL no longer covers what changed (or the overlay grew large): blocks
            // read below the new trim mark are read again when needed.
            view.restart_overlay(&head);
        }
        view.hdr = head.hdr.clone();
        view.hdr_bytes = head.hdr_bytes.clone();
        view.wal_len = head.wal.len();
        view.head = Some(head);
        Ok(true)
    }

    /// The largest mail accepted, in bytes ([`crate::Config::max_mail_size`]).
    pub fn max_mail_size(&self) -> u64 {
        self.config.max_mail_size
    }

    /// [`Error::TooLarge`] when a mail of `size` bytes, known before its bytes arrive,
    /// would be refused by [`Appender::write`]: lets a mail server refuse it before the
    /// client sends it.
    pub fn check_mail_size(&self, size: u64) -> Result<()> {
        if size > self.config.max_mail_size {
            return Err(Error::TooLarge(format!(
                "mail of {size} bytes larger than {} bytes",
                self.config.max_mail_size
            )));
        }
        Ok(())
    }

    /// The most distinct keywords this mailbox may hold ([`crate::Config::max_keywords`]).
    pub fn max_keywords(&self) -> usize {
        self.config.max_keywords
    }

    /// UIDVALIDITY and incarnation from the view as last read (no RADOS operation).
    pub fn identity(&self) -> (u32, u32) {
        let view = self.lock();
        (view.hdr.uidvalidity, view.hdr.incarnation)
    }

    /// Writes `hdr` and the WAL `entries` (the last one's modseq is `hdr.highestmodseq`) in
    /// one operation guarded by the header `view` was read at, and brings `view` along.
    /// Returns false when the guard failed (a concurrent change won: refresh and retry).
    /// `marks`: the deliveries it stores (`marks.rs`): the write is also guarded by their
    /// absence, and fails as a lost race if one was delivered before.
    fn write_head(
        &self,
        view: &mut View,
        hdr: MailboxHeader,
        entries: Vec<WalEntry>,
        marks: &[marks::Mark],
    ) -> Result<bool> {
        let (op, hdr_bytes) = self.head_write(&view.hdr_bytes, &hdr, &entries, marks);
        match self.store.write_op(&self.head, &op) {
            Ok(_) => self.notify_head(hdr.highestmodseq),
            Err(StoreError::Conflict { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        if self.head_written(view, hdr, hdr_bytes, &entries) {
            self.apply_after_write(view);
        }
        Ok(true)
    }

    /// The write of [`Mailbox::write_head`], guarded by `guard` (the header the plan was
    /// made on), and the new header's bytes.
    fn head_write(
        &self,
        guard: &[u8],
        hdr: &MailboxHeader,
        entries: &[WalEntry],
        marks: &[marks::Mark],
    ) -> (WriteOp, Vec<u8>) {
        let hdr_bytes = frame::encode(hdr);
        let mut set = vec![(keys::HDR.to_string(), hdr_bytes.clone())];
        set.extend(entries.iter().map(|e| (keys::wal(e.modseq), frame::encode(e))));
        let op = WriteOp::new().omap_cmp(keys::HDR, CmpOp::Eq, guard.to_vec()).omap_set(set);
        (marks::add_marks(op, marks, self.config.delivery_window, now()), hdr_bytes)
    }

    /// Brings `view` along after a write of the head succeeded; returns whether the WAL
    /// is to be applied now ([`Mailbox::apply_after_write`]).
    fn head_written(&self, view: &mut View, hdr: MailboxHeader, hdr_bytes: Vec<u8>, entries: &[WalEntry]) -> bool {
        view.note(entries);
        view.moved();
        // The view moved past the head read last.
        view.head = None;
        view.fresh = None;
        view.hdr = hdr;
        view.hdr_bytes = hdr_bytes;
        view.wal_len += entries.len();
        view.wal_len >= self.config.wal_apply_threshold || view.overlay.len() > OVERLAY_MAX
    }

    /// Applies the WAL after a write of the head that made it long (or the overlay
    /// large), as [`Mailbox::head_written`] asked.
    fn apply_after_write(&self, view: &mut View) {
        let (at, large) = (view.hdr.highestmodseq, view.overlay.len() > OVERLAY_MAX);
        let result = apply_wal(self.store.as_ref(), &self.head, &self.info.guid, &self.retry);
        self.wal_applied(view, at, large, result);
    }

    /// Brings `view` along after the WAL was applied (`result`: how many entries are left)
    /// from a view at modseq `at` whose overlay was `large`. A view that moved on meanwhile
    /// (an async apply does not hold the lock) is left as it is: its overlay holds changes
    /// the apply may not have brought to the shards.
    fn wal_applied(&self, view: &mut View, at: u64, large: bool, result: Result<usize>) {
        // The change is committed; applying is housekeeping that anyone may finish
        // later, so its failure is not the caller's.
        match result {
            Ok(left) if view.hdr.highestmodseq == at => {
                view.wal_len = left;
                if large {
                    // Every change up to the view's state is in the shards now: the
                    // overlay starts again empty (blocks read before are read again).
                    view.overlay.clear();
                    view.wal_from = view.hdr.highestmodseq;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(mailbox = %self.info.guid, "applying the WAL: {e}"),
        }
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
            if self.write_head(&mut view, hdr, vec![WalEntry { modseq, changes: Vec::new() }], &[])? {
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
        let mut txn = Transaction::new(ModseqSteps::One);
        for (_, options) in &mails {
            check_wanted_uid(options.uid)?;
            normalize_keywords(&options.keywords)?;
        }
        for (mut body, options) in mails {
            let saved = body::save(&self.data, &self.config, &self.info.guid, body.as_mut(), options.received)?;
            txn.save(SavedMail::new(saved, self.data.clone(), self.info.guid), options)?;
        }
        Ok(self.commit(txn)?.saved)
    }

    /// Starts saving a new mail, push style: [`Appender::write`] the pieces as they come
    /// (each full chunk goes to RADOS at once: nothing is spooled), then
    /// [`Appender::finish`] and [`Transaction::save`]. `received`: IMAP INTERNALDATE, Unix
    /// seconds (`None`: now).
    pub fn appender(&self, received: Option<i64>) -> Appender {
        Appender {
            writer: BodyWriter::new(&self.data, &self.config, &self.info.guid, received),
            data: self.data.clone(),
            mailbox: self.info.guid,
            delivery: None,
        }
    }

    /// Changes flags and keywords of the given UIDs (missing UIDs are ignored), in one
    /// change set. With `unchanged_since` (CONDSTORE UNCHANGEDSINCE), mails modified after
    /// that modseq are left alone and reported in [`StoreResult::modified`].
    pub fn store(
        &self,
        uids: &[u32],
        mode: StoreMode,
        flags: Flags,
        keywords: &[&str],
        unchanged_since: Option<u64>,
    ) -> Result<StoreResult> {
        let mut txn = Transaction::new(ModseqSteps::One);
        txn.update_flags(uids, mode, flags);
        if mode == StoreMode::Replace || !keywords.is_empty() {
            txn.update_keywords(uids, mode, keywords)?;
        }
        if let Some(m) = unchanged_since {
            txn.unchanged_since(m);
        }
        let done = self.commit(txn)?;
        Ok(StoreResult { modseq: done.last_modseq, changed: done.changed, modified: done.modified })
    }
}

/// A mail being saved, push style ([`Mailbox::appender`]). Dropped without
/// [`Appender::finish`], what it wrote is removed.
pub struct Appender {
    writer: BodyWriter,
    data: Bodies,
    mailbox: Guid,
    delivery: Option<Delivery>,
}

/// The delivery an [`Appender`]'s mail is: a key given, or one computed from its bytes.
enum Delivery {
    Given(DeliveryKey),
    Hashing(Box<DeliveryHasher>),
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender").field("mailbox", &self.mailbox).field("bytes", &self.writer.len()).finish()
    }
}

impl Appender {
    /// Takes the next piece of the mail; a full chunk goes to RADOS now.
    /// [`Error::TooLarge`] as soon as the mail passes the largest size allowed (what was
    /// written is then removed, and the appender refuses further calls).
    ///
    /// For a transformed mail ([`Appender::transformed`]) these are the bytes to store,
    /// and the mail itself comes through [`Appender::write_plain`].
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.writer.write(data)?;
        if !self.writer.is_transformed()
            && let Some(Delivery::Hashing(h)) = &mut self.delivery
        {
            h.update(data);
        }
        Ok(())
    }

    /// Declares that the bytes [`Appender::write`] takes are not the mail itself but what
    /// a mail plugin made of it (Dovecot's `mail_crypt` encrypts it, `zlib` compresses
    /// it), and that the mail as the plugin was given it comes through
    /// [`Appender::write_plain`]. The mail's physical and virtual sizes, header length and
    /// delivery key are then those of the plain mail (an encrypted mail differs on every
    /// attempt: its key must not), and its record says the stored bytes are transformed
    /// ([`crate::MailRecord::plain_psize`]). Call it before the first write.
    pub fn transformed(&mut self) -> Result<()> {
        self.writer.set_transformed()
    }

    /// Takes the next piece of the plain mail of a transformed mail
    /// ([`Appender::transformed`]): measured and hashed for the delivery key, not stored.
    /// [`Error::TooLarge`] as soon as the mail passes the largest size allowed.
    pub fn write_plain(&mut self, data: &[u8]) -> Result<()> {
        self.writer.write_plain(data)?;
        if let Some(Delivery::Hashing(h)) = &mut self.delivery {
            h.update(data);
        }
        Ok(())
    }

    /// Makes the mail a delivery (what LMTP or LDA store) with the delivery key `key`, or,
    /// with `None`, the key of its bytes ([`DeliveryKey::of_message`], computed as they
    /// pass; then call this before the first [`Appender::write`]). A delivery whose key
    /// was committed to the mailbox within [`crate::Config::delivery_window`] is not stored
    /// again ([`crate::Committed::delivered_before`]).
    pub fn deliver(&mut self, key: Option<DeliveryKey>) -> Result<()> {
        self.delivery = Some(match key {
            Some(k) => Delivery::Given(k),
            None if self.writer.len() > 0 || self.writer.mail_len() > 0 => {
                return Err(Error::InvalidInput(
                    "a delivery key computed from the mail: before the first write".into(),
                ));
            }
            None => Delivery::Hashing(Box::default()),
        });
        Ok(())
    }

    /// Bytes taken so far by [`Appender::write`] (the bytes to store).
    pub fn len(&self) -> u64 {
        self.writer.len()
    }

    /// The mail's physical size so far: [`Appender::len`], or for a transformed mail the
    /// plain bytes taken by [`Appender::write_plain`].
    pub fn mail_len(&self) -> u64 {
        self.writer.mail_len()
    }

    /// The GUID the mail's body objects are named by (`mail.<guid>`); the mail's GUID
    /// unless [`AppendOptions::guid`] gives another.
    pub fn guid(&self) -> Guid {
        self.writer.guid()
    }

    /// Sets the received date (IMAP INTERNALDATE), Unix seconds; may be called until
    /// [`Appender::finish`].
    pub fn set_received(&mut self, unix_secs: i64) {
        self.writer.set_received(unix_secs);
    }

    /// The virtual size of the mail so far: line ends counted as CRLF (IMAP RFC822.SIZE);
    /// of the plain mail when it is transformed.
    pub fn vsize(&self) -> u64 {
        self.writer.vsize()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.writer.len() == 0
    }

    /// Writes the rest: the mail is complete in RADOS, ready for [`Transaction::save`].
    pub fn finish(self) -> Result<SavedMail> {
        let body = self.writer.finish()?;
        let mut mail = SavedMail::new(body, self.data, self.mailbox);
        mail.delivery = self.delivery.map(|d| match d {
            Delivery::Given(k) => k,
            Delivery::Hashing(h) => h.finish(),
        });
        Ok(mail)
    }
}
