//! Planning a transaction: from one view of the mailbox, the WAL entries (one per modseq
//! step), the header after them, and what the commit will report.

use std::collections::{BTreeMap, BTreeSet};

use omap_index::records::{Change, MailRecord, MailboxHeader, WalEntry};

use super::assign_uid;
use super::marks::Mark;
use super::txn::{ModseqSteps, Transaction, Update};
use crate::body::SavedBody;
use crate::delivery::DeliveryKey;
use crate::error::Result;
use crate::index::View;
use crate::mailbox::Committed;
use crate::types::StoreMode;

/// One step: the state each UID it touches has after it (`None`: expunged).
pub(super) type Step = BTreeMap<u32, Option<MailRecord>>;

/// What a commit writes, decided from one view.
pub(super) struct Plan {
    pub(super) entries: Vec<WalEntry>,
    /// The deliveries it stores (their marks go into the same write).
    pub(super) marks: Vec<Mark>,
    pub(super) hdr: MailboxHeader,
    pub(super) outcome: Committed,
    pub(super) gone: Vec<MailRecord>,
}

/// Decides the WAL entries of `txn` against `view` (whose HIGHESTMODSEQ + 1 is the first
/// modseq), and the header after them. `known`: saves (by index) that are deliveries
/// committed before, with the UIDs they got: not stored again. `marks`: `None` without
/// delivery keys, else the deliveries the same write stores already (a group commit's
/// earlier transactions), which this plan's add to: a delivery among them is not stored
/// twice either.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan(
    txn: &Transaction,
    bodies: &[SavedBody],
    order: &[usize],
    instances: &[Option<u64>],
    view: &View,
    saved_at: i64,
    known: &BTreeMap<usize, u32>,
    mut marks_in_write: Option<&mut BTreeMap<DeliveryKey, u32>>,
) -> Result<Plan> {
    let dovecot = txn.steps == ModseqSteps::Dovecot;
    let mut out = Committed { copied: vec![None; txn.copies.len()], ..Default::default() };
    // The new mails (flags only when keywords get steps of their own).
    let mut appends = Step::new();
    let mut new_keywords: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    let mut next = view.hdr.uidnext;
    let mut marks = Vec::new();
    for (i, (s, b)) in txn.saves.iter().zip(bodies).enumerate() {
        let in_write = match (&marks_in_write, s.delivery) {
            (Some(m), Some(key)) => m.get(&key).copied(),
            _ => None,
        };
        if let Some(uid) = known.get(&i).copied().or(in_write) {
            out.saved.push(uid);
            out.delivered_before.push(i);
            continue;
        }
        let uid = assign_uid(&mut next, s.uid)?;
        if let (Some(m), Some(key)) = (marks_in_write.as_deref_mut(), s.delivery) {
            m.insert(key, uid);
            marks.push((key, uid));
        }
        let rec = MailRecord {
            uid,
            mail_guid: b.guid.0.to_vec(),
            instance: b.instance,
            flags: s.flags,
            keywords: if dovecot { Vec::new() } else { s.keywords.clone() },
            psize: b.psize,
            vsize: b.vsize,
            hdr_len: b.hdr_len,
            received: b.received,
            saved: b.saved,
            crc32: b.crc32,
            chunk_size: b.chunk_size,
            given_guid: s.given_guid.clone(),
            plain_psize: b.plain_psize,
            modseq: 0,
        };
        new_keywords.insert(uid, s.keywords.iter().cloned().collect());
        appends.insert(uid, Some(rec));
        out.saved.push(uid);
    }
    for &i in order {
        let (c, Some(instance)) = (&txn.copies[i], instances[i]) else { continue };
        let uid = assign_uid(&mut next, c.wanted)?;
        let mut rec = MailRecord { uid, instance, saved: saved_at, ..c.source.clone() };
        if let Some((flags, kw)) = &c.flags {
            rec.flags = *flags;
            rec.keywords = kw.clone();
        }
        new_keywords.insert(uid, rec.keywords.iter().cloned().collect());
        if dovecot {
            rec.keywords.clear();
        }
        appends.insert(uid, Some(rec));
        out.copied[i] = Some((c.source.uid, uid));
    }

    // The wanted flags and keywords of existing mails.
    let mut flags_to: BTreeMap<u32, u32> = BTreeMap::new();
    let mut kw_to: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    let mut modified = BTreeSet::new();
    for (uids, update) in &txn.updates {
        for uid in uids {
            let Some(cur) = view.records.get(uid) else { continue };
            if txn.unchanged_since.is_some_and(|m| cur.modseq > m) {
                modified.insert(*uid);
                continue;
            }
            match update {
                Update::Flags(mode, f) => {
                    let had = flags_to.get(uid).copied().unwrap_or(cur.flags);
                    flags_to.insert(*uid, combine(*mode, had, *f));
                }
                Update::Keywords(mode, k) => {
                    let had = kw_to.entry(*uid).or_insert_with(|| cur.keywords.iter().cloned().collect());
                    match mode {
                        StoreMode::Replace => *had = k.clone(),
                        StoreMode::Add => had.extend(k.iter().cloned()),
                        StoreMode::Remove => had.retain(|x| !k.contains(x)),
                    }
                }
            }
        }
    }
    out.modified = modified.into_iter().collect();

    // The steps, in Dovecot's log order (or all in one).
    let mut state: BTreeMap<u32, Option<MailRecord>> = BTreeMap::new();
    let current = |state: &BTreeMap<u32, Option<MailRecord>>, uid: u32| -> Option<MailRecord> {
        state.get(&uid).cloned().unwrap_or_else(|| view.records.get(&uid).cloned())
    };
    let mut steps: Vec<Step> = vec![appends.clone()];
    state.extend(appends);
    let mut flag_step = Step::new();
    for (uid, f) in &flags_to {
        let Some(mut rec) = current(&state, *uid) else { continue };
        if rec.flags != *f {
            rec.flags = *f;
            flag_step.insert(*uid, Some(rec.clone()));
            state.insert(*uid, Some(rec));
        }
    }
    steps.push(flag_step);
    let mut kw_targets = kw_to;
    if dovecot {
        kw_targets.extend(new_keywords);
    }
    let names: BTreeSet<String> = kw_targets
        .iter()
        .flat_map(|(uid, want)| {
            let have: BTreeSet<String> =
                current(&state, *uid).map(|r| r.keywords.into_iter().collect()).unwrap_or_default();
            want.symmetric_difference(&have).cloned().collect::<Vec<_>>()
        })
        .collect();
    for name in &names {
        for adding in [true, false] {
            let mut step = Step::new();
            for (uid, want) in &kw_targets {
                let Some(mut rec) = current(&state, *uid) else { continue };
                let has = rec.keywords.iter().any(|k| k == name);
                if want.contains(name) == adding && has != adding {
                    if adding {
                        rec.keywords.push(name.clone());
                        rec.keywords.sort();
                    } else {
                        rec.keywords.retain(|k| k != name);
                    }
                    step.insert(*uid, Some(rec.clone()));
                    state.insert(*uid, Some(rec));
                }
            }
            steps.push(step);
        }
    }
    let mut expunge_step = Step::new();
    let mut gone = Vec::new();
    for uid in &txn.expunges {
        if let Some(rec) = view.records.get(uid) {
            gone.push(rec.clone());
            out.expunged.push(*uid);
            expunge_step.insert(*uid, None);
        } else if view.damaged.contains_key(uid) {
            // A damaged mail can be expunged too (its body, unknown, keeps a reference
            // for `repair` to find).
            out.expunged.push(*uid);
            expunge_step.insert(*uid, None);
        }
    }
    steps.push(expunge_step);
    out.changed = state
        .iter()
        .filter(|(uid, rec)| {
            view.records
                .get(uid)
                .is_some_and(|v| rec.as_ref().is_some_and(|r| r.flags != v.flags || r.keywords != v.keywords))
        })
        .map(|(uid, _)| *uid)
        .collect();
    if !dovecot {
        // Everything in one step: the final state of every UID touched.
        let mut one = Step::new();
        for step in steps.drain(..) {
            one.extend(step);
        }
        steps.push(one);
    }
    let mut planned = number(steps, view, next, out, gone)?;
    planned.marks = marks;
    Ok(planned)
}

