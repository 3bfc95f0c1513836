//! Prefetch: the bodies of many mails read with several RADOS reads in flight, into the
//! local body cache, so that the reads that follow (a FETCH of a UID range) are cache hits.
//!
//! Reading bodies one at a time costs one round trip each, back to back; a prefetch of N
//! small bodies costs the same N reads (one per body object) but `read_in_flight` of them
//! travel at once. Bodies too large for the cache are not prefetched: they are streamed
//! when read, as before.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::executor::block_on;
use futures::{FutureExt, StreamExt, stream};
use objstore::{Error as StoreError, ReadOp};
use omap_index::names::{self, Guid};
use omap_index::records::MailRecord;

use super::Mailbox;
use crate::body;
use crate::error::{Error, Result};
use crate::refs::body_guid;

/// One body to read: its record (any UID pointing at it) and the UIDs that share it.
struct Wanted {
    guid: Guid,
    rec: MailRecord,
    uids: Vec<u32>,
}

/// A body being put together from its objects as their reads complete.
struct Assembly {
    bytes: Vec<u8>,
    /// Objects not read yet.
    left: u64,
    /// Set when an object could not be used; the body is then not cached.
    failed: bool,
}

impl Mailbox {
    /// Reads the bodies of `uids` into the local body cache, keeping up to
    /// [`Config::read_in_flight`](crate::Config::read_in_flight) RADOS reads in flight, so
    /// that reading them afterwards ([`Mailbox::open_body`], [`Mailbox::read_range`],
    /// [`Mailbox::header`]) costs no RADOS operation. Returns how many bodies were read from
    /// RADOS.
    ///
    /// Costs one read per body object (one for a mail up to `chunk_size`), and nothing for
    /// bodies already cached. Skipped, and read when asked for as before: UIDs not in the
    /// view, bodies above the cache's `max_item_bytes` (streamed), every body when the
    /// memory tier is off, and bodies beyond half the memory tier's bound in one call
    /// (they would evict the first ones). Copies sharing a body read it once.
    ///
    /// Every body read is verified (length and crc32 of its record) before it is cached.
    /// Errors: [`Error::Corrupted`] naming the object when a body fails its check or a body
    /// object is missing while a record still points to it (a body removed because its
    /// mail was expunged meanwhile, as the mailbox's head then says, is no error); the
    /// other bodies are cached all the same. [`Error::Unavailable`] and other storage
    /// errors stop the prefetch.
    pub fn prefetch(&self, uids: &[u32]) -> Result<usize> {
        let wanted = self.prefetch_plan(uids)?;
        if wanted.is_empty() {
            return Ok(0);
        }
        // One read per body object, each tagged with (body, object index).
        let mut reads = Vec::new();
        for (i, w) in wanted.iter().enumerate() {
            for n in 0..body::object_count(w.rec.psize, w.rec.chunk_size) {
                let (start, len) = object_range(&w.rec, n);
                reads.push((i, n, start, len));
            }
        }
        let places = self.data.places()?;
        let in_flight = self.config.read_in_flight.max(1);
        let mut parts: HashMap<usize, Assembly> = HashMap::new();
        let mut damage: Vec<Error> = Vec::new();
        let mut missing: Vec<(usize, String)> = Vec::new();
        let mut read = 0;
        block_on(async {
            let mut done = stream::iter(reads)
                .map(|(i, n, start, len)| {
                    let oid = names::mail_part(&wanted[i].guid, n);
                    places.read_async(&oid, ReadOp::new().read(0, len)).map(move |r| (i, n, start, len, oid, r))
                })
                .buffer_unordered(in_flight);
            while let Some((i, n, start, len, oid, result)) = done.next().await {
                let w = &wanted[i];
                let part = parts.entry(i).or_insert_with(|| Assembly {
                    bytes: vec![0; w.rec.psize as usize],
                    left: body::object_count(w.rec.psize, w.rec.chunk_size),
                    failed: false,
                });
                part.left -= 1;
                match result {
                    Ok(r) => {
                        let data = r.data.unwrap_or_default();
                        if data.len() as u64 != len {
                            part.failed = true;
                            damage.push(Error::Corrupted {
                                object: oid,
                                key: None,
                                detail: format!("object {n} of the body has {} bytes, record says {len}", data.len()),
                            });
                        } else {
                            part.bytes[start as usize..(start + len) as usize].copy_from_slice(&data);
                        }
                    }
                    Err(StoreError::NotFound { .. }) => {
                        part.failed = true;
                        missing.push((i, oid));
                    }
                    Err(e) => return Err(Error::from(e)),
                }
                if part.left == 0 {
                    let part = parts.remove(&i).expect("just used");
                    if !part.failed {
                        match verified(w, part.bytes) {
                            Ok(bytes) => {
                                self.bodies.put(&w.guid, bytes);
                                read += 1;
                            }
                            Err(e) => damage.push(e),
                        }
                    }
                }
            }
            Ok(())
        })?;
        if !missing.is_empty() {
            // A body goes when the last record pointing to it is expunged: if the head
            // now says so, the view was only behind. Otherwise the body is lost.
            self.sync()?;
            for (i, oid) in missing {
                let w = &wanted[i];
                for uid in w.uids.iter().copied() {
                    if self.points_to(uid, &w.guid)? {
                        damage.push(missing_body(oid, uid));
                        break;
                    }
                }
            }
        }
        match damage.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(read),
        }
    }

    /// Which bodies of `uids` a prefetch reads: not cached, small enough, deduplicated.
    fn prefetch_plan(&self, uids: &[u32]) -> Result<Vec<Wanted>> {
        let cache = &self.config.cache;
        if cache.memory_bytes == 0 {
            return Ok(Vec::new());
        }
        let budget = cache.memory_bytes / 2;
        let records: Vec<MailRecord> = {
            let view = self.lock_to_read();
            self.records_of(&view, uids)?
        };
        let mut wanted: Vec<Wanted> = Vec::new();
        let mut seen: HashMap<Guid, usize> = HashMap::new();
        let mut skipped: HashSet<Guid> = HashSet::new();
        let mut bytes = 0u64;
        for rec in records {
            if rec.psize > cache.max_item_bytes {
                continue;
            }
            let guid = body_guid(&self.head, &rec)?;
            if let Some(&i) = seen.get(&guid) {
                wanted[i].uids.push(rec.uid);
                continue;
            }
            if skipped.contains(&guid) || bytes + rec.psize > budget {
                continue;
            }
            // A hit from the disk tier is promoted into memory: that is a prefetch too.
            if self.bodies.get(&guid, rec.crc32, rec.psize).is_some() {
                skipped.insert(guid);
                continue;
            }
            bytes += rec.psize;
            seen.insert(guid, wanted.len());
            wanted.push(Wanted { guid, uids: vec![rec.uid], rec });
        }
        Ok(wanted)
    }

    /// Whether `uid` is in the view and its record points to the body `guid`.
    fn points_to(&self, uid: u32, guid: &Guid) -> Result<bool> {
        Ok(self.record(uid)?.is_some_and(|r| r.mail_guid == guid.0))
    }

    /// What a read of the body of `rec` that found `object` missing reports: after a
    /// sync, [`Error::NotFound`] for the UID when the mail was expunged meanwhile (its
    /// body went with its last record), else [`Error::Corrupted`] naming the object.
    pub(super) fn body_gone(&self, guid: &Guid, rec: &MailRecord, object: String) -> Error {
        if let Err(e) = self.sync() {
            return e;
        }
        match self.points_to(rec.uid, guid) {
            Ok(true) => missing_body(object, rec.uid),
            Ok(false) => Error::NotFound(format!("UID {} in {}", rec.uid, self.info.name)),
            Err(e) => e,
        }
    }
}

/// Where object `n` of a body lies in it: (first byte, length).
fn object_range(rec: &MailRecord, n: u64) -> (u64, u64) {
    if rec.chunk_size == 0 {
        return (0, rec.psize);
    }
    let start = n * rec.chunk_size;
    (start, rec.chunk_size.min(rec.psize - start))
}

/// The body, if its crc32 is the record's.
fn verified(w: &Wanted, bytes: Vec<u8>) -> Result<Arc<[u8]>> {
    let crc = crc32fast::hash(&bytes);
    if crc != w.rec.crc32 {
        return Err(Error::Corrupted {
            object: names::mail(&w.guid),
            key: None,
            detail: format!("body crc32 {crc:08x}, record of UID {} says {:08x}", w.rec.uid, w.rec.crc32),
        });
    }
    Ok(bytes.into())
}

/// The damage of a body object that is gone while the record of `uid` points to it.
fn missing_body(object: String, uid: u32) -> Error {
    Error::Corrupted { object, key: None, detail: format!("body object missing; the record of UID {uid} points to it") }
}
