//! Consistency check of a user's objects, for operators (`check`).
//!
//! rados-mail orders its writes so that a crash or a cluster outage can leave only
//! *unreferenced* objects behind — a body written but never committed, chunks of a mail
//! whose save failed, a mailbox head that never got listed — and never an index record
//! pointing to nothing. This module finds both kinds: the harmless leftovers (to clean up)
//! and anything that breaks the promise (to investigate).
//!
//! On a live mailbox, a save in progress looks like an orphan until it commits: the report
//! gives each orphan's age, and a repair tool should only remove old ones.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use objstore::{Error as StoreError, ObjectStore};
use omap_index::keys;
use omap_index::names::{self, Guid};

use crate::error::Result;
use crate::repair::scan::{ListScan, MailboxScan};
use crate::user::User;

/// A value or object that failed its integrity check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Damage {
    /// The object.
    pub object: String,
    /// The omap key, when the damage is in one.
    pub key: Option<String>,
    /// What is wrong.
    pub detail: String,
}

/// What [`check_user`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CheckReport {
    /// Mailboxes listed.
    pub mailboxes: usize,
    /// Mail records in them.
    pub records: usize,
    /// Body objects (first chunks) found.
    pub bodies: usize,
    /// Body objects no record refers to, with their age in seconds: leftovers of failed or
    /// in-progress saves (a save writes its body with its reference before it commits)
    /// and of interrupted expunges; safe to remove once old. Their references are not
    /// listed again under `stale_references`.
    pub orphan_bodies: Vec<(String, u64)>,
    /// Chunk objects whose body object does not exist (leftovers of failed saves or
    /// interrupted deletes).
    pub orphan_chunks: Vec<String>,
    /// References that no record holds on bodies that some record refers to, as (object,
    /// omap key `ref/…`, or xattr name `rm.ref.…` in pool format v2).
    pub stale_references: Vec<(String, String)>,
    /// Mailbox head or shard objects of no listed mailbox.
    pub unlisted_mailbox_objects: Vec<String>,
    /// Records whose body is missing, as (mailbox, UID). Must always be empty.
    pub missing_bodies: Vec<(String, u32)>,
    /// Records whose body lacks the reference they hold, as (body object, reference in the
    /// omap key form `ref/<mailbox>/<instance>`, whichever form the pool uses).
    pub missing_references: Vec<(String, String)>,
    /// Values that failed their integrity check: records, headers, WAL entries, trim and
    /// applied marks, mailbox-list entries and counters.
    pub corrupt: Vec<Damage>,
    /// Disagreements between a mailbox's head, WAL and shards (for example a shard applied
    /// past the header's HIGHESTMODSEQ, a record in the wrong shard, a message count that
    /// is not the number of records).
    pub index_problems: Vec<String>,
}

impl CheckReport {
    /// Nothing found at all.
    pub fn is_clean(&self) -> bool {
        self.orphan_bodies.is_empty()
            && self.orphan_chunks.is_empty()
            && self.stale_references.is_empty()
            && self.unlisted_mailbox_objects.is_empty()
            && self.missing_bodies.is_empty()
            && self.missing_references.is_empty()
            && self.corrupt.is_empty()
            && self.index_problems.is_empty()
    }

    /// Whether the store broke a promise (a record without its body), as opposed to
    /// leaving leftovers behind.
    pub fn has_damage(&self) -> bool {
        !self.missing_bodies.is_empty()
            || !self.missing_references.is_empty()
            || !self.corrupt.is_empty()
            || !self.index_problems.is_empty()
    }
}

/// Checks every object of a user's namespace against the user's mailboxes and indexes.
/// Reads only; costs a listing of the namespace plus a read per object.
pub fn check_user(user: &User) -> Result<CheckReport> {
    let objects: Vec<String> = user.store().list_objects()?.collect::<objstore::Result<_>>()?;
    check_user_objects(user, objects)
}

/// [`check_user`] given the names of the objects of the user's namespace (from one walk of
/// the whole pool, [`objstore::ObjectStore::list_pool`], when checking every user: listing
/// one namespace of a RADOS pool visits every placement group).
///
/// Reads only: damaged values are reported, not rebuilt (the data path would rebuild a
/// damaged head when it reads it; this reads everything raw). Costs one read of the
/// mailbox list, one of each head and shard object, and one of each body's references.
pub fn check_user_objects(user: &User, objects: Vec<String>) -> Result<CheckReport> {
    Ok(inventory(user, &objects)?.report)
}

