//! Transactions: everything one mail-server transaction changes in one mailbox — new mails,
//! copies in, flag and keyword changes (add, remove, replace; with UNCHANGEDSINCE) and
//! expunges — committed as ONE guarded write on the mailbox head (`docs/FORMAT.md`,
//! "Transactions"). Either all of it becomes visible or none of it.
//!
//! Bodies are written before the commit ([`super::Appender`]); references for copies are
//! taken before it, many in flight at once; references of expunged mails are dropped after
//! it, many in flight at once. Modseqs are numbered here, in one place
//! ([`ModseqSteps`]), so a mail server's own index can count exactly what RADOS counted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use objstore::{ObjectStore, ReadOp};
use omap_index::names::Guid;
use omap_index::records::{MailRecord, WalEntry};
use omap_index::{frame, keys};
use rand::Rng;

use super::plan::plan;
use super::{Mailbox, check_wanted_uid, normalize_keywords, now};
use crate::body::{self, SavedBody};
use crate::error::{Error, Result};
use crate::index::CONTENDED;
use crate::refs::{self, body_guid};
use crate::types::{AppendOptions, Flags, StoreMode};

/// How the changes of a [`Transaction`] are numbered with modseqs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ModseqSteps {
    /// The whole transaction is one change set with one modseq.
    #[default]
    One,
    /// One modseq per record that Dovecot's transaction log writes for the same changes,
    /// in its order: the new mails; the flag changes; per keyword (in name order) the
    /// mails that gain it, then the mails that lose it; the expunges. Each becomes a WAL
    /// entry of its own, all in the same atomic write. A Dovecot index that replays the
    /// commit counts the same modseqs RADOS did.
    Dovecot,
}

/// A mail whose body is in RADOS but in no index yet ([`super::Appender::finish`]). Give it
/// to [`Transaction::save`]; dropped without a commit, its objects are removed.
pub struct SavedMail {
    body: Option<SavedBody>,
    store: Arc<dyn ObjectStore>,
    mailbox: Guid,
}

impl std::fmt::Debug for SavedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedMail").field("mailbox", &self.mailbox).field("bytes", &self.len()).finish()
    }
}

impl SavedMail {
    pub(crate) fn new(body: SavedBody, store: Arc<dyn ObjectStore>, mailbox: Guid) -> SavedMail {
        SavedMail { body: Some(body), store, mailbox }
    }

    /// The mail's size in bytes, as stored.
    pub fn len(&self) -> u64 {
        self.body.as_ref().map_or(0, |b| b.psize)
    }

    /// Whether the mail is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands the body over to an index (its objects are no longer this value's to remove).
    fn take(&mut self) -> Option<SavedBody> {
        self.body.take()
    }
}

impl Drop for SavedMail {
    fn drop(&mut self) {
        if let Some(b) = self.body.take() {
            body::remove_objects(self.store.as_ref(), &b.guid, body::object_count(b.psize, b.chunk_size));
        }
    }
}

pub(super) struct PendingSave {
    pub(super) mail: SavedMail,
    pub(super) flags: u32,
    pub(super) keywords: Vec<String>,
    pub(super) uid: Option<u32>,
    pub(super) given_guid: Vec<u8>,
}

pub(super) struct PendingCopy {
    pub(super) source: MailRecord,
    pub(super) namespace: String,
    pub(super) wanted: Option<u32>,
    pub(super) flags: Option<(u32, Vec<String>)>,
}

pub(super) enum Update {
    Flags(StoreMode, u32),
    Keywords(StoreMode, BTreeSet<String>),
}

/// The changes of one transaction on one mailbox, collected, then committed at once with
/// [`Mailbox::commit`].
#[derive(Default)]
pub struct Transaction {
    pub(super) saves: Vec<PendingSave>,
    pub(super) copies: Vec<PendingCopy>,
    pub(super) updates: Vec<(Vec<u32>, Update)>,
    pub(super) expunges: BTreeSet<u32>,
    pub(super) unchanged_since: Option<u64>,
    pub(super) steps: ModseqSteps,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("saves", &self.saves.len())
            .field("copies", &self.copies.len())
            .field("updates", &self.updates.len())
            .field("expunges", &self.expunges.len())
            .finish()
    }
}

