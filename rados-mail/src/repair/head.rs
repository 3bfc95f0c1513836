//! Rebuilding a mailbox head whose header, trim mark, first-recent mark or WAL entries are
//! corrupt (or whose header is missing), from what is intact: the shards' records, modseq
//! keys, tombstones and applied marks, the intact WAL entries, and the mailbox list's
//! UIDVALIDITY. The data path runs it when it meets such a head (`index::read_head`), so a
//! damaged head costs one rebuild instead of a mailbox nobody can open; `repair` runs the
//! same code.

use objstore::{CmpOp, Error as StoreError, ObjectStore, WriteOp};
use omap_index::names::{self, Guid, MAILBOX_LIST};
use omap_index::records::{MailRecord, MailboxEntry, MailboxHeader, WalEntry};
use omap_index::{frame, keys};
use rand::Rng;

use super::scan::MailboxScan;
use crate::error::{Error, Result};

/// A planned rebuild: the write, and what it does in words.
pub(crate) struct Rebuild {
    op: WriteOp,
    /// What was wrong and what the rebuild does.
    pub(crate) detail: String,
}

/// The UIDVALIDITY the mailbox list holds for mailbox `guid` (through the `guid/` map),
/// if the list entry is intact.
pub(crate) fn listed_uidvalidity(store: &dyn ObjectStore, guid: &Guid) -> Result<Option<u32>> {
    let guid_key = keys::mailbox_guid(guid);
    let name = match store.omap_get(MAILBOX_LIST, &[&guid_key]) {
        Ok(mut m) => match m.remove(&guid_key).map(String::from_utf8) {
            Some(Ok(n)) => n,
            _ => return Ok(None),
        },
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let key = keys::mailbox(&name);
    let value = match store.omap_get(MAILBOX_LIST, &[&key]) {
        Ok(mut m) => m.remove(&key),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    Ok(value
        .and_then(|v| frame::decode::<MailboxEntry>(&v).ok())
        .filter(|e| e.guid == guid.0 && e.uidvalidity != 0)
        .map(|e| e.uidvalidity))
}

/// Plans the rebuild of the head `scan` found damaged (None when it is not). The header
/// keeps what is known and never goes back: UIDNEXT above every UID any key or entry
/// names, HIGHESTMODSEQ one above every modseq found, counts and sizes from the records;
/// a new incarnation when the header or a change was lost (every process then reloads). A corrupt WAL entry whose
/// modseq every shard has applied is dropped; one that some shard had not applied is lost
/// (its new mails' bodies keep their references: `repair` moves them to `lost+found`).
pub(crate) fn plan(scan: &MailboxScan, uidvalidity: Option<u32>) -> Result<Option<Rebuild>> {
    let oid = &scan.head_oid;
    if !scan.head_damaged() && !scan.header_disagrees() {
        if scan.damaged_marks.is_empty() || scan.newer_format {
            return Ok(None);
        }
        // Only delivery marks are damaged: remove them, nothing else changes (a mark
        // cannot be rewritten meanwhile: the commit's guard finds the damaged key).
        return Ok(Some(Rebuild {
            op: WriteOp::new().omap_rm_keys(scan.damaged_marks.clone()),
            detail: marks_removed(scan),
        }));
    }
    if scan.newer_format {
        return Err(Error::InvalidInput(format!(
            "mailbox head {oid} holds values written by a newer rados-mail (frame version above {}): \
             not rebuilt; upgrade this program",
            frame::VERSION
        )));
    }
    let uidvalidity = match scan.hdr.as_ref().map(|h| h.uidvalidity).or(uidvalidity) {
        Some(v) => v,
        None => {
            return Err(Error::Corrupted {
                object: oid.clone(),
                key: Some(keys::HDR.into()),
                detail: "the header cannot be rebuilt: no intact mailbox-list entry gives its UIDVALIDITY".into(),
            });
        }
    };
    let bits = scan.shard_bits();
    let mut notes = Vec::new();
    if scan.hdr.is_none() {
        notes.push("header rebuilt".to_string());
    } else if scan.header_disagrees() {
        notes.push("header recounted from the shards and the WAL".to_string());
    }
    // Which shards exist up to the last one anything names; a missing one applied nothing.
    let last_shard = scan.shards.keys().last().copied().unwrap_or(0);
    let min_applied = (0..=last_shard).map(|k| scan.applied(k)).min().unwrap_or(0);
    let mut lost = Vec::new();
    for m in &scan.corrupt_wal {
        if *m <= min_applied {
            notes.push(format!("corrupt WAL entry {} dropped (applied to every shard)", keys::wal(*m)));
        } else {
            lost.push(*m);
            notes.push(format!("corrupt WAL entry {} dropped: its changes are lost", keys::wal(*m)));
        }
    }
    // The records as the intact WAL leaves them; every UID and modseq anything names.
    let (records, damaged) = scan.records();
    let damaged = damaged.len() as u32;
    let (mut max_uid, mut max_modseq) = (0u32, 0u64);
    for (k, s) in &scan.shards {
        max_uid = max_uid.max(s.records.keys().chain(s.damaged.keys()).copied().max().unwrap_or(0));
        for (m, u) in s.modseq_keys.iter().chain(&s.tombstones) {
            max_uid = max_uid.max(*u);
            max_modseq = max_modseq.max(*m);
        }
        max_modseq = max_modseq.max(scan.applied(*k));
    }
    for e in scan.wal.values() {
        max_modseq = max_modseq.max(e.modseq);
        max_uid = max_uid.max(e.changes.iter().map(|c| c.uid).max().unwrap_or(0));
    }
    max_modseq = max_modseq.max(scan.corrupt_wal.iter().copied().max().unwrap_or(0)).max(scan.trim.unwrap_or(0));
    let old = scan.hdr.clone().unwrap_or_default();
    let highestmodseq = old.highestmodseq.max(max_modseq) + 1;
    // A view that may hold what is lost must be dropped everywhere (a mail server drops
    // its local index for another incarnation); with the header intact and nothing lost,
    // every view is still right and the incarnation stays.
    let incarnation = match &scan.hdr {
        Some(h) if lost.is_empty() => h.incarnation,
        _ => {
            let mut fresh = rand::rng().random_range(1..=u32::MAX);
            if fresh == old.incarnation {
                fresh = fresh.wrapping_add(1).max(1);
            }
            fresh
        }
    };
    let hdr = MailboxHeader {
        guid: scan.guid.0.to_vec(),
        uidvalidity,
        uidnext: old.uidnext.max(max_uid.saturating_add(1)).max(1),
        highestmodseq,
        messages: records.len() as u32 + damaged,
        psize_total: records.values().map(|r| r.psize).sum(),
        vsize_total: records.values().map(|r| r.vsize).sum(),
        shard_bits: bits,
        incarnation,
        keywords: keyword_table_of(&old.keywords, records.values()),
    };
    let mut set = vec![
        (keys::HDR.to_string(), frame::encode(&hdr)),
        (keys::wal(highestmodseq), frame::encode(&WalEntry { modseq: highestmodseq, changes: Vec::new() })),
    ];
    let untrimmed = matches!((scan.trim, scan.wal.keys().next()), (Some(t), Some(first)) if *first <= t);
    if scan.trim_corrupt || scan.trim.is_none() || untrimmed {
        let first_left = scan.wal.keys().next().copied().unwrap_or(highestmodseq);
        set.push((keys::TRIM.to_string(), keys::hex64(first_left - 1).into_bytes()));
        notes.push("trim mark rebuilt".into());
    }
    if scan.recent_corrupt {
        set.push((keys::RECENT.to_string(), keys::hex32(hdr.uidnext).into_bytes()));
        notes.push("first-recent mark rebuilt (no mail is recent)".into());
    }
    let mut op = if scan.head_exists {
        WriteOp::new().omap_cmp(keys::HDR, CmpOp::Eq, scan.hdr_bytes.clone().unwrap_or_default())
    } else {
        WriteOp::new().create_exclusive()
    };
    if !scan.corrupt_wal.is_empty() {
        op = op.omap_rm_keys(scan.corrupt_wal.iter().map(|m| keys::wal(*m)).collect::<Vec<_>>());
    }
    if !scan.damaged_marks.is_empty() {
        op = op.omap_rm_keys(scan.damaged_marks.clone());
        notes.push(marks_removed(scan));
    }
    // What was lost is kept, so that `repair` knows to look for the bodies of its mails.
    for m in &lost {
        let bytes = scan.corrupt_wal_bytes.get(m).cloned().unwrap_or_default();
        set.push((format!("{}{}", keys::DAMAGED, keys::wal(*m)), bytes));
    }
    let detail = format!(
        "{}; UIDNEXT {}, HIGHESTMODSEQ {}, {} messages",
        notes.join("; "),
        hdr.uidnext,
        hdr.highestmodseq,
        hdr.messages
    );
    Ok(Some(Rebuild { op: op.omap_set(set), detail }))
}

/// What removing the damaged delivery marks does, in words.
fn marks_removed(scan: &MailboxScan) -> String {
    format!(
        "{} damaged delivery mark(s) removed (the deliveries they stood for are stored \
         again if their senders retry; they could not be stored at all before)",
        scan.damaged_marks.len()
    )
}

/// Writes a planned rebuild. A concurrent rebuild (the guard on the header read fails)
/// counts as done.
pub(crate) fn write(store: &dyn ObjectStore, oid: &str, plan: Rebuild) -> Result<()> {
    match store.write_op(oid, &plan.op) {
        Ok(_) => {
            store.notify(oid, &[], None);
            Ok(())
        }
        Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Rebuilds the head of mailbox `guid` if it is damaged (reading it raw first); returns
/// what was done, None when nothing was damaged. A concurrent rebuild (the guard on the
/// header read fails) counts as done.
pub(crate) fn rebuild(store: &dyn ObjectStore, guid: &Guid, dry_run: bool) -> Result<Option<String>> {
    let scan = MailboxScan::read(store, guid, None)?;
    let uidvalidity = if scan.hdr.is_none() { listed_uidvalidity(store, guid)? } else { None };
    let Some(plan) = plan(&scan, uidvalidity)? else { return Ok(None) };
    let detail = plan.detail.clone();
    if !dry_run {
        write(store, &scan.head_oid, plan)?;
    }
    Ok(Some(detail))
}

/// Whether `e` is damage of head object `oid` that [`rebuild`] can repair.
pub(crate) fn is_head_damage(e: &Error, oid: &str) -> bool {
    match e {
        Error::Corrupted { object, key: Some(key), .. } if object == oid => {
            key == keys::HDR || key == keys::TRIM || key == keys::RECENT || key.starts_with(keys::WAL)
        }
        _ => false,
    }
}

/// The GUID of a head object name (`mbox.<guid>`).
pub(crate) fn head_guid(oid: &str) -> Option<Guid> {
    oid.strip_prefix("mbox.").and_then(|g| Guid::parse(g).ok()).filter(|g| names::mailbox_head(g) == oid)
}

/// The keyword table of a rebuilt header: the names on `records`, those of the old table
/// first in its order, then the others in name order.
fn keyword_table_of<'a>(old: &[String], records: impl Iterator<Item = &'a MailRecord>) -> Vec<String> {
    let used: std::collections::BTreeSet<&String> = records.flat_map(|r| r.keywords.iter()).collect();
    let mut out: Vec<String> = old.iter().filter(|n| used.contains(n)).cloned().collect();
    let kept: std::collections::BTreeSet<&String> = old.iter().collect();
    out.extend(used.iter().filter(|n| !kept.contains(**n)).map(|n| (*n).clone()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilt_keyword_table_holds_the_names_in_use() {
        let rec =
            |kw: &[&str]| MailRecord { keywords: kw.iter().map(|s| s.to_string()).collect(), ..Default::default() };
        let records = [rec(&["$b", "$z"]), rec(&["$a", "$b"]), rec(&[])];
        let old: Vec<String> = ["$z", "$gone", "$b"].iter().map(|s| s.to_string()).collect();
        // The old table's order for names still in use, then the others in name order;
        // names no mail has are dropped.
        assert_eq!(keyword_table_of(&old, records.iter()), vec!["$z", "$b", "$a"]);
        assert_eq!(keyword_table_of(&[], records.iter()), vec!["$a", "$b", "$z"]);
    }
}