/// What a check learns on the way: the report, every body's references, and the
/// references the records hold.
///
/// References are named in the omap key form, `ref/<mailbox>/<instance>`, whether stored
/// as that omap key (pool format v1) or as the xattr `rm.ref.<mailbox>.<instance>` (v2);
/// [`Inventory::stored`] tells which.
pub(crate) struct Inventory {
    pub(crate) report: CheckReport,
    /// Body GUID → its references, for every body object found.
    pub(crate) refs: BTreeMap<Guid, BTreeSet<String>>,
    /// Body GUID → the references the records of the listed mailboxes hold.
    pub(crate) held: BTreeMap<Guid, BTreeSet<String>>,
    /// Body GUID → the store its first object was found in (the data pool, or the index
    /// pool while a migration moves bodies).
    pub(crate) place: BTreeMap<Guid, Arc<dyn ObjectStore>>,
}

/// The stored name of reference `key` (omap key form) on a body: the xattr name when the
/// body keeps it as an xattr (`xattrs` lists the body's xattr references).
pub(crate) fn stored_name(key: &str, xattrs: &BTreeSet<String>) -> String {
    match keys::parse_reference(key) {
        Some((m, i)) if xattrs.contains(key) => names::xattr::reference(&m, i),
        _ => key.to_string(),
    }
}

/// A body's references: (all, in omap key form; those stored as xattrs), read in one
/// operation (more only for a body with over a thousand omap references). `omap`: read
/// omap `ref/` keys too (bodies in the index pool).
pub(crate) fn body_references(
    store: &dyn ObjectStore,
    oid: &str,
    omap: bool,
) -> objstore::Result<(BTreeSet<String>, BTreeSet<String>)> {
    let read = store.read_op(oid, &crate::refs::read_references(omap, objstore::OMAP_PAGE_MAX))?;
    let more = read.omap_page.as_ref().is_some_and(|p| p.more);
    let refs = crate::refs::references_of(read);
    let xattrs: BTreeSet<String> = refs.xattrs.iter().map(|(m, i)| keys::reference(m, *i)).collect();
    let mut all: BTreeSet<String> = refs.omap.into_iter().collect();
    if more {
        all.extend(store.omap_all(oid, keys::REFERENCE)?.into_iter().map(|(k, _)| k));
    }
    all.extend(xattrs.iter().cloned());
    Ok((all, xattrs))
}