/// What [`Mailbox::commit`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The UID of each saved mail, in the order of [`Transaction::save`].
    pub saved: Vec<u32>,
    /// For each copy, in the order of [`Transaction::copy`]: `(source UID, new UID)`, or
    /// `None` when the source mail had been expunged and its body deleted meanwhile.
    pub copied: Vec<Option<(u32, u32)>>,
    /// Existing mails whose flags or keywords changed.
    pub changed: Vec<u32>,
    /// Mails left alone because they changed after `unchanged_since` (IMAP `[MODIFIED]`).
    pub modified: Vec<u32>,
    /// Mails expunged by this commit (each expunge is reported to exactly one committer).
    pub expunged: Vec<u32>,
    /// The modseqs the commit used, `first..=last` (both 0 when nothing was written).
    pub first_modseq: u64,
    /// See `first_modseq`; the mailbox's HIGHESTMODSEQ right after the commit.
    pub last_modseq: u64,
}

impl Transaction {
    /// An empty transaction numbered as `steps` says.
    pub fn new(steps: ModseqSteps) -> Transaction {
        Transaction { steps, ..Default::default() }
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.saves.is_empty() && self.copies.is_empty() && self.updates.is_empty() && self.expunges.is_empty()
    }

    /// Adds a new mail with the options' flags, keywords, wanted UID, GUID (its received
    /// date was fixed when the body was written).
    pub fn save(&mut self, mut mail: SavedMail, options: AppendOptions) -> Result<()> {
        check_wanted_uid(options.uid)?;
        let keywords = normalize_keywords(&options.keywords)?;
        let Some(body) = mail.body.as_ref() else { return Err(Error::InvalidInput("mail saved twice".into())) };
        let given_guid = options.guid.filter(|g| *g != body.guid).map(|g| g.0.to_vec()).unwrap_or_default();
        let mail = SavedMail { body: mail.take(), store: mail.store.clone(), mailbox: mail.mailbox };
        self.saves.push(PendingSave { mail, flags: options.flags.bits(), keywords, uid: options.uid, given_guid });
        Ok(())
    }

    /// The body of the `index`-th mail given to [`Transaction::save`] (not committed yet: a
    /// mail server reads a mail it is saving), streamed from RADOS; `None` if there is no
    /// such mail. `read_chunk`: bytes per RADOS read.
    pub fn saved_body(&self, index: usize, read_chunk: u64) -> Option<crate::BodyReader> {
        let s = self.saves.get(index)?;
        let b = s.mail.body.as_ref()?;
        let rec = MailRecord {
            mail_guid: b.guid.0.to_vec(),
            psize: b.psize,
            crc32: b.crc32,
            chunk_size: b.chunk_size,
            ..Default::default()
        };
        Some(crate::BodyReader::from_rados(s.mail.store.clone(), b.guid, rec, read_chunk))
    }

    /// Adds a copy of mail `uid` of `source` (another mailbox of the same user, or the same
    /// one): the copy refers to the same body. `wanted_uid` as in [`AppendOptions::uid`];
    /// `flags`: the copy's flags and keywords (`None`: the source's). Returns false when
    /// `uid` is not in `source`'s view.
    pub fn copy(
        &mut self,
        source: &Mailbox,
        uid: u32,
        wanted_uid: Option<u32>,
        flags: Option<(Flags, &[&str])>,
    ) -> Result<bool> {
        check_wanted_uid(wanted_uid)?;
        let flags = match flags {
            Some((f, k)) => Some((f.bits(), normalize_keywords(k)?)),
            None => None,
        };
        let Some(source_rec) = source.record(uid)? else { return Ok(false) };
        let namespace = source.store.namespace().to_string();
        self.copies.push(PendingCopy { source: source_rec, namespace, wanted: wanted_uid, flags });
        Ok(true)
    }

    /// Changes the system flags of `uids` (mails not in the mailbox are ignored).
    pub fn update_flags(&mut self, uids: &[u32], mode: StoreMode, flags: Flags) {
        self.updates.push((uids.to_vec(), Update::Flags(mode, flags.bits())));
    }

