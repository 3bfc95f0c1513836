//! Planning a transaction: from one view of the mailbox, the WAL entries (one per modseq
//! step), the header after them, and what the commit will report.

use std::collections::{BTreeMap, BTreeSet};

use omap_index::records::{Change, MailRecord, MailboxHeader, WalEntry};

use super::assign_uid;
use super::marks::Mark;
use super::txn::{ModseqSteps, Transaction, Update};
use crate::body::SavedBody;
use crate::delivery::DeliveryKey;
use crate::error::{Error, Result};
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
    limits: &Limits,
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
    let mut steps: Vec<(u64, Step)> = vec![(1, appends.clone())];
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
    steps.push((1, flag_step));
    let mut kw_targets = kw_to;
    if dovecot {
        kw_targets.extend(new_keywords.clone());
    }
    // Dovecot's log writes one record, and so counts one modseq, per keyword added and
    // per keyword removed; the library numbers the transaction the same way, but writes
    // the final records of all those steps as one WAL entry, at the last of their
    // modseqs (each mail's record once, not once per keyword: a STORE of 500 keywords
    // on a mail with N used to write 500 records of up to N + 500 keywords each).
    let mut added: BTreeSet<String> = BTreeSet::new();
    let mut removed: BTreeSet<String> = BTreeSet::new();
    let mut kw_step = Step::new();
    for (uid, want) in &kw_targets {
        let Some(mut rec) = current(&state, *uid) else { continue };
        let have: BTreeSet<String> = rec.keywords.iter().cloned().collect();
        if *want == have {
            continue;
        }
        added.extend(want.difference(&have).cloned());
        removed.extend(have.difference(want).cloned());
        rec.keywords = want.iter().cloned().collect();
        kw_step.insert(*uid, Some(rec.clone()));
        state.insert(*uid, Some(rec));
    }
    let kw_width = (added.len() + removed.len()) as u64;
    steps.push((kw_width.max(1), kw_step));
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
    steps.push((1, expunge_step));
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
        for (_, step) in steps.drain(..) {
            one.extend(step);
        }
        steps.push((1, one));
    }
    let table = keyword_table(view, &state, &new_keywords, &added, !removed.is_empty() || !gone.is_empty(), limits)?;
    let mut planned = number(steps, view, next, out, gone)?;
    if let Some(table) = table
        && !planned.entries.is_empty()
    {
        planned.hdr.keywords = table;
    }
    planned.marks = marks;
    Ok(planned)
}

/// The limits a plan is checked against.
pub(super) struct Limits<'a> {
    /// The mailbox's name, for errors.
    pub(super) mailbox: &'a str,
    /// [`crate::Config::max_keywords`].
    pub(super) max_keywords: usize,
    /// Whether the committer can read the names every other mail uses
    /// ([`View::keywords_in_use`]) when a table must be recomputed: it then gets
    /// [`Error::KeywordLimit`] to ask for them (a commit that changes existing mails).
    pub(super) can_read_all: bool,
}

/// The mailbox's keyword table after a transaction (`None`: unchanged), or
/// [`Error::KeywordLimit`] when it would hold more than the limit. `state`: the final
/// records of the mails the transaction touches; `new_keywords`: the keywords of its new
/// mails; `added`: the names it adds to existing mails. The table only grows, except
/// that with the names the other mails use at hand ([`View::keywords_in_use`], for a
/// transaction that changes existing mails), a table that would overflow, or that is full
/// while `removing`, is recomputed from the names actually in use; without them, such a
/// transaction gets [`Error::KeywordLimit`] to read them ([`Limits::can_read_all`]).
fn keyword_table(
    view: &View,
    state: &BTreeMap<u32, Option<MailRecord>>,
    new_keywords: &BTreeMap<u32, BTreeSet<String>>,
    added: &BTreeSet<String>,
    removing: bool,
    limits: &Limits,
) -> Result<Option<Vec<String>>> {
    let table = &view.hdr.keywords;
    let known: BTreeSet<&String> = table.iter().collect();
    let mut fresh: Vec<&String> = Vec::new();
    let mut seen = BTreeSet::new();
    for name in added.iter().chain(new_keywords.values().flatten()) {
        if !known.contains(name) && seen.insert(name) {
            fresh.push(name);
        }
    }
    let over = table.len() + fresh.len() > limits.max_keywords;
    let full_and_removing = removing && table.len() >= limits.max_keywords;
    if (over || full_and_removing) && limits.can_read_all && view.keywords_in_use.is_none() {
        return Err(keyword_limit(limits));
    }
    if let Some(in_use) = &view.keywords_in_use
        && (over || full_and_removing)
    {
        // Recompute: the names on the mails after the transaction, in table order.
        let mut used: BTreeSet<&String> = in_use.iter().collect();
        for (uid, rec) in &view.records {
            if !state.contains_key(uid) {
                used.extend(rec.keywords.iter());
            }
        }
        used.extend(state.values().flatten().flat_map(|r| r.keywords.iter()));
        used.extend(new_keywords.values().flatten());
        let mut out: Vec<String> = table.iter().filter(|n| used.contains(n)).cloned().collect();
        let kept: BTreeSet<String> = out.iter().cloned().collect();
        out.extend(fresh.iter().filter(|n| used.contains(**n) && !kept.contains(**n)).map(|n| (*n).clone()));
        if out.len() > limits.max_keywords {
            return Err(keyword_limit(limits));
        }
        return Ok((out != *table).then_some(out));
    }
    if over {
        return Err(keyword_limit(limits));
    }
    if fresh.is_empty() {
        return Ok(None);
    }
    let mut out = table.clone();
    out.extend(fresh.into_iter().cloned());
    Ok(Some(out))
}

fn keyword_limit(limits: &Limits) -> Error {
    Error::KeywordLimit { mailbox: limits.mailbox.to_string(), limit: limits.max_keywords }
}

/// Gives each non-empty step the next modseqs (as many as its width: the last is the
/// modseq of its WAL entry), and computes the header after them.
fn number(
    steps: Vec<(u64, Step)>,
    view: &View,
    uidnext: u32,
    mut out: Committed,
    gone: Vec<MailRecord>,
) -> Result<Plan> {
    let mut modseq = view.hdr.highestmodseq;
    let mut last_modseq: BTreeMap<u32, u64> = BTreeMap::new();
    let mut entries = Vec::new();
    let mut last: BTreeMap<u32, Option<MailRecord>> = BTreeMap::new();
    for (width, step) in steps.into_iter().filter(|(_, s)| !s.is_empty()) {
        modseq += width;
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
