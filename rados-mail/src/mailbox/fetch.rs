//! Reading a mailbox: records, status, bodies (through the local cache), changes since a
//! modseq.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use objstore::{Error as StoreError, OMAP_PAGE_MAX, ReadOp};
use omap_index::keys;
use omap_index::names::{self, Guid, shard_of};
use omap_index::records::{MailRecord, flags as flag_bits};

use super::Mailbox;
use crate::body::{self, BodyReader};
use crate::caches::Slot;
use crate::error::{Error, Result};
use crate::index::{apply_wal, changes_of, hex_value, read_head, split_changes};
use crate::refs::body_guid;
use crate::types::{Changes, Status};

impl Mailbox {
    /// The record of a UID in the view: read from its shard with the others of its block
    /// (one RADOS read) unless the process's record cache holds that block.
    ///
    /// A mail whose record is damaged (it failed its integrity check) answers
    /// [`Error::Corrupted`] naming the shard object and key: the mail is there, unreadable.
    pub fn record(&self, uid: u32) -> Result<Option<MailRecord>> {
        let view = self.lock_to_read();
        match self.slot(&view, uid)? {
            Some(Slot::Record(r)) => Ok(Some(r)),
            Some(Slot::Damaged(d)) => Err(d.error()),
            None => Ok(None),
        }
    }

    /// The UIDs of the mails whose record is damaged (see [`Mailbox::record`]), with the
    /// error each answers. Reads every record (block by block).
    pub fn damaged(&self) -> Result<Vec<(u32, Error)>> {
        let view = self.lock_to_read();
        let mut out = Vec::new();
        self.scan(&view, 1..=u32::MAX, |uid, slot| {
            if let Slot::Damaged(d) = slot {
                out.push((uid, d.error()));
            }
            true
        })?;
        Ok(out)
    }

    /// Records of the UIDs in `range` (inclusive) in the view, in UID order; damaged
    /// records are left out (see [`Mailbox::damaged`]). Read block by block.
    pub fn records(&self, range: std::ops::RangeInclusive<u32>) -> Result<Vec<MailRecord>> {
        let view = self.lock_to_read();
        let mut out = Vec::new();
        self.scan(&view, range, |_, slot| {
            if let Slot::Record(r) = slot {
                out.push(r);
            }
            true
        })?;
        Ok(out)
    }

    /// Every UID in the view, ascending, those of damaged records included. Reads every
    /// record (block by block).
    pub fn uids(&self) -> Result<Vec<u32>> {
        let view = self.lock_to_read();
        let mut uids = Vec::new();
        self.scan(&view, 1..=u32::MAX, |uid, _| {
            uids.push(uid);
            true
        })?;
        Ok(uids)
    }

