//! Group commit: transactions that only add mails (saves, copies in), waiting to commit to
//! one mailbox in several threads of one process, go to RADOS in one guarded write.
//!
//! Each waiting transaction is queued on the mailbox's shared state, then its thread takes
//! the mailbox's view lock. The first to get it (the leader) takes every transaction queued
//! by then, plans them one after the other on the header (each gets the next UIDs and
//! modseqs, exactly as if committed alone in that order), writes all their WAL entries in
//! one write, and leaves each its outcome; the others find theirs when they get the lock.
//! A lost race retries the whole group; a failure fails every transaction of the group,
//! each thread then taking back what it wrote. Adding mails needs the header only, never
//! the records, which is what makes planning several at once safe.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::plan::{Limits, Plan, plan};
use super::{Mailbox, Transaction};
use crate::body::SavedBody;
use crate::error::{Error, Result};
use crate::index::{CONTENDED, View};
use crate::mailbox::Committed;

/// A transaction of new mails waiting for its commit.
pub(crate) struct Pending {
    pub(super) txn: Transaction,
    pub(super) bodies: Vec<SavedBody>,
    order: Vec<usize>,
    instances: Vec<Option<u64>>,
    saved_at: i64,
    /// Set by the leader that committed it (or failed to).
    outcome: Mutex<Option<Outcome>>,
}

pub(super) enum Outcome {
    /// Committed.
    Done(Committed),
    /// Not committed; `cleanup`: take back the bodies and references (false when the
    /// commit may have landed without its reply arriving: they stay, for `check`).
    Failed(Error, bool),
}

impl Pending {
    pub(super) fn new(
        txn: Transaction,
        bodies: Vec<SavedBody>,
        order: Vec<usize>,
        instances: Vec<Option<u64>>,
        saved_at: i64,
    ) -> Pending {
        Pending { txn, bodies, order, instances, saved_at, outcome: Mutex::new(None) }
    }

    /// The saves of its transaction.
    pub(super) fn saves(&self) -> &[super::txn::PendingSave] {
        &self.txn.saves
    }

    fn set(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(|e| e.into_inner()) = Some(outcome);
    }