    /// Changes the keywords of `uids` (mails not in the mailbox are ignored).
    pub fn update_keywords(&mut self, uids: &[u32], mode: StoreMode, keywords: &[&str]) -> Result<()> {
        let keywords = normalize_keywords(keywords)?.into_iter().collect();
        self.updates.push((uids.to_vec(), Update::Keywords(mode, keywords)));
        Ok(())
    }

    /// Expunges `uids` (mails not in the mailbox are ignored).
    pub fn expunge(&mut self, uids: &[u32]) {
        self.expunges.extend(uids.iter().copied());
    }

    /// Flag and keyword changes leave alone every mail changed after `modseq` (CONDSTORE
    /// UNCHANGEDSINCE), reporting it in [`Committed::modified`].
    pub fn unchanged_since(&mut self, modseq: u64) {
        self.unchanged_since = Some(modseq);
    }
}

impl Mailbox {
    /// Commits `txn` as one guarded write on the mailbox head (retried under the retry
    /// policy while other processes commit first). Copies' references are taken first,
    /// `ref_in_flight` at a time; expunged mails' references are dropped after it.
    ///
    /// Failure: nothing of the transaction is visible, and what it wrote before the commit
    /// (bodies, references) is removed — except after a temporary failure of the commit
    /// itself whose outcome could not be read back: then the commit may have happened, and
    /// the bodies stay (a later `check` finds them if it did not).
    pub fn commit(&self, mut txn: Transaction) -> Result<Committed> {
        let ns = self.store.namespace();
        if let Some(c) = txn.copies.iter().find(|c| c.namespace != ns) {
            return Err(Error::InvalidInput(format!("copy from namespace {:?} into {ns:?}", c.namespace)));
        }
        if txn.saves.iter().any(|s| s.mail.mailbox != self.info.guid || s.mail.store.namespace() != ns) {
            return Err(Error::InvalidInput(format!(
                "a mail saved for another mailbox committed to {}",
                self.info.name
            )));
        }
        // Copies get their UIDs in the order of the UIDs wanted, so that as many as
        // possible get theirs.
        let mut order: Vec<usize> = (0..txn.copies.len()).collect();
        order.sort_by_key(|&i| (txn.copies[i].wanted.unwrap_or(0), txn.copies[i].source.uid));
        let instances = self.reference_copies(&txn.copies)?;
        let bodies: Vec<SavedBody> = txn.saves.iter_mut().filter_map(|s| s.mail.take()).collect();
        let saved_at = now();
        if txn.updates.is_empty() && txn.expunges.is_empty() && !(bodies.is_empty() && txn.copies.is_empty()) {
            // Only new mails: committed together with those other threads of this process
            // are waiting to commit to the mailbox.
            return self.commit_grouped(super::group::Pending::new(txn, bodies, order, instances, saved_at));
        }
        let (mut view, mut retry) = (self.lock(), self.retry.start());
        let needs_records = !txn.updates.is_empty() || !txn.expunges.is_empty();
        if !bodies.is_empty() && view.contended.is_some_and(|t| t.elapsed() < CONTENDED) {
            // Contended lately: the header as it is now, after the bodies were written.
            if let Err(e) = self.refresh(&mut view) {
                drop(view);
                return Err(self.abandon(&txn, &instances, &bodies, e));
            }
        }
        let result = loop {
            if needs_records && let Err(e) = self.ensure_records(&mut view) {
                break Err(e);
            }
            let plan = match plan(&txn, &bodies, &order, &instances, &view, saved_at) {
                Ok(p) => p,
                Err(e) => break Err(e),
            };
            if plan.entries.is_empty() {
                break Ok(plan);
            }
            let guard = view.hdr_bytes.clone();
            match self.write_head(&mut view, plan.hdr.clone(), plan.entries.clone()) {
                Ok(true) => break Ok(plan),
                Ok(false) => {}
                Err(e) if e.is_temporary() => match self.landed(&guard, &plan.entries[0]) {
                    Some(true) => {
                        // It did: bring the view along (best effort; the next sync will).
                        let _ = self.refresh(&mut view);
                        break Ok(plan);
                    }
                    Some(false) => break Err(e),
                    // Unknown: the bodies and references stay; `check` finds them if
                    // the commit did not happen.
                    None => return Err(e),
                },
                Err(e) => break Err(e),
            }
            view.contended = Some(Instant::now());
            if let Err(e) = retry.lost(|| format!("committing to mailbox {}", self.info.name)) {
                break Err(e);
            }
            if let Err(e) = self.refresh(&mut view) {
                break Err(e);
            }
        };
        drop(view);
        match result {
            Ok(plan) => {
                self.drop_references_of(&plan.gone);
                Ok(plan.outcome)
            }
            Err(e) => Err(self.abandon(&txn, &instances, &bodies, e)),
        }
    }