/// The check, with what it learnt (see [`Inventory`]).
pub(crate) fn inventory(user: &User, objects: &[String]) -> Result<Inventory> {
    let ns = user.store();
    let places = user.bodies()?;
    let mut report = CheckReport::default();
    let list = ListScan::read(ns.as_ref())?;
    report.corrupt.extend(list.damage);
    report.index_problems.extend(list.problems);
    report.mailboxes = list.entries.len();
    let listed: BTreeSet<Guid> = list.entries.iter().filter_map(|e| e.guid).collect();
    let shards = shards_by_mailbox(objects);

    // Every reference a record holds: body guid -> {ref key}.
    let mut wanted: BTreeMap<Guid, BTreeSet<String>> = BTreeMap::new();
    let mut records_by_body: BTreeMap<Guid, Vec<(String, u32)>> = BTreeMap::new();
    for entry in &list.entries {
        let Some(guid) = entry.guid else { continue };
        let listed_shards = shards.get(&guid).map(Vec::as_slice).unwrap_or_default();
        let mut scan = MailboxScan::read(ns.as_ref(), &guid, Some(listed_shards))?;
        let mut problems = scan.problems(&entry.name);
        if !problems.is_empty() || !scan.damage.is_empty() {
            // A live mailbox changes between the reads of its head and its shards: what
            // is real is still there when read again.
            scan = MailboxScan::read(ns.as_ref(), &guid, Some(listed_shards))?;
            problems = scan.problems(&entry.name);
        }
        if !scan.head_exists {
            report
                .index_problems
                .push(format!("mailbox {:?}: its head object {} is missing", entry.name, scan.head_oid));
        }
        report.corrupt.extend(scan.damage.iter().cloned());
        report.index_problems.extend(problems);
        let (records, damaged) = scan.records();
        report.records += records.len() + damaged.len();
        for rec in records.values() {
            let Ok(body) = Guid::from_slice(&rec.mail_guid) else {
                report.corrupt.push(Damage {
                    object: scan.head_oid.clone(),
                    key: Some(keys::record(rec.uid)),
                    detail: "the record's mail GUID is not 16 bytes".into(),
                });
                continue;
            };
            wanted.entry(body).or_default().insert(keys::reference(&guid, rec.instance));
            records_by_body.entry(body).or_default().push((entry.name.clone(), rec.uid));
        }
    }

    // Bodies: in the index namespace (listed by the caller) unless the data pool is
    // another pool, which is listed here (and the index pool's bodies count too while a
    // migration moves them).
    let mut body_objects: Vec<(String, Arc<dyn ObjectStore>)> = Vec::new();
    if places.separate() {
        for oid in places.store().list_objects()? {
            body_objects.push((oid?, places.store().clone()));
        }
    }
    if !places.separate() || places.fallback()?.is_some() {
        body_objects.extend(objects.iter().map(|o| (o.clone(), ns.clone())));
    }
    let mut place: BTreeMap<Guid, Arc<dyn ObjectStore>> = BTreeMap::new();
    let mut chunks: Vec<(Guid, String)> = Vec::new();
    for (oid, store) in &body_objects {
        if let Some(rest) = oid.strip_prefix("mail.") {
            let (guid_hex, chunk) = rest.split_once('.').map_or((rest, false), |(g, _)| (g, true));
            let Ok(guid) = Guid::parse(guid_hex) else { continue };
            if chunk {
                chunks.push((guid, oid.clone()));
            } else {
                place.entry(guid).or_insert_with(|| store.clone());
            }
        }
    }
    let bodies: BTreeSet<Guid> = place.keys().copied().collect();
    for oid in objects {
        if let Some(rest) = oid.strip_prefix("mbox.") {
            let listed_here =
                Guid::parse(rest.split('.').next().unwrap_or_default()).is_ok_and(|g| listed.contains(&g));
            if !listed_here {
                report.unlisted_mailbox_objects.push(oid.clone());
            }
        }
    }
    report.bodies = bodies.len();
    let now = SystemTime::now();
    let mut all_refs = BTreeMap::new();
    for guid in &bodies {
        let oid = names::mail(guid);
        let store = &place[guid];
        // Omap references exist only in the index pool (the data pool may have no omap).
        let omap = Arc::ptr_eq(store, ns);
        let (refs, xattrs) = match body_references(store.as_ref(), &oid, omap) {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => continue, // removed meanwhile
            Err(e) => return Err(e.into()),
        };
        all_refs.insert(*guid, refs.clone());
        let wanted_here = wanted.get(guid);
        for r in refs.iter().filter(|_| wanted_here.is_some()) {
            if !wanted_here.is_some_and(|w| w.contains(r)) {
                report.stale_references.push((oid.clone(), stored_name(r, &xattrs)));
            }
        }
        for w in wanted_here.into_iter().flatten() {
            if !refs.contains(w) {
                report.missing_references.push((oid.clone(), w.clone()));
            }
        }
        if wanted_here.is_none() {
            report.orphan_bodies.push((oid.clone(), age(store.as_ref(), &oid, now)));
        }
    }
    for (guid, oid) in chunks {
        if !bodies.contains(&guid) {
            report.orphan_chunks.push(oid);
        }
    }
    for (guid, users) in records_by_body {
        if !bodies.contains(&guid) {
            report.missing_bodies.extend(users);
        }
    }
    Ok(Inventory { report, refs: all_refs, held: wanted, place })
}

/// Seconds since `oid` was last changed (0 when unknown or in the future).
pub(crate) fn age(store: &dyn ObjectStore, oid: &str, now: SystemTime) -> u64 {
    match store.stat(oid) {
        Ok((st, _)) => now.duration_since(st.mtime).map(|d| d.as_secs()).unwrap_or(0),
        Err(_) => 0,
    }
}

/// The shard numbers of each mailbox among `objects` (`mbox.<guid>.<shard>`).
pub(crate) fn shards_by_mailbox(objects: &[String]) -> BTreeMap<Guid, Vec<u32>> {
    let mut out: BTreeMap<Guid, Vec<u32>> = BTreeMap::new();
    for oid in objects {
        let Some((guid, shard)) = oid.strip_prefix("mbox.").and_then(|r| r.split_once('.')) else { continue };
        if let (Ok(g), Ok(k)) = (Guid::parse(guid), u32::from_str_radix(shard, 16)) {
            out.entry(g).or_default().push(k);
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    out
}