/// Gives each non-empty step the next modseq, and computes the header after them.
fn number(steps: Vec<Step>, view: &View, uidnext: u32, mut out: Committed, gone: Vec<MailRecord>) -> Result<Plan> {
    let mut modseq = view.hdr.highestmodseq;
    let mut last_modseq: BTreeMap<u32, u64> = BTreeMap::new();
    let mut entries = Vec::new();
    let mut last: BTreeMap<u32, Option<MailRecord>> = BTreeMap::new();
    for step in steps.into_iter().filter(|s| !s.is_empty()) {
        modseq += 1;
        let mut changes = Vec::with_capacity(step.len());
        for (uid, rec) in step {
            let prev = last_modseq.get(&uid).copied().unwrap_or_else(|| view.records.get(&uid).map_or(0, |r| r.modseq));
            let rec = rec.map(|r| MailRecord { modseq, ..r });
            last_modseq.insert(uid, modseq);
            last.insert(uid, rec.clone());
            changes.push(Change { uid, prev_modseq: prev, record: rec });
        }
        entries.push(WalEntry { modseq, changes });
    }
    let mut hdr = view.hdr.clone();
    if !entries.is_empty() {
        out.first_modseq = view.hdr.highestmodseq + 1;
        out.last_modseq = modseq;
        hdr.highestmodseq = modseq;
        hdr.uidnext = hdr.uidnext.max(uidnext);
        for (uid, rec) in &last {
            if let Some(old) = view.records.get(uid) {
                hdr.messages -= 1;
                hdr.psize_total -= old.psize;
                hdr.vsize_total -= old.vsize;
            } else if view.damaged.contains_key(uid) {
                hdr.messages = hdr.messages.saturating_sub(1);
            }
            if let Some(new) = rec {
                hdr.messages += 1;
                hdr.psize_total += new.psize;
                hdr.vsize_total += new.vsize;
            }
        }
    }
    Ok(Plan { entries, marks: Vec::new(), hdr, outcome: out, gone })
}

/// Flags after applying `mode` with `flags` to `had`.
fn combine(mode: StoreMode, had: u32, flags: u32) -> u32 {
    match mode {
        StoreMode::Replace => flags,
        StoreMode::Add => had | flags,
        StoreMode::Remove => had & !flags,
    }
}
