//! The native async hot paths of a mailbox (the public API is `crate::asynchronous`):
//! committing new mails and reading records with the object store's async operations
//! (librados aio), never on a blocking thread pool in the common case.
//!
//! A commit of new mails is planned exactly as the blocking path plans it (`plan.rs`, on
//! the same view, with the same delivery marks) and written as the same single guarded
//! write of the head ([`Mailbox::head_write`]): the pool ends up in the same state, byte
//! for byte, as after [`Mailbox::commit`]. What is not done asynchronously, and goes to
//! the blocking path on tokio's blocking pool instead:
//! - a commit whose guard failed (a lost race, or a delivery stored before): counted as a
//!   lost race by the retry policy ([`crate::RetryCounts`]), then the whole transaction is
//!   committed again by [`Mailbox::commit`] (refresh, plan, retry under the same policy,
//!   so at most `max_attempts` more attempts; group commit with other threads);
//! - a commit planned on a view that lost a race lately (it reads the head first), or
//!   that the planner refuses on the view it has (the keyword limit): likewise;
//! - a commit whose reply was lost (a temporary error): whether it landed is asked on the
//!   blocking pool ([`Mailbox::landed`]), as the blocking path does;
//! - applying the WAL, when a commit made it long (once every `wal_apply_threshold`
//!   commits): housekeeping on the blocking pool, awaited.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use objstore::Error as StoreError;
use omap_index::names::Guid;
use omap_index::records::MailRecord;

use super::plan::{Limits, plan};
use super::{Mailbox, check_wanted_uid, normalize_keywords, now};
use crate::asynchronous::blocking;
use crate::body::{self, BodyWriter, SavedBody};
use crate::caches::Slot;
use crate::error::{Error, Result};
use crate::index::{BlockRead, CONTENDED, block_bits};
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

    /// [`Mailbox::commit`] of a transaction of new mails only, asynchronously (see the
    /// module documentation for what goes to the blocking path).
    pub(crate) async fn commit_new_async(self: &Arc<Self>, txn: Transaction) -> Result<Committed> {
        if !(txn.copies.is_empty() && txn.updates.is_empty() && txn.expunges.is_empty()) {
            return Err(Error::InvalidInput("an async commit of new mails only".into()));
        }
        let marks_on = !self.config.delivery_window.is_zero();
        let prepared = {
            let view = self.lock();
            let bodies: Vec<SavedBody> = txn.saves.iter().filter_map(|s| s.mail.body().cloned()).collect();
            let limits =
                Limits { mailbox: &self.info.name, max_keywords: self.config.max_keywords, can_read_all: false };
            let mut in_write = BTreeMap::new();
            let contended = view.contended.is_some_and(|t| t.elapsed() < CONTENDED);
            let planned = if contended || bodies.len() != txn.saves.len() {
                None
            } else {
                let marks = marks_on.then_some(&mut in_write);
                plan(&txn, &bodies, &[], &[], &view, now(), &BTreeMap::new(), marks, &limits).ok()
            };
            planned.filter(|p| !p.entries.is_empty()).map(|p| {
                let (op, hdr_bytes) = self.head_write(&view.hdr_bytes, &p.hdr, &p.entries, &p.marks);
                (p, op, hdr_bytes, view.hdr_bytes.clone(), view.hdr.shard_bits, bodies)
            })
        };
        let Some((plan, op, hdr_bytes, guard, shard_bits, bodies)) = prepared else {
            return self.commit_blocking(txn).await;
        };
        let started = Instant::now();
        // Once the write is sent it may land whatever happens to this future: from now on
        // a drop (a cancelled append) leaves the bodies in place (orphans for `check` and
        // `repair` if it did not land), never a record without its body.
        let mut sent = Sent(Some(txn));
        let written = self.store.write_op_async(&self.head, op).await;
        let mut txn = sent.0.take().expect("taken once");
        match written {
            Ok(_) => {
                keep_bodies(&mut txn);
                self.notify_head(plan.hdr.highestmodseq);
                let apply = {
                    let mut view = self.lock();
                    // Unless a refresh brought the view past it meanwhile.
                    view.hdr_bytes == guard && self.head_written(&mut view, plan.hdr, hdr_bytes, &plan.entries)
                };
                if apply {
                    let m = self.clone();
                    // Housekeeping: committed already, whatever becomes of it.
                    let _ = blocking(move || {
                        let mut view = m.lock();
                        m.apply_after_write(&mut view);
                        Ok(())
                    })
                    .await;
                }
            }
            Err(StoreError::Conflict { .. }) => {
                self.lock().contended = Some(Instant::now());
                // Counted as the retry policy counts lost races (and refused if it allows
                // no retry); the blocking path then retries under the same policy.
                if let Err(e) = self.retry.start().lost(|| format!("committing to mailbox {}", self.info.name)) {
                    return Err(self.discard(txn, e).await);
                }
                return self.commit_blocking(txn).await;
            }
            Err(e) => {
                let e = Error::from(e);
                if !e.is_temporary() {
                    return Err(self.discard(txn, e).await);
                }
                // Perhaps committed: the bodies stay until it is known.
                keep_bodies(&mut txn);
                let (m, first) = (self.clone(), plan.entries[0].clone());
                match blocking(move || Ok(m.landed(&guard, &first, shard_bits, started))).await? {
                    Some(true) => {
                        self.notify_head(plan.hdr.highestmodseq);
                        let m = self.clone();
                        // Best effort, as the blocking path: the next sync brings it along.
                        let _ = blocking(move || m.sync()).await;
                    }
                    Some(false) => {
                        for b in &bodies {
                            let count = body::object_count(b.psize, b.chunk_size);
                            body::remove_objects_async(self.data.store().clone(), b.guid, count).await;
                        }
                        return Err(e);
                    }
                    // Unknown: the bodies stay (`check` finds them if it did not land).
                    None => return Err(e),
                }
            }
        }
        for b in plan.outcome.delivered_before.iter().filter_map(|&i| bodies.get(i)) {
            let count = body::object_count(b.psize, b.chunk_size);
            body::remove_objects_async(self.data.store().clone(), b.guid, count).await;
        }
        Ok(plan.outcome)
    }

    /// [`Mailbox::commit`] on tokio's blocking pool.
    async fn commit_blocking(self: &Arc<Self>, txn: Transaction) -> Result<Committed> {
        let m = self.clone();
        blocking(move || m.commit(txn)).await
    }

    /// Removes the bodies of a transaction that did not commit, and returns `e`.
    async fn discard(&self, mut txn: Transaction, e: Error) -> Error {
        for s in &mut txn.saves {
            if let Some(b) = s.mail.take() {
                let count = body::object_count(b.psize, b.chunk_size);
                body::remove_objects_async(self.data.store().clone(), b.guid, count).await;
            }
        }
        e
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
}

/// A transaction whose commit was sent: dropped with it (the future cancelled), its
/// bodies are left in place.
struct Sent(Option<Transaction>);

impl Drop for Sent {
    fn drop(&mut self) {
        if let Some(txn) = &mut self.0 {
            keep_bodies(txn);
        }
    }
}

/// Takes the bodies out of `txn` without removing them (committed, or perhaps).
fn keep_bodies(txn: &mut Transaction) {
    txn.saves.iter_mut().for_each(|s| _ = s.mail.take());
}

fn slot_record(slot: Option<Slot>) -> Result<Option<MailRecord>> {
    match slot {
        Some(Slot::Record(r)) => Ok(Some(r)),
        Some(Slot::Damaged(d)) => Err(d.error()),
        None => Ok(None),
    }
}
