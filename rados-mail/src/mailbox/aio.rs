//! The native async hot paths of a mailbox (the public API is `crate::asynchronous`):
//! committing new mails and reading records with the object store's async operations
//! (librados aio), never on a blocking thread pool.
//!
//! A commit of new mails is planned exactly as the blocking path plans it (`plan.rs`, on
//! the same view, with the same delivery marks) and written as the same single guarded
//! write of the head ([`Mailbox::head_write`]), in turn with the other async commits to
//! the mailbox in the process (`aio_commit.rs`): the pool ends up in the same state, byte
//! for byte, as after [`Mailbox::commit`]. Lost races, lost replies and the WAL's
//! application are handled there with async operations too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use omap_index::names::Guid;
use omap_index::records::MailRecord;

use super::group::{Outcome, Pending};
use super::{Mailbox, check_wanted_uid, normalize_keywords, now};
use crate::body::{self, BodyWriter, SavedBody};
use crate::caches::Slot;
use crate::error::{Error, Result};
use crate::index::{BlockRead, block_bits};
use crate::layout::Places;
use crate::mailbox::{Committed, SavedMail, Transaction};
use crate::refs::body_guid;
use crate::types::AppendOptions;

/// Where a body is read from by the async fetch ([`Mailbox::body_source`]).
pub(crate) enum BodySource {
    /// From the process's body cache (verified when it was cached).
    Cached(Arc<[u8]>),
    /// From RADOS.
    Rados(Places, Guid),
}

impl Mailbox {
    /// Refuses options that [`Transaction::save`] would refuse, before any byte is written
    /// (as [`Mailbox::append`] does).
    pub(crate) fn check_append_options(&self, options: &AppendOptions) -> Result<()> {
        check_wanted_uid(options.uid)?;
        normalize_keywords(&options.keywords).map(drop)
    }

    /// A writer of a new body for this mailbox.
    pub(crate) fn body_writer(&self, received: Option<i64>) -> BodyWriter {
        BodyWriter::new(&self.data, &self.config, &self.info.guid, received)
    }

    /// A body written by [`Mailbox::body_writer`], ready for [`Transaction::save`].
    pub(crate) fn saved_mail(&self, body: SavedBody) -> SavedMail {
        SavedMail::new(body, self.data.clone(), self.info.guid)
    }

    /// [`Mailbox::commit`] of a transaction of new mails only, asynchronously: in turn with
    /// the other async commits to this mailbox in the process (`aio_commit.rs`), with async
    /// operations only.
    pub(crate) async fn commit_new_async(self: &Arc<Self>, mut txn: Transaction) -> Result<Committed> {
        if !(txn.copies.is_empty() && txn.updates.is_empty() && txn.expunges.is_empty()) {
            return Err(Error::InvalidInput("an async commit of new mails only".into()));
        }
        if txn.saves.iter().any(|s| s.mail.mailbox != self.info.guid || s.mail.body().is_none()) {
            return Err(Error::InvalidInput(format!(
                "a mail saved for another mailbox, or without its body, committed to {}",
                self.info.name
            )));
        }
        let bodies: Vec<SavedBody> = txn.saves.iter_mut().filter_map(|s| s.mail.take()).collect();
        let pending = Pending::new(txn, bodies.clone(), Vec::new(), Vec::new(), now());
        // Dropped before the write of the head was sent (a cancelled append), the bodies
        // are removed; after, they stay whatever happens to this future (orphans for
        // `check` and `repair` if it did not land), never a record without its body.
        let unsent = Unsent { mailbox: self, bodies: Some(&bodies), sent: AtomicBool::new(false) };
        let outcome = self.commit_in_turn_async(pending, &unsent.sent).await;
        unsent.disarm();
        let remove = match &outcome {
            Outcome::Done(c) => c.delivered_before.iter().filter_map(|&i| bodies.get(i)).collect(),
            Outcome::Failed(_, true) => bodies.iter().collect(),
            Outcome::Failed(_, false) => Vec::new(),
        };
        for b in remove {
            let count = body::object_count(b.psize, b.chunk_size);
            body::remove_objects_async(self.data.store().clone(), b.guid, count).await;
        }
        match outcome {
            Outcome::Done(c) => Ok(c),
            Outcome::Failed(e, _) => Err(e),
        }
    }

