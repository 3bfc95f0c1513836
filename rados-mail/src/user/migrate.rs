//! What a migration (dsync) changes in a user's mailbox list: a mailbox's UIDVALIDITY,
//! UIDNEXT and HIGHESTMODSEQ, and the GUID of a mailbox that never had a mail.

use objstore::{CmpOp, WriteOp};
use omap_index::frame;
use omap_index::keys;
use omap_index::names::{Guid, MAILBOX_LIST};

use omap_index::records::ListCounters;

use super::{User, decode_info, entry_of, lost_race, name_of, normalize, not_found};
use crate::error::{Error, Result};
use crate::index;
use crate::mailbox::Mailbox;
use crate::types::{MailboxInfo, MailboxUpdate};

impl User {
    /// Changes the header of `mailbox` ([`Mailbox::update`]) and, for a new UIDVALIDITY,
    /// the copy in the mailbox list too (raising the user's UIDVALIDITY counter, so that
    /// mailboxes created later get larger ones). The header is the truth and is written
    /// first. Returns whether the header changed.
    pub fn update_mailbox(&self, mailbox: &Mailbox, update: &MailboxUpdate) -> Result<bool> {
        let changed = mailbox.update(update)?;
        let Some(uidvalidity) = update.uidvalidity else { return Ok(changed) };
        let guid = mailbox.info().guid;
        let guid_key = keys::mailbox_guid(&guid);
        self.retry(&format!("setting the UIDVALIDITY of mailbox {guid}"), || {
            let found = self.read_keys(&[&guid_key])?.and_then(|mut m| m.remove(&guid_key));
            // Deleted meanwhile: no list entry to change.
            let Some(name) = found else { return Ok(Some(())) };
            let name = name_of(&guid_key, name)?;
            let key = keys::mailbox(&name);
            let mut now = self.read_keys(&[&guid_key, &key, keys::COUNTERS])?.unwrap_or_default();
            let (Some(again), Some(current)) = (now.remove(&guid_key), now.remove(&key)) else {
                return Ok(None); // renamed or deleted in between: look again
            };
            if again != name.as_bytes() {
                return Ok(None);
            }
            let mut entry = entry_of(&self.info_of(&name, &key, &current)?);
            if entry.guid != guid.0 {
                return Ok(None);
            }
            let prev_counters = now.remove(keys::COUNTERS).unwrap_or_default();
            let mut counters =
                if prev_counters.is_empty() { ListCounters::default() } else { self.counters_of(&prev_counters)? };
            if entry.uidvalidity == uidvalidity && counters.last_uidvalidity >= uidvalidity {
                return Ok(Some(()));
            }
            entry.uidvalidity = uidvalidity;
            counters.last_uidvalidity = counters.last_uidvalidity.max(uidvalidity);
            let op = WriteOp::new()
                .omap_cmp(key.clone(), CmpOp::Eq, current)
                .omap_cmp(keys::COUNTERS, CmpOp::Eq, prev_counters)
                .omap_set([
                    (key.clone(), frame::encode(&entry)),
                    (keys::COUNTERS.to_string(), frame::encode(&counters)),
                ]);
            Ok(self.try_write(&op)?.then_some(()))
        })?;
        Ok(changed)
    }

    /// Gives the mailbox `name` the GUID `guid`, for a migration that adopts the identity
    /// a mailbox has elsewhere (Dovecot creates INBOX on first use, then dsync finds that
    /// the INBOX it syncs with has another GUID). Only a mailbox that never had a mail
    /// (UIDNEXT 1) can change its GUID: its objects are named by it. UIDVALIDITY,
    /// HIGHESTMODSEQ, special use and subscriptions stay. Handles opened before refer to
    /// the old mailbox, which is gone: they fail with [`Error::NotFound`].
    ///
    /// [`Error::InvalidInput`] for a mailbox that has had mails, [`Error::AlreadyExists`]
    /// when another mailbox of the user has `guid`, [`Error::NotFound`] if there is no
    /// such mailbox.
    ///
    /// The new head is created first, then the list entry moves to it (one guarded write),
    /// then the old head is removed, guarded by its header: a mail that a handle of the old
    /// mailbox committed in between is moved over (with a new UID), never lost.
    pub fn change_mailbox_guid(&self, name: &str, guid: &Guid) -> Result<MailboxInfo> {
        let name = normalize(name)?;
        let key = keys::mailbox(&name);
        let new_guid_key = keys::mailbox_guid(guid);
        let what = format!("changing the GUID of {name:?}");
        let (info, old_hdr_bytes) = self.retry(&what, || {
            let mut now = self.read_keys(&[&key, &new_guid_key])?.unwrap_or_default();
            let current = now.remove(&key).ok_or_else(|| not_found(&name))?;
            let info = decode_info(&name, &key, &current)?;
            if info.guid == *guid {
                return Ok(Some((info, None)));
            }
            if let Some(other) = now.remove(&new_guid_key) {
                let other = String::from_utf8_lossy(&other);
                return Err(Error::AlreadyExists(format!("mailbox GUID {guid} (mailbox {other:?})")));
            }
            let (old_hdr, old_hdr_bytes) = index::never_used_header(&*self.store, &info.guid, &what)?;
            index::create_successor_head(&*self.store, guid, &old_hdr)?;
            let new = MailboxInfo { guid: *guid, ..info.clone() };
            let op = WriteOp::new()
                .omap_cmp(key.clone(), CmpOp::Eq, current)
                .omap_cmp(new_guid_key.clone(), CmpOp::Eq, Vec::new())
                .omap_rm_keys([keys::mailbox_guid(&info.guid)])
                .omap_set([
                    (key.clone(), frame::encode(&entry_of(&new))),
                    (new_guid_key.clone(), name.clone().into_bytes()),
                ]);
            match self.store.write_op(MAILBOX_LIST, &op) {
                Ok(_) => {
                    self.list_changed();
                    Ok(Some((info, Some((new, old_hdr_bytes)))))
                }
                Err(e) if lost_race(&e) => {
                    index::destroy(&self.bodies()?, guid, &self.caches.retry, self.config.ref_in_flight)?;
                    Ok(None)
                }
                Err(e) => Err(e.into()),
            }
        })?;
        let Some((new, mut old_hdr_bytes)) = old_hdr_bytes else { return Ok(info) };
        // The list names the new mailbox now; the old one is unlisted and must go.
        let mut retry = self.caches.retry.start();
        loop {
            if index::remove_unused_head(&*self.store, &info.guid, &old_hdr_bytes)? {
                return Ok(new);
            }
            // A handle of the old mailbox committed a change meanwhile: bring its mails
            // over, then try again with the header as it is now.
            let old = Mailbox::open(self.store.clone(), self.config.clone(), info.clone(), &self.caches)?;
            let moved = old.uids()?;
            if !moved.is_empty() {
                let dest = Mailbox::open(self.store.clone(), self.config.clone(), new.clone(), &self.caches)?;
                old.move_to(&moved, &dest)?;
            }
            old_hdr_bytes = match index::header_bytes(&*self.store, &info.guid) {
                Ok(bytes) => bytes,
                Err(Error::NotFound(_)) => return Ok(new),
                Err(e) => return Err(e),
            };
            retry.lost(|| format!("retiring mailbox {} after {what}", info.guid))?;
        }
    }
}
