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

use omap_index::names::Guid;
use omap_index::records::MailRecord;

use super::{Mailbox, check_wanted_uid, normalize_keywords};
use crate::body::{self, SavedBody};
use crate::delivery::DeliveryKey;
use crate::error::{Error, Result};
use crate::layout::Bodies;
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
    /// The delivery it is ([`super::Appender::deliver`]).
    pub(super) delivery: Option<DeliveryKey>,
    /// Where the body is.
    pub(super) bodies: Bodies,
    pub(super) mailbox: Guid,
}

impl std::fmt::Debug for SavedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedMail").field("mailbox", &self.mailbox).field("bytes", &self.len()).finish()
    }
}

impl SavedMail {
    pub(crate) fn new(body: SavedBody, bodies: Bodies, mailbox: Guid) -> SavedMail {
        SavedMail { body: Some(body), delivery: None, bodies, mailbox }
    }

    /// The mail's size in bytes, as stored.
    pub fn len(&self) -> u64 {
        self.body.as_ref().map_or(0, |b| b.psize)
    }

    /// Whether the mail is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body, until handed over.
    pub(super) fn body(&self) -> Option<&SavedBody> {
        self.body.as_ref()
    }

    /// Hands the body over to an index (its objects are no longer this value's to remove).
    pub(super) fn take(&mut self) -> Option<SavedBody> {
        self.body.take()
    }
}

impl Drop for SavedMail {
    fn drop(&mut self) {
        if let Some(b) = self.body.take() {
            body::remove_objects(self.bodies.store().as_ref(), &b.guid, body::object_count(b.psize, b.chunk_size));
        }
    }
}

pub(super) struct PendingSave {
    pub(super) mail: SavedMail,
    pub(super) flags: u32,
    pub(super) keywords: Vec<String>,
    pub(super) uid: Option<u32>,
    pub(super) given_guid: Vec<u8>,
    pub(super) delivery: Option<DeliveryKey>,
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
    /// The saved mails (their indices in `saved`) that were deliveries already committed
    /// to the mailbox before, by an earlier attempt of the same delivery whose outcome its
    /// sender did not learn ([`crate::DeliveryKey`]): not stored again; their UIDs in
    /// `saved` are the ones the earlier attempt got.
    pub delivered_before: Vec<usize>,
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
        let delivery = options.delivery.or(mail.delivery);
        let mail = SavedMail { body: mail.take(), delivery, bodies: mail.bodies.clone(), mailbox: mail.mailbox };
        self.saves.push(PendingSave {
            mail,
            flags: options.flags.bits(),
            keywords,
            uid: options.uid,
            given_guid,
            delivery,
        });
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
        Some(crate::BodyReader::from_rados(s.mail.bodies.clone(), b.guid, rec, read_chunk))
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
        if let Some((_, k)) = flags {
            normalize_keywords(k)?;
        }
        let Some(source_rec) = source.record(uid)? else { return Ok(false) };
        self.copy_record(source, source_rec, wanted_uid, flags)?;
        Ok(true)
    }

    /// [`Transaction::copy`] of a record of `source` already read.
    pub(super) fn copy_record(
        &mut self,
        source: &Mailbox,
        source_rec: MailRecord,
        wanted_uid: Option<u32>,
        flags: Option<(Flags, &[&str])>,
    ) -> Result<()> {
        check_wanted_uid(wanted_uid)?;
        let flags = match flags {
            Some((f, k)) => Some((f.bits(), normalize_keywords(k)?)),
            None => None,
        };
        let namespace = source.store.namespace().to_string();
        self.copies.push(PendingCopy { source: source_rec, namespace, wanted: wanted_uid, flags });
        Ok(())
    }

    /// Adds a mail whose body is already stored (`record` describes it: its GUID, sizes,
    /// dates, crc32, chunk size, flags and keywords; its UID and instance are ignored): the
    /// new record refers to that body, as a copy does. How `repair` moves mails to
    /// `lost+found`.
    pub(crate) fn adopt(&mut self, record: MailRecord, namespace: &str) {
        self.copies.push(PendingCopy { source: record, namespace: namespace.to_string(), wanted: None, flags: None });
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