    /// [`Mailbox::record`] with an async read of its block when the record cache cannot
    /// serve it (the same read as the blocking path).
    pub(crate) async fn record_async(&self, uid: u32) -> Result<Option<MailRecord>> {
        let (key, read) = {
            let view = self.lock_to_read();
            if uid == 0 || uid >= view.hdr.uidnext {
                return Ok(None);
            }
            let b = uid >> block_bits(view.hdr.shard_bits);
            let key = self.block_key(&view, b);
            if let Some(block) = self.records.get(&key)
                && view.usable(&block)
            {
                return slot_record(view.slot(&block, uid));
            }
            (key, BlockRead::new(&self.info.guid, &view, b))
        };
        let result = self.store.read_op_async(&read.oid, read.op.clone()).await;
        let block = Arc::new(read.block(result)?);
        self.records.insert(key, block.clone());
        let view = self.lock_to_read();
        slot_record(view.slot(&block, uid))
    }

    /// The record of `uid` (or [`Error::NotFound`]) and where its body is read from: the
    /// cache when it holds it, else RADOS.
    pub(crate) async fn body_source(&self, uid: u32) -> Result<(MailRecord, BodySource)> {
        let rec =
            self.record_async(uid).await?.ok_or_else(|| Error::NotFound(format!("UID {uid} in {}", self.info.name)))?;
        let guid = body_guid(&self.head, &rec)?;
        let cacheable = rec.psize <= self.config.cache.max_item_bytes && self.config.cache.memory_bytes > 0;
        if cacheable && let Some(hit) = self.bodies.get(&guid, rec.crc32, rec.psize) {
            return Ok((rec, BodySource::Cached(hit)));
        }
        Ok((rec, BodySource::Rados(self.data.places()?, guid)))
    }

    /// Keeps a whole body read from RADOS (and verified against `rec`'s crc32) in the
    /// process's body cache when it is small enough, as the blocking fetch does.
    pub(crate) fn cache_body(&self, rec: &MailRecord, body: &[u8]) {
        let cacheable = rec.psize <= self.config.cache.max_item_bytes && self.config.cache.memory_bytes > 0;
        if cacheable
            && body.len() as u64 == rec.psize
            && let Ok(guid) = body_guid(&self.head, rec)
        {
            self.bodies.put(&guid, Arc::from(body));
        }
    }
}

/// The bodies of an async commit whose write of the head was not sent yet: removed when it
/// is dropped so (as a dropped transaction removes its bodies).
struct Unsent<'a> {
    mailbox: &'a Mailbox,
    bodies: Option<&'a [SavedBody]>,
    sent: AtomicBool,
}

impl Unsent<'_> {
    /// The commit is over: its outcome says what becomes of the bodies.
    fn disarm(mut self) {
        self.bodies = None;
    }
}

impl Drop for Unsent<'_> {
    fn drop(&mut self) {
        if let Some(bodies) = self.bodies.filter(|_| !self.sent.load(Ordering::SeqCst)) {
            for b in bodies {
                let count = body::object_count(b.psize, b.chunk_size);
                body::remove_objects(self.mailbox.data.store().as_ref(), &b.guid, count);
            }
        }
    }
}

fn slot_record(slot: Option<Slot>) -> Result<Option<MailRecord>> {
    match slot {
        Some(Slot::Record(r)) => Ok(Some(r)),
        Some(Slot::Damaged(d)) => Err(d.error()),
        None => Ok(None),
    }
}