    fn take(&self) -> Option<Outcome> {
        self.outcome.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Mailbox {
    /// Commits `me` together with the transactions of new mails other threads are waiting
    /// to commit to this mailbox (see the module documentation).
    pub(super) fn commit_grouped(&self, me: Pending) -> Result<Committed> {
        let me = Arc::new(me);
        self.shared.waiting.lock().unwrap_or_else(|e| e.into_inner()).push(me.clone());
        let mut view = self.lock();
        let outcome = match me.take() {
            Some(done) => done,
            None => {
                let waiting = std::mem::take(&mut *self.shared.waiting.lock().unwrap_or_else(|e| e.into_inner()));
                let group: Vec<Arc<Pending>> = waiting
                    .into_iter()
                    .map(|w| w.downcast::<Pending>().expect("only group commits wait there"))
                    .collect();
                let outcomes = self.commit_group(&mut view, &group);
                let mut mine = None;
                for (p, o) in group.iter().zip(outcomes) {
                    if Arc::ptr_eq(p, &me) {
                        mine = Some(o);
                    } else {
                        p.set(o);
                    }
                }
                mine.expect("the leader's own transaction is in its group")
            }
        };
        drop(view);
        match outcome {
            Outcome::Done(c) => {
                self.remove_redelivered(&me.bodies, &c.delivered_before);
                Ok(c)
            }
            Outcome::Failed(e, true) => Err(self.abandon(&me.txn, &me.instances, &me.bodies, e)),
            Outcome::Failed(e, false) => Err(e),
        }
    }

    /// The leader's work: one write for the whole group, retried while other processes
    /// commit first. One outcome per transaction, in order.
    fn commit_group(&self, view: &mut View, group: &[Arc<Pending>]) -> Vec<Outcome> {
        let failed = |e: &Error, cleanup: bool| group.iter().map(|_| Outcome::Failed(e.clone(), cleanup)).collect();
        if view.contended.is_some_and(|t| t.elapsed() < CONTENDED)
            && let Err(e) = self.refresh(view)
        {
            return failed(&e, true);
        }
        let mut retry = self.retry.start();
        let marks_on = !self.config.delivery_window.is_zero();
        let mut known: Vec<BTreeMap<usize, u32>> = vec![BTreeMap::new(); group.len()];
        let mut limit_checked_fresh = false;
        loop {
            let limits =
                Limits { mailbox: &self.info.name, max_keywords: self.config.max_keywords, can_read_all: false };
            let plans = match plan_group(view, group, &known, marks_on, &limits) {
                Ok(p) => p,
                Err(e) => return failed(&e, true),
            };
            if !limit_checked_fresh && plans.iter().any(|p| p.is_err()) {
                // Refused on a header that may be old (names removed since through
                // another process): once more on a fresh one.
                limit_checked_fresh = true;
                if let Err(e) = self.refresh(view) {
                    return failed(&e, true);
                }
                continue;
            }
            let entries: Vec<_> = plans.iter().flatten().flat_map(|p| p.entries.iter().cloned()).collect();
            let Some(last) = plans.iter().flatten().rev().find(|p| !p.entries.is_empty()) else {
                return outcomes(plans);
            };
            let (hdr, first) = (last.hdr.clone(), entries[0].clone());
            let modseq = hdr.highestmodseq;
            let (guard, started) = (view.hdr_bytes.clone(), Instant::now());
            let marks: Vec<_> = plans.iter().flatten().flat_map(|p| p.marks.iter().copied()).collect();
            match self.write_head(view, hdr, entries, &marks) {
                Ok(true) => return outcomes(plans),
                // A lost race, or deliveries stored before: then they are not stored again.
                // One read for the whole group's marks.
                Ok(false) if !marks.is_empty() => match self.known_deliveries_of_group(group, &marks) {
                    Ok(found) => known.iter_mut().zip(found).for_each(|(k, f)| k.extend(f)),
                    Err(e) => return failed(&e, true),
                },
                Ok(false) => {}
                Err(e) if e.is_temporary() => match self.landed(&guard, &first, view.hdr.shard_bits, started) {
                    Some(true) => {
                        self.notify_head(modseq);
                        let _ = self.refresh(view);
                        return outcomes(plans);
                    }
                    Some(false) => return failed(&e, true),
                    None => return failed(&e, false),
                },
                Err(e) => return failed(&e, true),
            }
            view.contended = Some(Instant::now());
            if let Err(e) = retry.lost(|| format!("committing to mailbox {}", self.info.name)) {
                return failed(&e, true);
            }
            if let Err(e) = self.refresh(view) {
                return failed(&e, true);
            }
        }
    }
}

/// The outcome of each transaction of a group whose plans were written (or had nothing
/// to write).
pub(super) fn outcomes(plans: Vec<Result<Plan>>) -> Vec<Outcome> {
    plans
        .into_iter()
        .map(|p| match p {
            Ok(p) => Outcome::Done(p.outcome),
            Err(e) => Outcome::Failed(e, true),
        })
        .collect()
}

/// Plans each transaction of the group on the header the one before leaves: the same UIDs
/// and modseqs as committing them one after the other. A transaction that would exceed the
/// mailbox's keyword limit fails alone (`Err` in its place), the others are planned as if
/// it were not there; any other error fails the group.
pub(super) fn plan_group(
    view: &View,
    group: &[Arc<Pending>],
    known: &[BTreeMap<usize, u32>],
    marks_on: bool,
    limits: &Limits,
) -> Result<Vec<Result<Plan>>> {
    let mut plans = Vec::with_capacity(group.len());
    let mut at = View::header_only(view.hdr.clone());
    let mut in_write = BTreeMap::new();
    for (p, known) in group.iter().zip(known) {
        let mut trial = in_write.clone();
        let marks = marks_on.then_some(&mut trial);
        match plan(&p.txn, &p.bodies, &p.order, &p.instances, &at, p.saved_at, known, marks, limits) {
            Ok(planned) => {
                debug_assert!(planned.gone.is_empty(), "new mails expunge nothing");
                if !planned.entries.is_empty() {
                    at = View::header_only(planned.hdr.clone());
                }
                in_write = trial;
                plans.push(Ok(planned));
            }
            Err(e @ Error::KeywordLimit { .. }) => plans.push(Err(e)),
            Err(e) => return Err(e),
        }
    }
    Ok(plans)
}