    /// A transaction that did not commit: takes back what was written for it (the copies'
    /// references, the new mails' bodies) and returns `e`.
    pub(super) fn abandon(
        &self,
        txn: &Transaction,
        instances: &[Option<u64>],
        bodies: &[SavedBody],
        e: Error,
    ) -> Error {
        let taken: Vec<MailRecord> = txn
            .copies
            .iter()
            .zip(instances)
            .filter_map(|(c, i)| i.map(|instance| MailRecord { instance, ..c.source.clone() }))
            .collect();
        self.drop_references_of(&taken);
        for b in bodies {
            body::remove_objects(self.store.as_ref(), &b.guid, body::object_count(b.psize, b.chunk_size));
        }
        e
    }

    /// Takes a reference of this mailbox on the body of every copy, `ref_in_flight` at a
    /// time: per copy the new reference's instance, or `None` if the body is gone. On an
    /// error the references taken are dropped again.
    fn reference_copies(&self, copies: &[PendingCopy]) -> Result<Vec<Option<u64>>> {
        let mut rng = rand::rng();
        let mut bodies = Vec::with_capacity(copies.len());
        for c in copies {
            bodies.push((body_guid(&self.head, &c.source)?, rng.random::<u64>()));
        }
        let results = refs::add_references(&self.store, &self.info.guid, &bodies, self.config.ref_in_flight);
        let mut out = Vec::with_capacity(copies.len());
        let mut failure = None;
        for ((_, instance), r) in bodies.iter().zip(results) {
            match r {
                Ok(true) => out.push(Some(*instance)),
                Ok(false) => out.push(None),
                Err(e) => {
                    failure.get_or_insert(e);
                    out.push(None);
                }
            }
        }
        if let Some(e) = failure {
            let taken: Vec<MailRecord> = copies
                .iter()
                .zip(&out)
                .filter_map(|(c, i)| i.map(|instance| MailRecord { instance, ..c.source.clone() }))
                .collect();
            self.drop_references_of(&taken);
            return Err(e);
        }
        Ok(out)
    }

    /// Drops references of records no index holds (any more), `ref_in_flight` at a time. A
    /// failure leaves a reference behind (`check` reports it), never a record without body.
    pub(super) fn drop_references_of(&self, records: &[MailRecord]) {
        let results =
            refs::drop_references(&self.store, &self.info.guid, records, self.config.ref_in_flight, &self.retry);
        for (rec, r) in records.iter().zip(results) {
            if let Err(e) = r {
                tracing::warn!(mailbox = %self.info.guid, uid = rec.uid, "dropping a body reference: {e}");
            }
        }
    }

    /// After a temporary failure of a commit: did it land? Reads the WAL entry it wrote
    /// and the header. `Some(true)`: our entry is there, byte for byte; `Some(false)`: the
    /// header is still the one the commit was guarded by, so it did not land; `None`: the
    /// read failed too, or the WAL moved on (unknown).
    pub(super) fn landed(&self, guard: &[u8], first: &WalEntry) -> Option<bool> {
        let key = keys::wal(first.modseq);
        let read = self.store.read_op(&self.head, &ReadOp::new().omap_get([keys::HDR.to_string(), key.clone()]));
        let vals = read.ok()?.omap.unwrap_or_default();
        if vals.get(&key).is_some_and(|v| *v == frame::encode(first)) {
            return Some(true);
        }
        if vals.get(keys::HDR).is_some_and(|v| v == guard) {
            return Some(false);
        }
        None
    }
}