    /// Status after bringing the view up to date. The unseen count reads every record
    /// (block by block) unless the view counted it at the same HIGHESTMODSEQ.
    pub fn status(&self) -> Result<Status> {
        let mut view = self.lock();
        self.refresh(&mut view)?;
        let unseen = match view.unseen {
            Some((at, n)) if at == view.hdr.highestmodseq => n,
            _ => {
                let mut n = 0u32;
                self.scan(&view, 1..=u32::MAX, |_, slot| {
                    n += u32::from(matches!(slot, Slot::Record(r) if r.flags & flag_bits::SEEN == 0));
                    true
                })?;
                view.unseen = Some((view.hdr.highestmodseq, n));
                n
            }
        };
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
        Ok((body_guid(&self.head, &rec)?, rec))
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
        let read_chunk = self.config.read_chunk.max(1) as u64;
        let bytes = match body::read_range(&self.data, guid, rec, 0, rec.psize, read_chunk) {
            Ok(bytes) => bytes,
            Err(Error::NotFound(what)) => {
                let object = what.strip_prefix("object ").map_or_else(|| names::mail(guid), str::to_string);
                return Err(self.body_gone(guid, rec, object));
            }
            Err(e) => return Err(e),
        };
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

    /// Streams a whole body, seekable ([`BodyReader`] says when its crc32 is verified).
    /// Small bodies come from (and go to) the local cache: a cache hit costs no RADOS
    /// operation ([`Mailbox::prefetch`] fills the cache for many mails at once). A small
    /// body whose object is missing while the record still points to it is
    /// [`Error::Corrupted`]; [`Error::NotFound`] when the mail was expunged meanwhile.
    pub fn open_body(&self, uid: u32) -> Result<BodyReader> {
        let (guid, rec) = self.body_of(uid)?;
        if let Some(bytes) = self.cached_body(&guid, &rec)? {
            return Ok(BodyReader::from_memory(bytes, rec.crc32));
        }
        Ok(BodyReader::from_rados(self.data.clone(), guid, rec, self.config.read_chunk as u64))
    }

    /// `len` bytes of a body from `offset` (fewer at its end); from the cache when small.
    pub fn read_range(&self, uid: u32, offset: u64, len: u64) -> Result<Vec<u8>> {
        let (guid, rec) = self.body_of(uid)?;
        if let Some(bytes) = self.cached_body(&guid, &rec)? {
            let start = (offset as usize).min(bytes.len());
            let end = start.saturating_add(len.min(usize::MAX as u64) as usize).min(bytes.len());
            return Ok(bytes[start..end].to_vec());
        }
        body::read_range(&self.data, &guid, &rec, offset, len, self.config.read_chunk.max(1) as u64)
    }

    /// The header of a mail, with the empty line that ends it. [`Error::InvalidInput`] for
    /// a mail stored transformed by a mail plugin ([`MailRecord::is_transformed`]): its
    /// header length counts the plain mail, not the stored bytes, which only the plugin
    /// can turn back into the mail.
    pub fn header(&self, uid: u32) -> Result<Vec<u8>> {
        let rec = self.record(uid)?.ok_or_else(|| Error::NotFound(format!("UID {uid} in {}", self.info.name)))?;
        if rec.is_transformed() {
            return Err(Error::InvalidInput(format!(
                "UID {uid} is stored transformed by a mail plugin (mail_crypt, zlib): its header is not a byte range of the body"
            )));
        }
        self.read_range(uid, 0, rec.hdr_len)
    }

    /// What changed since `modseq` (QRESYNC-style): records added or changed, and UIDs
    /// expunged. One read of the head object when the WAL still covers it; otherwise the
    /// shards' modseq indexes and tombstones. The mailbox's view is brought up to the same
    /// read, so [`Mailbox::record`] agrees with the changes returned.
    pub fn changes_since(&self, modseq: u64) -> Result<Changes> {
        // Right after an open (or a refresh), its head read serves: one read for both.
        let fresh = self.lock().take_fresh_head();
        let head = match fresh {
            Some(h) => h,
            None => read_head(self.store.as_ref(), &self.head)?,
        };
        if head.trim <= modseq {
            let mut changed: BTreeMap<u32, Option<MailRecord>> = BTreeMap::new();
            for e in head.wal.iter().filter(|e| e.modseq > modseq) {
                for c in &e.changes {
                    changed.insert(c.uid, c.record.clone());
                }
            }
            let mut out = split_changes(&head.hdr, changed);
            out.first_recent = head.first_recent.min(head.hdr.uidnext);
            // The view follows the same read, so records read next agree with these
            // changes (as after `status`), still one RADOS read in all.
            self.catch_up(&mut self.lock(), head)?;
            return Ok(out);
        }
        // The WAL was trimmed past `modseq`: bring the view up to date with the head just
        // read (no second read), and ask the shards which UIDs changed (their modseq
        // index) and which were expunged (their tombstones) since; then read the records
        // of those alone. From 0 (an empty mail-server index), every record.
        let mut view = self.lock();
        self.catch_up(&mut view, head)?;
        let mut touched: BTreeSet<u32> = BTreeSet::new();
        let mut expunged: BTreeSet<u32> = BTreeSet::new();
        let bits = view.hdr.shard_bits;
        let count = if view.hdr.uidnext <= 1 { 0 } else { shard_of(view.hdr.uidnext - 1, bits) + 1 };
        // Per shard, one read: its applied mark and the first page of the index asked
        // (from 0: the tombstones only, every record is read anyway); more reads only
        // for a shard changed since.
        let (first, second) = if modseq > 0 { (keys::MODSEQ, Some(keys::EXPUNGED)) } else { (keys::EXPUNGED, None) };
        for k in 0..count {
            let oid = names::mailbox_shard(&self.info.guid, k);
            let after = keys::after_modseq(first, modseq);
            let op = ReadOp::new().omap_get([keys::APPLIED]).omap_range(after.clone(), first, OMAP_PAGE_MAX);
            let (applied, page) = match self.store.read_op(&oid, &op) {
                Ok(r) => (
                    hex_value(&oid, keys::APPLIED, r.omap.as_ref().and_then(|m| m.get(keys::APPLIED)))?,
                    r.omap_page.unwrap_or_default(),
                ),
                Err(StoreError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            if applied <= modseq {
                // Nothing applied to this shard since: no index key, no tombstone above.
                continue;
            }
            let into = if modseq > 0 { &mut touched } else { &mut expunged };
            self.indexed_since(&oid, first, after, Some(page), into)?;
            if let Some(prefix) = second {
                self.indexed_since(&oid, prefix, keys::after_modseq(prefix, modseq), None, &mut expunged)?;
            }
        }
        // Changes still in the WAL (not yet in the shards' indexes).
        for (uid, (m, rec)) in &view.overlay {
            if *m > modseq {
                if rec.is_some() {
                    touched.insert(*uid);
                } else {
                    expunged.insert(*uid);
                }
            }
        }
        let mut changed: Vec<MailRecord> = Vec::new();
        if modseq == 0 {
            // Every mail: no growing (a vector twice the size of the answer, at the end).
            changed.reserve_exact(view.hdr.messages as usize);
        }
        let mut present: BTreeSet<u32> = BTreeSet::new();
        let mut take = |uid: u32, slot: Slot| {
            match slot {
                Slot::Record(r) if r.modseq > modseq => changed.push(r),
                // Damaged mails are still mails: a placeholder (no flags, no GUID) keeps
                // their UID in the mail server's index; reading them answers the damage.
                Slot::Damaged(d) if d.modseq > modseq => changed.push(d.placeholder(uid)),
                _ => {}
            }
            present.insert(uid);
        };
        if modseq == 0 {
            self.scan(&view, 1..=u32::MAX, |uid, slot| {
                take(uid, slot);
                true
            })?;
        } else {
            let uids: Vec<u32> = touched.iter().chain(expunged.iter()).copied().collect();
            for (uid, slot) in self.slots_of(&view, &uids)? {
                take(uid, slot);
            }
        }
        expunged.retain(|u| !present.contains(u));
        let first_recent = view.first_recent.min(view.hdr.uidnext);
        Ok(Changes { changed, expunged: expunged.into_iter().collect(), first_recent, ..changes_of(&view.hdr) })
    }

    /// Adds to `out` the UIDs of the shard `oid`'s index keys under `prefix` (`m/` or
    /// `x/`) after the key `after`, paging as needed; `page`: the first page, if read.
    fn indexed_since(
        &self,
        oid: &str,
        prefix: &str,
        mut after: String,
        mut page: Option<objstore::OmapPage>,
        out: &mut BTreeSet<u32>,
    ) -> Result<()> {
        loop {
            let page = match page.take() {
                Some(p) => p,
                None => match self.store.omap_range(oid, &after, prefix, OMAP_PAGE_MAX) {
                    Ok(p) => p,
                    Err(StoreError::NotFound { .. }) => return Ok(()),
                    Err(e) => return Err(e.into()),
                },
            };
            for (key, _) in &page.entries {
                let (_, uid) = keys::parse_indexed(key).map_err(|e| Error::corrupted(oid, key, e))?;
                out.insert(uid);
            }
            match page.entries.last() {
                Some((k, _)) if page.more => after = k.clone(),
                _ => return Ok(()),
            }
        }
    }

    /// Applies the WAL to the shards and trims it now (normally done automatically).
    pub fn apply_wal(&self) -> Result<()> {
        let left = apply_wal(self.store.as_ref(), &self.head, &self.info.guid, &self.retry)?;
        self.lock().wal_len = left;
        Ok(())
    }
}
