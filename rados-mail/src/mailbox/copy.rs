//! Expunge, copy and move: body references go in parallel, the index changes in one
//! commit per mailbox.

use std::collections::{BTreeMap, BTreeSet};

use objstore::{Error as StoreError, WriteOp};
use omap_index::keys;
use omap_index::names::{self, Guid};
use omap_index::records::{Change, MailRecord, flags as flag_bits};
use rand::Rng;

use super::{Mailbox, assign_uid, check_wanted_uid, normalize_keywords, now};
use crate::error::{Error, Result};
use crate::index::drop_reference;
use crate::types::CopyOptions;

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
}
