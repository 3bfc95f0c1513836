//! Expunge, copy and move: transactions of their own ([`super::Transaction`]): the body
//! references go many in flight at once, the index changes in one commit per mailbox.

use std::collections::BTreeMap;

use omap_index::records::flags as flag_bits;

use super::{Mailbox, ModseqSteps, Transaction, check_wanted_uid};
use crate::caches::Slot;
use crate::error::{Error, Result};
use crate::types::CopyOptions;

impl Mailbox {
    /// Expunges the given UIDs (missing ones are ignored); returns those expunged. Bodies
    /// lose this mailbox's reference, and are deleted when no other mailbox refers to them.
    pub fn expunge(&self, uids: &[u32]) -> Result<Vec<u32>> {
        let mut txn = Transaction::new(ModseqSteps::One);
        txn.expunge(uids);
        Ok(self.commit(txn)?.expunged)
    }

    /// Expunges every mail flagged `\Deleted` (IMAP EXPUNGE). Reads every record (block
    /// by block) to find them.
    pub fn expunge_deleted(&self) -> Result<Vec<u32>> {
        let mut uids: Vec<u32> = Vec::new();
        {
            let view = self.lock_to_read();
            self.scan(&view, 1..=u32::MAX, |uid, slot| {
                if matches!(slot, Slot::Record(r) if r.flags & flag_bits::DELETED != 0) {
                    uids.push(uid);
                }
                true
            })?;
        }
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
        // Source UID -> the UID wanted for its copy, the first one given.
        let mut wanted: BTreeMap<u32, Option<u32>> = BTreeMap::new();
        for (i, uid) in uids.iter().enumerate() {
            wanted.entry(*uid).or_insert_with(|| options.uids.get(i).copied());
        }
        let keywords: Vec<&str> =
            options.flags.as_ref().map(|(_, k)| k.iter().map(String::as_str).collect()).unwrap_or_default();
        let flags = options.flags.as_ref().map(|(f, _)| (*f, keywords.as_slice()));
        if let Some((_, k)) = flags {
            super::normalize_keywords(k)?;
        }
        // The sources' records, one read per block not cached; a damaged one answers
        // its damage (as `Mailbox::record` does).
        let sources = {
            let view = self.lock_to_read();
            self.slots_of(&view, &wanted.keys().copied().collect::<Vec<_>>())?
        };
        let mut txn = Transaction::new(ModseqSteps::One);
        for (uid, slot) in sources {
            let rec = match slot {
                Slot::Record(r) => r,
                Slot::Damaged(d) => return Err(d.error()),
            };
            txn.copy_record(self, rec, wanted.get(&uid).copied().flatten(), flags)?;
        }
        let mut pairs: Vec<(u32, u32)> = dest.commit(txn)?.copied.into_iter().flatten().collect();
        pairs.sort_unstable();
        Ok(pairs)
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
