//! Committing a [`Transaction`]: the copies' references first (many in flight), then one
//! guarded write on the head (or a group commit, `group.rs`, for new mails only), then the
//! expunged mails' references dropped (many in flight). See `txn.rs` for the transaction
//! itself and `plan.rs` for what a commit writes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use objstore::ReadOp;
use omap_index::records::{MailRecord, WalEntry};
use omap_index::{frame, keys};
use rand::Rng;

use super::group::Pending;
use super::plan::{Limits, plan};
use super::txn::{Committed, PendingCopy, Transaction};
use super::{Mailbox, now};
use crate::body::{self, SavedBody};
use crate::error::{Error, Result};
use crate::index::CONTENDED;
use crate::refs::{self, Referenced, body_guid};

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
        if txn.saves.iter().any(|s| s.mail.mailbox != self.info.guid || s.mail.bodies.index_store().namespace() != ns) {
            return Err(Error::InvalidInput(format!(
                "a mail saved for another mailbox committed to {}",
                self.info.name
            )));
        }
        // Copies get their UIDs in the order of the UIDs wanted, so that as many as
        // possible get theirs.
        let mut order: Vec<usize> = (0..txn.copies.len()).collect();
        order.sort_by_key(|&i| (txn.copies[i].wanted.unwrap_or(0), txn.copies[i].source.uid));
        let instances = self.reference_copies(&mut txn.copies)?;
        let bodies: Vec<SavedBody> = txn.saves.iter_mut().filter_map(|s| s.mail.take()).collect();
        let saved_at = now();
        if txn.updates.is_empty() && txn.expunges.is_empty() && !(bodies.is_empty() && txn.copies.is_empty()) {
            // Only new mails: committed together with those other threads of this process
            // are waiting to commit to the mailbox.
            return self.commit_grouped(Pending::new(txn, bodies, order, instances, saved_at));
        }
        let (mut view, mut retry) = (self.lock(), self.retry.start());
        let needs_records = !txn.updates.is_empty() || !txn.expunges.is_empty();
        // The mails the plan reads: their blocks, not the whole mailbox.
        let touched: BTreeSet<u32> =
            txn.updates.iter().flat_map(|(uids, _)| uids.iter().copied()).chain(txn.expunges.iter().copied()).collect();
        let touched_list: Vec<u32> = touched.iter().copied().collect();
        if !bodies.is_empty() && view.contended.is_some_and(|t| t.elapsed() < CONTENDED) {
            // Contended lately: the header as it is now, after the bodies were written.
            if let Err(e) = self.refresh(&mut view) {
                drop(view);
                return Err(self.abandon(&txn, &instances, &bodies, e));
            }
        }
        let marks_on = !self.config.delivery_window.is_zero();
        let mut known = BTreeMap::new();
        let mut limit_checked_fresh = false;
        let result = loop {
            if needs_records && let Err(e) = self.touch(&mut view, &touched_list) {
                break Err(e);
            }
            let mut in_write = BTreeMap::new();
            let marks = marks_on.then_some(&mut in_write);
            let limits = Limits {
                mailbox: &self.info.name,
                max_keywords: self.config.max_keywords,
                can_read_all: needs_records,
            };
            let plan = match plan(&txn, &bodies, &order, &instances, &view, saved_at, &known, marks, &limits) {
                Ok(p) => p,
                // The keyword table is full: the names the other mails use, read from
                // every record (rare), on a fresh view; then plan again.
                Err(Error::KeywordLimit { .. }) if needs_records && view.keywords_in_use.is_none() => {
                    if !limit_checked_fresh {
                        limit_checked_fresh = true;
                        if let Err(e) = self.refresh(&mut view) {
                            break Err(e);
                        }
                    }
                    match self.keywords_in_use(&view, &touched) {
                        Ok(used) => view.keywords_in_use = Some(used),
                        Err(e) => break Err(e),
                    }
                    continue;
                }
                // Decided on a view that may be old (names removed since through another
                // process): once more on a fresh one.
                Err(Error::KeywordLimit { .. }) if !limit_checked_fresh => {
                    limit_checked_fresh = true;
                    match self.refresh(&mut view) {
                        Ok(_) => continue,
                        Err(e) => break Err(e),
                    }
                }
                Err(e) => break Err(e),
            };
            if plan.entries.is_empty() {
                break Ok(plan);
            }
            let (guard, started) = (view.hdr_bytes.clone(), Instant::now());
            match self.write_head(&mut view, plan.hdr.clone(), plan.entries.clone(), &plan.marks) {
                Ok(true) => break Ok(plan),
                // A lost race, or a delivery stored before: then it is not stored again.
                Ok(false) if !plan.marks.is_empty() => match self.known_deliveries(&txn.saves, &plan.marks) {
                    Ok(found) => known.extend(found),
                    Err(e) => break Err(e),
                },
                Ok(false) => {}
                Err(e) if e.is_temporary() => match self.landed(&guard, &plan.entries[0], view.hdr.shard_bits, started)
                {
                    Some(true) => {
                        // It did: bring the view along (best effort; the next sync will).
                        self.notify_head(plan.hdr.highestmodseq);
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
        // What the plan read goes (the record cache keeps the blocks).
        view.records.clear();
        view.damaged.clear();
        view.keywords_in_use = None;
        drop(view);
        match result {
            Ok(plan) => {
                self.drop_references_of(&plan.gone);
                self.remove_redelivered(&bodies, &plan.outcome.delivered_before);
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
            body::remove_objects(self.data.store().as_ref(), &b.guid, body::object_count(b.psize, b.chunk_size));
        }
        e
    }

    /// Takes a reference of this mailbox on the body of every copy, `ref_in_flight` at a
    /// time: per copy the new reference's instance, or `None` if the body is gone. A body
    /// that carries `max_body_references` already is not referenced once more: the copy
    /// gets a new body with the same bytes (`crate::duplicate`), and its source record
    /// points to that one from then on. On an error the references taken (and new bodies
    /// stored) are dropped again.
    fn reference_copies(&self, copies: &mut [PendingCopy]) -> Result<Vec<Option<u64>>> {
        let mut rng = rand::rng();
        let mut bodies = Vec::with_capacity(copies.len());
        for c in copies.iter() {
            bodies.push((body_guid(&self.head, &c.source)?, rng.random::<u64>()));
        }
        let results = refs::add_references(
            &self.data,
            &self.info.guid,
            &bodies,
            self.config.max_body_references,
            self.config.ref_in_flight,
        );
        let mut out = Vec::with_capacity(copies.len());
        let mut failure = None;
        for ((c, (_, instance)), r) in copies.iter_mut().zip(&bodies).zip(results) {
            let r = match r {
                Ok(Referenced::Full) if failure.is_none() => {
                    crate::duplicate::duplicate(&self.data, &c.source, &self.info.guid, *instance).map(|guid| {
                        tracing::info!(mailbox = %self.info.guid, body = %guid,
                            "a body carries max_body_references references: its copy got a body of its own");
                        c.source.mail_guid = guid.0.to_vec();
                        Referenced::Added
                    })
                }
                other => other,
            };
            match r {
                Ok(Referenced::Added) => out.push(Some(*instance)),
                Ok(Referenced::Missing | Referenced::Full) => out.push(None),
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
            refs::drop_references(&self.data, &self.info.guid, records, self.config.ref_in_flight, &self.retry);
        for (rec, r) in records.iter().zip(results) {
            if let Err(e) = r {
                tracing::warn!(mailbox = %self.info.guid, uid = rec.uid, "dropping a body reference: {e}");
            }
        }
    }

    /// After a write of the head whose reply was lost (`guard`: the header it was guarded
    /// by; `first`: its first WAL entry; `started`: when the write was sent): whether it
    /// landed. Asks the cluster again, with growing pauses, until it answers or
    /// [`crate::Config::resolve_window`] has passed since the write was sent (so a write
    /// that timed out after the whole window is not followed by more waiting: the call
    /// stays within one window).
    /// `Some(true)`: it landed (the WAL entry is there, or, trimmed since, the shard holds
    /// its first new record, known by the record's instance); `Some(false)`: it did not (the
    /// header is still the guard's, or another commit took its modseq or UID); `None`:
    /// unknown.
    pub(super) fn landed(&self, guard: &[u8], first: &WalEntry, shard_bits: u32, started: Instant) -> Option<bool> {
        crate::retry::resolve_lost_reply(started, self.config.resolve_window, || {
            self.landed_once(guard, first, shard_bits)
        })
    }

    /// [`Mailbox::landed`] with async reads, its pauses tokio timers.
    pub(super) async fn landed_async(
        &self,
        guard: &[u8],
        first: &WalEntry,
        shard_bits: u32,
        started: Instant,
    ) -> Option<bool> {
        crate::retry::resolve_lost_reply_async(started, self.config.resolve_window, || async {
            let read = self.store.read_op_async(&self.head, landed_read(first)).await?;
            match self.landed_by_head(guard, first, shard_bits, read.omap.unwrap_or_default()) {
                Landed::Known(answer) => Ok(answer),
                Landed::InShard { oid, key, rec } => {
                    let found = self.store.read_op_async(&oid, ReadOp::new().omap_get([key.clone()])).await;
                    landed_in_shard(&rec, found.map(|r| r.omap.and_then(|mut m| m.remove(&key))))
                }
            }
        })
        .await
    }

    fn landed_once(&self, guard: &[u8], first: &WalEntry, shard_bits: u32) -> Result<Option<bool>> {
        let read = self.store.read_op(&self.head, &landed_read(first))?;
        match self.landed_by_head(guard, first, shard_bits, read.omap.unwrap_or_default()) {
            Landed::Known(answer) => Ok(answer),
            Landed::InShard { oid, key, rec } => {
                landed_in_shard(&rec, self.store.omap_get(&oid, &[&key]).map(|mut m| m.remove(&key)))
            }
        }
    }

    /// What the head's header and the commit's first WAL entry (`vals`, read by
    /// [`landed_read`]) tell of whether it landed.
    fn landed_by_head(
        &self,
        guard: &[u8],
        first: &WalEntry,
        shard_bits: u32,
        vals: BTreeMap<String, Vec<u8>>,
    ) -> Landed {
        match vals.get(&keys::wal(first.modseq)) {
            Some(v) => return Landed::Known(Some(*v == frame::encode(first))),
            None if vals.get(keys::HDR).is_some_and(|v| v == guard) => return Landed::Known(Some(false)),
            None => {}
        }
        // The WAL moved on (applied and trimmed): a new mail of the commit is in its
        // shard if the commit landed; its instance (random, one per saved or copied body)
        // tells it from any other mail.
        let Some(rec) = first.changes.iter().filter(|c| c.prev_modseq == 0).find_map(|c| c.record.as_ref()) else {
            return Landed::Known(None);
        };
        let oid = omap_index::names::mailbox_shard(&self.info.guid, omap_index::names::shard_of(rec.uid, shard_bits));
        Landed::InShard { oid, key: keys::record(rec.uid), rec: Box::new(rec.clone()) }
    }
}

/// Where [`Mailbox::landed`] finds its answer.
enum Landed {
    /// In the head (`None`: it cannot tell).
    Known(Option<bool>),
    /// In the record `key` of shard `oid`: there if it is `rec`.
    InShard { oid: String, key: String, rec: Box<MailRecord> },
}

/// The read of the head that tells whether a commit whose first WAL entry is `first`
/// landed: the header and that entry.
fn landed_read(first: &WalEntry) -> ReadOp {
    ReadOp::new().omap_get([keys::HDR.to_string(), keys::wal(first.modseq)])
}

/// Whether the commit that stored `rec` landed, from a read of its key in its shard.
fn landed_in_shard(rec: &MailRecord, found: objstore::Result<Option<Vec<u8>>>) -> Result<Option<bool>> {
    let found = match found {
        Ok(v) => v,
        Err(objstore::Error::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(match found.map(|v| frame::decode::<MailRecord>(&v)) {
        Some(Ok(r)) => Some(r.instance == rec.instance && r.mail_guid == rec.mail_guid),
        // Gone (expunged since?) or damaged: cannot tell.
        _ => None,
    })
}
