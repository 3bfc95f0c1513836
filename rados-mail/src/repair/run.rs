//! The repair itself (see the module doc of `repair`): first each mailbox (its list entry,
//! its head, the mails to move to `lost+found`, the references its records lack), then,
//! from a fresh check, what no record holds (stale references, orphans, leftovers of
//! mailboxes that are gone).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use objstore::{CmpOp, Error as StoreError, ObjectStore, ReadOp, WriteOp};
use omap_index::names::{self, Guid, MAILBOX_LIST};
use omap_index::records::{ListCounters, MailRecord, MailboxEntry};
use omap_index::{frame, keys};

use super::head;
use super::lost::{LostMail, move_to_lost_found};
use super::scan::{ListScan, MailboxScan};
use super::{LOST_FOUND, RepairAction, RepairOptions, RepairReport};
use crate::check::{Inventory, age};
use crate::error::{Error, Result};
use crate::user::User;

/// Repairs the list entries of `list` (damaged entries recovered, counters, GUID map).
pub(super) fn repair_list(
    user: &User,
    list: &ListScan,
    only: Option<&str>,
    options: &RepairOptions,
    report: &mut RepairReport,
) -> Result<()> {
    let ns = user.store();
    for e in list.entries.iter().filter(|e| only.is_none_or(|n| n == e.name)) {
        let key = keys::mailbox(&e.name);
        let Some(guid) = e.guid else {
            if e.entry.is_none() {
                report.unrepaired.push(format!(
                    "mailbox {:?}: its list entry is damaged and the GUID map does not tell its GUID",
                    e.name
                ));
            }
            continue;
        };
        if e.entry.is_none() {
            let scan = MailboxScan::read(ns.as_ref(), &guid, None)?;
            let (uidvalidity, counters) = match scan.hdr.as_ref() {
                Some(hdr) => (hdr.uidvalidity, None),
                None => {
                    // Nothing intact tells the UIDVALIDITY: give the mailbox a new one, as
                    // IMAP allows (clients then drop what they cached of it).
                    let last = list.entries.iter().filter_map(|e| e.entry.as_ref()).map(|e| e.uidvalidity).max();
                    let counted = list
                        .counters
                        .as_ref()
                        .filter(|(_, bad)| !bad)
                        .and_then(|(b, _)| frame::decode::<ListCounters>(b).ok());
                    let last = last.unwrap_or(0).max(counted.map_or(0, |c| c.last_uidvalidity));
                    let v = crate::user::next_uidvalidity(last)?;
                    (v, Some(ListCounters { last_uidvalidity: v }))
                }
            };
            let entry = MailboxEntry { guid: guid.0.to_vec(), uidvalidity, special_use: vec![], created: 0 };
            if !options.dry_run {
                let mut op = WriteOp::new().omap_cmp(key.clone(), CmpOp::Eq, e.bytes.clone());
                let mut set = vec![(key.clone(), frame::encode(&entry))];
                if let Some(c) = &counters {
                    let old = list.counters.as_ref().map(|(b, _)| b.clone()).unwrap_or_default();
                    op = op.omap_cmp(keys::COUNTERS, CmpOp::Eq, old);
                    set.push((keys::COUNTERS.to_string(), frame::encode(c)));
                }
                write_ignoring_races(ns.as_ref(), MAILBOX_LIST, &op.omap_set(set))?;
            }
            report.actions.push(RepairAction::RebuiltListEntry { mailbox: e.name.clone(), key: key.clone() });
            if counters.is_some() {
                report.actions.push(RepairAction::RebuiltHead {
                    mailbox: e.name.clone(),
                    object: scan.head_oid.clone(),
                    detail: format!("no intact UIDVALIDITY left: the mailbox gets the new UIDVALIDITY {uidvalidity}"),
                });
            }
        }
        let map_key = keys::mailbox_guid(&guid);
        let mapped = match ns.omap_get(MAILBOX_LIST, &[&map_key]) {
            Ok(mut m) => m.remove(&map_key),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if mapped.is_none() {
            if !options.dry_run {
                let op = WriteOp::new()
                    .omap_cmp(map_key.clone(), CmpOp::Eq, Vec::new())
                    .omap_set([(map_key.clone(), e.name.as_bytes().to_vec())]);
                write_ignoring_races(ns.as_ref(), MAILBOX_LIST, &op)?;
            }
            report.actions.push(RepairAction::RebuiltListEntry { mailbox: e.name.clone(), key: map_key });
        }
    }
    if only.is_none() {
        repair_guid_map(user, list, options, report)?;
    }
    if let Some((bytes, true)) = &list.counters {
        let last = list.entries.iter().filter_map(|e| e.entry.as_ref()).map(|e| e.uidvalidity).max().unwrap_or(0);
        if !options.dry_run {
            let value = frame::encode(&ListCounters { last_uidvalidity: last });
            let op =
                WriteOp::new().omap_cmp(keys::COUNTERS, CmpOp::Eq, bytes.clone()).omap_set([(keys::COUNTERS, value)]);
            write_ignoring_races(ns.as_ref(), MAILBOX_LIST, &op)?;
        }
        report.actions.push(RepairAction::RebuiltListEntry { mailbox: String::new(), key: keys::COUNTERS.into() });
    }
    Ok(())
}

/// Mends the `guid/` map: a damaged value whose GUID an intact entry holds is rewritten
/// with that entry's name, other damaged ones are removed; an entry naming a mailbox that
/// is not in the list puts the mailbox back in the list when its head is intact (its list
/// entry was lost, its mail is not), else it is removed.
fn repair_guid_map(user: &User, list: &ListScan, options: &RepairOptions, report: &mut RepairReport) -> Result<()> {
    let ns = user.store();
    for (key, bytes) in &list.bad_map {
        let owner = key
            .strip_prefix(keys::MAILBOX_GUID)
            .and_then(|hex| Guid::parse(hex).ok())
            .and_then(|g| list.entries.iter().find(|e| e.entry.is_some() && e.guid == Some(g)));
        let guard = WriteOp::new().omap_cmp(key.clone(), CmpOp::Eq, bytes.clone());
        let op = match owner {
            Some(e) => guard.omap_set([(key.clone(), e.name.as_bytes().to_vec())]),
            None => guard.omap_rm_keys([key.clone()]),
        };
        if !options.dry_run {
            write_ignoring_races(ns.as_ref(), MAILBOX_LIST, &op)?;
        }
        let mailbox = owner.map(|e| e.name.clone()).unwrap_or_default();
        report.actions.push(RepairAction::RebuiltListEntry { mailbox, key: key.clone() });
    }
    for (guid, name) in &list.unlisted_map {
        let map_key = keys::mailbox_guid(guid);
        let scan = MailboxScan::read(ns.as_ref(), guid, None)?;
        let (key, op) = match &scan.hdr {
            Some(hdr) => {
                let entry = MailboxEntry {
                    guid: guid.0.to_vec(),
                    uidvalidity: hdr.uidvalidity,
                    special_use: vec![],
                    created: 0,
                };
                let key = keys::mailbox(name);
                let op = WriteOp::new()
                    .omap_cmp(key.clone(), CmpOp::Eq, Vec::new())
                    .omap_cmp(map_key.clone(), CmpOp::Eq, name.as_bytes().to_vec())
                    .omap_set([(key.clone(), frame::encode(&entry))]);
                (key, op)
            }
            None => {
                let op = WriteOp::new()
                    .omap_cmp(map_key.clone(), CmpOp::Eq, name.as_bytes().to_vec())
                    .omap_rm_keys([map_key.clone()]);
                (map_key, op)
            }
        };
        if !options.dry_run {
            write_ignoring_races(ns.as_ref(), MAILBOX_LIST, &op)?;
        }
        report.actions.push(RepairAction::RebuiltListEntry { mailbox: name.clone(), key });
    }
    Ok(())
}

/// A guarded write whose guard failing means someone else changed (or repaired) the value
/// first: fine for a repair, which looks again next time.
fn write_ignoring_races(store: &dyn objstore::ObjectStore, oid: &str, op: &WriteOp) -> Result<()> {
    match store.write_op(oid, op) {
        Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Repairs one listed mailbox: its head, then moves to `lost+found` what is damaged or has
/// lost its body, then restores the references its records lack.
pub(super) fn repair_mailbox_objects(
    user: &User,
    name: &str,
    guid: Guid,
    objects: &[String],
    bodies: &Inventory,
    options: &RepairOptions,
    report: &mut RepairReport,
) -> Result<()> {
    let ns = user.store();
    let shards = crate::check::shards_by_mailbox(objects).remove(&guid).unwrap_or_default();
    let mut scan = MailboxScan::read(ns.as_ref(), &guid, Some(&shards))?;
    if !scan.head_exists {
        report.unrepaired.push(format!("mailbox {name:?}: its head object {} is missing", scan.head_oid));
        return Ok(());
    }
    if scan.newer_format {
        report.unrepaired.push(format!(
            "mailbox {name:?}: holds values written by a newer rados-mail; left alone (upgrade this program)"
        ));
        return Ok(());
    }
    repair_shards(ns.as_ref(), name, &guid, &scan, options, report)?;
    if scan.head_damaged() || scan.header_disagrees() || !scan.damaged_marks.is_empty() {
        let mut uidvalidity = head::listed_uidvalidity(ns.as_ref(), &guid)?;
        if uidvalidity.is_none() && options.dry_run {
            // A dry run did not write the list entry step 1 rebuilt: plan as if it had.
            let rebuilt = report
                .actions
                .iter()
                .any(|a| matches!(a, RepairAction::RebuiltListEntry { mailbox, .. } if mailbox == name));
            uidvalidity = rebuilt.then_some(1);
        }
        match head::plan(&scan, uidvalidity) {
            Ok(Some(plan)) => {
                let detail = plan.detail.clone();
                if !options.dry_run {
                    head::write(ns.as_ref(), &scan.head_oid, plan)?;
                    scan = MailboxScan::read(ns.as_ref(), &guid, Some(&shards))?;
                }
                report.actions.push(RepairAction::RebuiltHead {
                    mailbox: name.into(),
                    object: scan.head_oid.clone(),
                    detail,
                });
            }
            Ok(None) => {}
            Err(e) => {
                report.unrepaired.push(format!("mailbox {name:?}: {e}"));
                return Ok(());
            }
        }
    }
    let (records, damaged) = scan.records();
    let present: BTreeSet<&Guid> = bodies.refs.keys().collect();
    let mut lost: Vec<LostMail> = Vec::new();
    for rec in records.values() {
        let body = Guid::from_slice(&rec.mail_guid).ok();
        // Not in the listing: look again, the mail may have been delivered since.
        let missing = match body {
            None => true,
            Some(g) if present.contains(&g) => false,
            Some(g) => match user.bodies()?.with_fallback(|s| s.stat(&names::mail(&g))) {
                Ok(_) => false,
                Err(Error::NotFound(_)) => true,
                Err(e) => return Err(e),
            },
        };
        if missing {
            lost.push(LostMail::BodyMissing { uid: rec.uid, record: rec.clone() });
        }
    }
    for (uid, d) in &damaged {
        lost.push(LostMail::Corrupt { uid: *uid, detail: format!("{} key {}: {}", d.object, d.key, d.detail) });
    }
    // The bodies a damaged record or a lost change may have held: bodies with a reference
    // of this mailbox but none any record holds (they would become orphans). Those younger
    // than the grace may be a save or copy in flight (it holds its reference before its
    // record commits): they wait for a later repair, and so do the `damaged/` markers that
    // make it look for them.
    let (mut adopt, mut young) = (Vec::new(), Vec::new());
    if !damaged.is_empty() || !scan.lost_changes.is_empty() {
        let prefix = format!("{}{guid}/", keys::REFERENCE);
        let now = SystemTime::now();
        for (body, refs) in &bodies.refs {
            if refs.iter().any(|r| r.starts_with(&prefix)) && bodies.held.get(body).is_none_or(BTreeSet::is_empty) {
                let store = bodies.place.get(body).unwrap_or(ns);
                let old = age(store.as_ref(), &names::mail(body), now) >= options.orphan_grace.as_secs();
                if old { adopt.push(*body) } else { young.push(*body) }
            }
        }
    }
    // A damaged record is expunged below: a marker keeps what it was until the body it
    // may have held is found (written first, so that a crash in between loses nothing).
    let markers: Vec<(String, Vec<u8>)> = damaged
        .iter()
        .map(|(uid, d)| (format!("{}{}", keys::DAMAGED, keys::record(*uid)), d.detail.clone().into_bytes()))
        .collect();
    if !markers.is_empty() && !options.dry_run {
        ns.write_op(&scan.head_oid, &WriteOp::new().assert_exists().omap_set(markers.clone()))?;
    }
    if !lost.is_empty() || !adopt.is_empty() {
        move_to_lost_found(user, name, &guid, &lost, &adopt, options, report)?;
    }
    for body in &young {
        report.actions.push(RepairAction::Deferred {
            mailbox: name.into(),
            object: names::mail(body),
            reason: format!(
                "may be the body of a damaged record or lost change, or a save in flight: younger than the grace \
                 ({} s); a later repair moves it to {LOST_FOUND}",
                options.orphan_grace.as_secs()
            ),
        });
    }
    if young.is_empty() && !options.dry_run {
        let done: Vec<String> = scan.lost_changes.iter().cloned().chain(markers.into_iter().map(|(k, _)| k)).collect();
        if !done.is_empty() {
            ns.write_op(&scan.head_oid, &WriteOp::new().omap_rm_keys(done.clone()))?;
            if !scan.lost_changes.is_empty() {
                report
                    .actions
                    .push(RepairAction::ClearedMarkers { mailbox: name.into(), keys: scan.lost_changes.clone() });
            }
        }
    }
    // References the records hold but their bodies lack: added as the pool keeps them
    // (xattrs in format v2, omap keys in v1).
    let xattr_refs = user.bodies()?.xattr_refs()?;
    for rec in records.values() {
        let Ok(body) = Guid::from_slice(&rec.mail_guid) else { continue };
        let Some(refs) = bodies.refs.get(&body) else { continue };
        let key = keys::reference(&guid, rec.instance);
        if !refs.contains(&key) {
            let oid = names::mail(&body);
            let (op, key) = if xattr_refs {
                let name = names::xattr::reference(&guid, rec.instance);
                (WriteOp::new().assert_exists().set_xattr(name.clone(), Vec::new()), name)
            } else {
                (WriteOp::new().assert_exists().omap_set([(key.clone(), Vec::new())]), key)
            };
            if !options.dry_run {
                let store = bodies.place.get(&body).unwrap_or(ns);
                match store.write_op(&oid, &op) {
                    Ok(_) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            report.actions.push(RepairAction::AddedReference { object: oid, key });
        }
    }
    Ok(())
}

/// Rewrites each damaged `applied` mark of the mailbox's shards as the last modseq the
/// shard's own keys name (a WAL entry that touched the shard left a key at its modseq, so
/// entries above it did not touch it: applying them again, as readers and the next apply
/// then do, changes nothing); reports records stored in a shard not theirs, which no
/// repair moves.
fn repair_shards(
    ns: &dyn objstore::ObjectStore,
    name: &str,
    guid: &Guid,
    scan: &MailboxScan,
    options: &RepairOptions,
    report: &mut RepairReport,
) -> Result<()> {
    let bits = scan.shard_bits();
    for (k, shard) in &scan.shards {
        let oid = names::mailbox_shard(guid, *k);
        if let Some(bytes) = &shard.applied_corrupt {
            let last = shard.modseq_keys.iter().chain(&shard.tombstones).map(|(m, _)| *m).max().unwrap_or(0);
            if !options.dry_run {
                let op = WriteOp::new()
                    .omap_cmp(keys::APPLIED, CmpOp::Eq, bytes.clone())
                    .omap_set([(keys::APPLIED, keys::hex64(last).into_bytes())]);
                write_ignoring_races(ns, &oid, &op)?;
            }
            report.actions.push(RepairAction::RebuiltHead {
                mailbox: name.into(),
                object: oid.clone(),
                detail: format!("the shard's applied mark rebuilt as {last} (its last key's modseq)"),
            });
        }
        let strays: Vec<u32> = shard
            .records
            .keys()
            .chain(shard.damaged.keys())
            .copied()
            .filter(|u| omap_index::names::shard_of(*u, bits) != *k)
            .collect();
        if !strays.is_empty() {
            report
                .unrepaired
                .push(format!("mailbox {name:?}: shard {oid} holds records of UIDs {strays:?}, not its own"));
        }
    }
    Ok(())
}

/// What no record holds: stale references, orphan bodies and chunks, objects of mailboxes
/// that are not listed. Everything changed within the grace is left alone.
pub(super) fn repair_leftovers(
    user: &User,
    objects: Vec<String>,
    unrecoverable_list: bool,
    options: &RepairOptions,
    report: &mut RepairReport,
) -> Result<()> {
    let ns = user.store();
    let grace = options.orphan_grace.as_secs();
    let now = SystemTime::now();
    let inventory = crate::check::inventory(user, &objects)?;
    // The chunk objects of each body, as listed (a save that died before it set the
    // body's xattrs left chunks its xattrs do not count).
    let mut chunks_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for oid in &objects {
        if let Some((body, _)) = oid.strip_prefix("mail.").and_then(|r| r.split_once('.')) {
            chunks_of.entry(format!("mail.{body}")).or_default().push(oid.clone());
        }
    }
    let held_bodies: BTreeSet<String> =
        inventory.held.iter().filter(|(_, h)| !h.is_empty()).map(|(g, _)| names::mail(g)).collect();
    let place_of = |oid: &str| -> Arc<dyn ObjectStore> {
        let guid = oid.strip_prefix("mail.").and_then(|g| Guid::parse(g).ok());
        guid.and_then(|g| inventory.place.get(&g).cloned()).unwrap_or_else(|| ns.clone())
    };
    let bodies = user.bodies()?;
    let check = inventory.report.clone();
    let mut stale: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (oid, key) in check.stale_references {
        stale.entry(oid).or_default().push(key);
    }
    for (oid, keys_here) in &stale {
        let store = place_of(oid);
        if age(store.as_ref(), oid, now) < grace {
            continue; // a young reference may be a copy in flight
        }
        if !options.dry_run {
            let (xattrs, omap): (Vec<&String>, Vec<&String>) =
                keys_here.iter().partition(|k| k.starts_with(names::xattr::REFERENCE));
            let mut op = WriteOp::new().assert_exists();
            for name in xattrs {
                op = op.rm_xattr(name.clone());
            }
            if !omap.is_empty() {
                op = op.omap_rm_keys(omap.into_iter().cloned());
            }
            match store.write_op(oid, &op) {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for key in keys_here {
            report.actions.push(RepairAction::RemovedReference { object: oid.clone(), key: key.clone() });
        }
    }
    for (oid, age_secs) in check.orphan_bodies {
        if age_secs < grace {
            continue;
        }
        let chunks = chunks_of.remove(&oid).unwrap_or_default();
        if !options.dry_run && !remove_orphan_body(place_of(&oid).as_ref(), &oid, &held_bodies, &chunks)? {
            continue;
        }
        report.actions.push(RepairAction::RemovedOrphan { object: oid, age_secs });
    }
    for oid in check.orphan_chunks {
        let age_secs = match bodies.with_fallback(|s| s.stat(&oid)) {
            Ok((st, _)) => now.duration_since(st.mtime).map(|d| d.as_secs()).unwrap_or(0),
            Err(_) => 0,
        };
        if age_secs < grace {
            continue;
        }
        if !options.dry_run {
            match bodies.with_fallback(|s| s.remove(&oid)) {
                Ok(()) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        report.actions.push(RepairAction::RemovedOrphan { object: oid, age_secs });
    }
    if unrecoverable_list && !check.unlisted_mailbox_objects.is_empty() {
        report.unrepaired.push(format!(
            "{} mailbox objects are of no listed mailbox, but a damaged list entry may be theirs: left alone",
            check.unlisted_mailbox_objects.len()
        ));
        return Ok(());
    }
    let mut heads: BTreeSet<Guid> = BTreeSet::new();
    for oid in &check.unlisted_mailbox_objects {
        if age(ns.as_ref(), oid, now) < grace {
            continue; // a mailbox being created writes its head before its list entry
        }
        match oid.strip_prefix("mbox.").and_then(|r| Guid::parse(r.split('.').next().unwrap_or_default()).ok()) {
            Some(g) => drop(heads.insert(g)),
            None => report.unrepaired.push(format!("object {oid} is named like a mailbox's but is none: left alone")),
        }
    }
    for g in heads {
        let objects_of: Vec<&String> =
            check.unlisted_mailbox_objects.iter().filter(|o| o.starts_with(&names::mailbox_head(&g))).collect();
        if !options.dry_run {
            destroy_unlisted(user, &g, &objects_of)?;
        }
        for oid in objects_of {
            report.actions.push(RepairAction::RemovedUnlistedMailboxObject { object: oid.clone() });
        }
    }
    Ok(())
}

/// Removes what is left of a mailbox that is not listed (a delete or a create that was
/// interrupted): its records' references first (bodies nobody else holds go with them),
/// then its shards, then its head. Works from a raw read, so a damaged head is no obstacle.
fn destroy_unlisted(user: &User, guid: &Guid, objects: &[&String]) -> Result<()> {
    let ns = user.store();
    let shards: Vec<u32> = objects
        .iter()
        .filter_map(|o| {
            o.rsplit_once('.').filter(|(h, _)| *h != "mbox").and_then(|(_, k)| u32::from_str_radix(k, 16).ok())
        })
        .collect();
    let scan = MailboxScan::read(ns.as_ref(), guid, Some(&shards))?;
    let (records, _) = scan.records();
    let records: Vec<MailRecord> = records.into_values().collect();
    let in_flight = user.settings().ref_in_flight;
    for r in crate::refs::drop_references(&user.bodies()?, guid, &records, in_flight, user.retry_policy()) {
        r?;
    }
    let mut order: Vec<&String> = objects.to_vec();
    order.sort_by_key(|o| std::cmp::Reverse(o.len())); // shards before the head
    for oid in order {
        match ns.remove(oid) {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes an orphan body (and its chunks) unless a record holds it after all: the removal
/// is guarded by the version at which its references were read, so a reference added
/// meanwhile (a copy) keeps it. Returns whether it was removed.
fn remove_orphan_body(
    ns: &dyn ObjectStore,
    oid: &str,
    held: &BTreeSet<String>,
    listed_chunks: &[String],
) -> Result<bool> {
    if held.contains(oid) {
        return Ok(false);
    }
    let read = match ns.read_op(oid, &ReadOp::new().xattrs()) {
        Ok(r) => r,
        Err(StoreError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let chunks: u64 = read
        .xattrs
        .as_ref()
        .and_then(|x| x.get(names::xattr::CHUNKS))
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        .unwrap_or(1);
    match ns.write_op(oid, &WriteOp::new().assert_version(read.version).remove()) {
        Ok(_) => {}
        Err(StoreError::NotFound { .. } | StoreError::Conflict { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let guid = Guid::parse(&oid["mail.".len()..]).map_err(|e| Error::corrupted(oid, "", e))?;
    let counted = (1..chunks.max(1)).map(|n| names::mail_chunk(&guid, n));
    let all: BTreeSet<String> = counted.chain(listed_chunks.iter().cloned()).collect();
    for chunk in all {
        match ns.remove(&chunk) {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// Records as [`MailRecord`]s rebuilt from a body's xattrs (for `lost+found`).
pub(super) fn record_from_xattrs(user: &User, body: &Guid) -> Result<Option<MailRecord>> {
    let xattrs = match user.bodies()?.with_fallback(|s| s.xattrs(&names::mail(body))) {
        Ok(x) => x,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let num = |name: &str| -> Option<u64> { std::str::from_utf8(xattrs.get(name)?).ok()?.parse().ok() };
    let signed =
        |name: &str| -> i64 { xattrs.get(name).and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()).unwrap_or(0) };
    let crc32 = xattrs
        .get(names::xattr::CRC32)
        .and_then(|v| u32::from_str_radix(std::str::from_utf8(v).ok()?, 16).ok())
        .unwrap_or(0);
    let Some(psize) = num(names::xattr::PSIZE) else { return Ok(None) };
    Ok(Some(MailRecord {
        mail_guid: body.0.to_vec(),
        psize,
        vsize: num(names::xattr::VSIZE).unwrap_or(psize),
        hdr_len: num(names::xattr::HDR_LEN).unwrap_or(0),
        received: signed(names::xattr::RECEIVED),
        saved: signed(names::xattr::SAVED),
        crc32,
        chunk_size: num(names::xattr::CHUNK_SIZE).unwrap_or(0),
        plain_psize: num(names::xattr::PLAIN_PSIZE),
        ..Default::default()
    }))
}
