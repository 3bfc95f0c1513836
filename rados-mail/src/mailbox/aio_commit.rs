//! The async commit of new mails, with the object store's async operations only: no
//! thread waits anywhere.
//!
//! Async commits to one mailbox in one process take turns (an async lock in the mailbox's
//! shared state, `MailboxShared::async_commit`), so that they do not lose races to each
//! other; commits to different mailboxes run side by side. Each is planned on the view as
//! the blocking group commit plans a group (`group.rs`, `plan_group`: the same UIDs,
//! modseqs and delivery marks) and written as one guarded async write of the head. What
//! the blocking commit does with the view lock held, this one does with async operations
//! between short holds of the lock: a lost race re-reads the head
//! ([`Mailbox::refresh_async`]) and plans again under the one retry policy (its pauses
//! tokio timers); a lost reply is resolved by [`Mailbox::landed_async`]; a commit that made
//! the WAL long applies it with `apply_wal_async`. A damaged head (rebuilt by
//! `repair::head`, several writes) is the one thing left to tokio's blocking pool.
//!
//! The caller's future owns the whole commit: dropped before the write of the head was
//! sent, nothing of it happens.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::Mailbox;
use super::group::{Outcome, Pending, outcomes, plan_group};
use super::plan::Limits;
use crate::error::{Error, Result};
use crate::index::{CONTENDED, OVERLAY_MAX, apply_wal_async, read_head, read_head_async};

impl Mailbox {
    /// Commits `pending` when the async commits to this mailbox before it are done.
    /// `sent` is set just before the write of the head is sent: from then on it may land
    /// whatever becomes of this future.
    pub(super) async fn commit_in_turn_async(self: &Arc<Self>, pending: Pending, sent: &AtomicBool) -> Outcome {
        let _turn = self.shared.async_commit.lock().await;
        let mut outcomes = self.commit_group_async(&[Arc::new(pending)], sent).await;
        outcomes.pop().expect("one outcome per transaction")
    }

    /// Brings the view up to date with an async read of the head ([`Mailbox::sync`]).
    /// A head older than the view (read while another commit of this process moved it on)
    /// changes nothing.
    pub(crate) async fn refresh_async(&self) -> Result<bool> {
        let head = match read_head_async(self.store.clone(), &self.head).await {
            Ok(head) => head,
            // Rebuilt by the blocking read (several writes; rare): on tokio's blocking pool.
            Err(e) if crate::repair::head::is_head_damage(&e, &self.head) => {
                let (store, oid) = (self.store.clone(), self.head.clone());
                crate::asynchronous::blocking(move || read_head(store.as_ref(), &oid)).await?
            }
            Err(e) => return Err(e),
        };
        let mut view = self.lock();
        if head.hdr.incarnation == view.hdr.incarnation && head.hdr.highestmodseq < view.hdr.highestmodseq {
            return Ok(false);
        }
        self.catch_up(&mut view, head)
    }

