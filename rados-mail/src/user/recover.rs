//! A mailbox-list entry that fails its integrity check is damage confined to that one
//! mailbox: its identity is recovered from what is intact — the `guid/` map (which GUID
//! has this name) and the mailbox's head (its UIDVALIDITY) — so the mailbox stays listed
//! and usable, and the damage is reported once per process. `repair` writes the recovered
//! entry back. Only its special-use attributes and creation time are lost.

use omap_index::names::{self, Guid};
use omap_index::records::ListCounters;
use omap_index::{frame, keys};

use super::{User, decode_info};
use crate::damage;
use crate::error::{Error, Result};
use crate::types::MailboxInfo;

impl User {
    /// The store's retry policy (for `repair`).
    pub(crate) fn retry_policy(&self) -> &crate::retry::RetryPolicy {
        &self.caches.retry
    }

    /// The store's settings (for `repair`).
    pub(crate) fn settings(&self) -> &crate::config::Config {
        &self.config
    }

    /// The info of mailbox `name` from its list entry `value` (stored under `key`), or,
    /// when that entry is damaged, recovered from the GUID map and the head.
    pub(super) fn info_of(&self, name: &str, key: &str, value: &[u8]) -> Result<MailboxInfo> {
        match decode_info(name, key, value) {
            Ok(info) => Ok(info),
            Err(e @ Error::Corrupted { .. }) => {
                damage::report(&e, "a mailbox-list entry; recovered from the GUID map and the head");
                match self.recover_info(name)? {
                    Some(info) => Ok(info),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The list's counters from their stored bytes (non-empty), or, when they are damaged,
    /// recovered: the last UIDVALIDITY handed out is at least every listed mailbox's.
    pub(super) fn counters_of(&self, bytes: &[u8]) -> Result<ListCounters> {
        match frame::decode::<ListCounters>(bytes) {
            Ok(c) => Ok(c),
            Err(e) => {
                let e = Error::corrupted(names::MAILBOX_LIST, keys::COUNTERS, e);
                damage::report(&e, "the mailbox list's counters; recovered from the entries");
                let mut last = 0;
                for (key, value) in self.scan(keys::MAILBOX)? {
                    if let Ok(info) = decode_info(&key[keys::MAILBOX.len()..], &key, &value) {
                        last = last.max(info.uidvalidity);
                    }
                }
                Ok(ListCounters { last_uidvalidity: last })
            }
        }
    }

    /// The identity of mailbox `name` from the `guid/` map and its head, if both know it.
    pub(crate) fn recover_info(&self, name: &str) -> Result<Option<MailboxInfo>> {
        let mut found = None;
        for (key, value) in self.scan(keys::MAILBOX_GUID)? {
            if value == name.as_bytes() {
                let guid = Guid::parse(&key[keys::MAILBOX_GUID.len()..]).ok();
                if found.is_some() && guid.is_some() {
                    return Ok(None); // two GUIDs claim the name: nothing to trust
                }
                found = guid;
            }
        }
        let Some(guid) = found else { return Ok(None) };
        let head = match crate::index::read_head(self.store.as_ref(), &names::mailbox_head(&guid)) {
            Ok(h) => h,
            Err(Error::NotFound(_) | Error::Corrupted { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if head.hdr.uidvalidity == 0 {
            return Ok(None);
        }
        Ok(Some(MailboxInfo {
            name: name.to_string(),
            guid,
            uidvalidity: head.hdr.uidvalidity,
            special_use: Vec::new(),
            created: 0,
        }))
    }
}