    /// One write for the whole group, retried while other processes commit first: the
    /// async form of `Mailbox::commit_group`. One outcome per transaction, in order.
    async fn commit_group_async(self: &Arc<Self>, group: &[Arc<Pending>], sent: &AtomicBool) -> Vec<Outcome> {
        let failed = |e: &Error, cleanup: bool| group.iter().map(|_| Outcome::Failed(e.clone(), cleanup)).collect();
        let contended = self.lock().contended.is_some_and(|t| t.elapsed() < CONTENDED);
        if contended && let Err(e) = self.refresh_async().await {
            return failed(&e, true);
        }
        let mut retry = self.retry.start();
        let marks_on = !self.config.delivery_window.is_zero();
        let mut known: Vec<BTreeMap<usize, u32>> = vec![BTreeMap::new(); group.len()];
        let mut limit_checked_fresh = false;
        loop {
            let limits =
                Limits { mailbox: &self.info.name, max_keywords: self.config.max_keywords, can_read_all: false };
            let planned = {
                let view = self.lock();
                plan_group(&view, group, &known, marks_on, &limits).map(|plans| {
                    let entries: Vec<_> = plans.iter().flatten().flat_map(|p| p.entries.iter().cloned()).collect();
                    let marks: Vec<_> = plans.iter().flatten().flat_map(|p| p.marks.iter().copied()).collect();
                    let hdr = plans.iter().flatten().rev().find(|p| !p.entries.is_empty()).map(|p| p.hdr.clone());
                    let write = hdr.map(|hdr| {
                        let (op, hdr_bytes) = self.head_write(&view.hdr_bytes, &hdr, &entries, &marks);
                        (op, hdr_bytes, hdr, view.hdr_bytes.clone(), view.hdr.shard_bits)
                    });
                    (plans, entries, marks, write)
                })
            };
            let (plans, entries, marks, write) = match planned {
                Ok(p) => p,
                Err(e) => return failed(&e, true),
            };
            if !limit_checked_fresh && plans.iter().any(|p| p.is_err()) {
                // Refused on a header that may be old (names removed since through
                // another process): once more on a fresh one.
                limit_checked_fresh = true;
                if let Err(e) = self.refresh_async().await {
                    return failed(&e, true);
                }
                continue;
            }
            let Some((op, hdr_bytes, hdr, guard, shard_bits)) = write else { return outcomes(plans) };
            let started = Instant::now();
            sent.store(true, Ordering::SeqCst);
            match self.store.write_op_async(&self.head, op).await {
                Ok(_) => {
                    self.notify_head(hdr.highestmodseq);
                    let apply = {
                        let mut view = self.lock();
                        // Unless a refresh brought the view past it meanwhile.
                        view.hdr_bytes == guard && self.head_written(&mut view, hdr, hdr_bytes, &entries)
                    };
                    if apply {
                        self.apply_after_write_async().await;
                    }
                    return outcomes(plans);
                }
                // A lost race, or deliveries stored before: then they are not stored again.
                // Nothing was written: dropped from now on, the commit takes its bodies back.
                Err(objstore::Error::Conflict { .. }) if !marks.is_empty() => {
                    sent.store(false, Ordering::SeqCst);
                    match self.known_deliveries_of_group_async(group, &marks).await {
                        Ok(found) => known.iter_mut().zip(found).for_each(|(k, f)| k.extend(f)),
                        Err(e) => return failed(&e, true),
                    }
                }
                Err(objstore::Error::Conflict { .. }) => sent.store(false, Ordering::SeqCst),
                Err(e) => {
                    let e = Error::from(e);
                    if !e.is_temporary() {
                        return failed(&e, true);
                    }
                    return match self.landed_async(&guard, &entries[0], shard_bits, started).await {
                        Some(true) => {
                            self.notify_head(hdr.highestmodseq);
                            // Best effort, as the blocking path: the next sync brings it along.
                            let _ = self.refresh_async().await;
                            outcomes(plans)
                        }
                        Some(false) => failed(&e, true),
                        // Unknown: the bodies stay (`check` finds them if it did not land).
                        None => failed(&e, false),
                    };
                }
            }
            self.lock().contended = Some(Instant::now());
            if let Err(e) = retry.lost_async(|| format!("committing to mailbox {}", self.info.name)).await {
                return failed(&e, true);
            }
            if let Err(e) = self.refresh_async().await {
                return failed(&e, true);
            }
        }
    }

    /// [`Mailbox::apply_after_write`] with async operations, the view unlocked meanwhile.
    async fn apply_after_write_async(&self) {
        let (at, large) = {
            let view = self.lock();
            (view.hdr.highestmodseq, view.overlay.len() > OVERLAY_MAX)
        };
        let result = apply_wal_async(self.store.clone(), &self.head, &self.info.guid, &self.retry).await;
        self.wal_applied(&mut self.lock(), at, large, result);
    }
}
