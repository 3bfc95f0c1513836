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
use std::time::SystemTime;

use objstore::Error as StoreError;
use omap_index::keys;
use omap_index::names::{self, Guid};

use crate::error::{Error, Result};
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
    /// Body objects no record refers to, with their age in seconds (leftovers of failed or
    /// in-progress saves; safe to remove once old).
    pub orphan_bodies: Vec<(String, u64)>,
    /// Chunk objects whose body object does not exist (leftovers of failed saves or
    /// interrupted deletes).
    pub orphan_chunks: Vec<String>,
    /// References on bodies that no record matches, as (object, omap key).
    pub stale_references: Vec<(String, String)>,
    /// Mailbox head or shard objects of no listed mailbox.
    pub unlisted_mailbox_objects: Vec<String>,
    /// Records whose body is missing, as (mailbox, UID). Must always be empty.
    pub missing_bodies: Vec<(String, u32)>,
    /// Records whose body lacks the reference they hold, as (body object, omap key).
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
pub fn check_user_objects(user: &User, objects: Vec<String>) -> Result<CheckReport> {
    let ns = user.store();
    let mut report = CheckReport::default();
    let infos = user.list_mailboxes("*")?;
    report.mailboxes = infos.len();
    let listed: BTreeSet<String> = infos.iter().map(|i| i.guid.to_string()).collect();

    // Every reference a record holds: body guid -> {ref key}.
    let mut wanted: BTreeMap<Guid, BTreeSet<String>> = BTreeMap::new();
    let mut records_by_body: BTreeMap<Guid, Vec<(String, u32)>> = BTreeMap::new();
    for info in &infos {
        let mailbox = user.open_mailbox_info(info)?;
        for rec in mailbox.records(1..=u32::MAX)? {
            report.records += 1;
            let guid = Guid::from_slice(&rec.mail_guid)
                .map_err(|e| Error::corrupted(&names::mailbox_head(&info.guid), &keys::record(rec.uid), e))?;
            wanted.entry(guid).or_default().insert(keys::reference(&info.guid, rec.instance));
            records_by_body.entry(guid).or_default().push((info.name.clone(), rec.uid));
        }
    }

    let mut bodies: BTreeSet<Guid> = BTreeSet::new();
    let mut chunks: Vec<(Guid, String)> = Vec::new();
    for oid in &objects {
        if let Some(rest) = oid.strip_prefix("mail.") {
            let (guid_hex, chunk) = rest.split_once('.').map_or((rest, false), |(g, _)| (g, true));
            let Ok(guid) = Guid::parse(guid_hex) else { continue };
            if chunk {
                chunks.push((guid, oid.clone()));
            } else {
                bodies.insert(guid);
            }
        } else if let Some(rest) = oid.strip_prefix("mbox.") {
            let guid_hex = rest.split('.').next().unwrap_or_default();
            if !listed.contains(guid_hex) {
                report.unlisted_mailbox_objects.push(oid.clone());
            }
        }
    }
    report.bodies = bodies.len();
    let now = SystemTime::now();
    for guid in &bodies {
        let oid = names::mail(guid);
        let refs: BTreeSet<String> = match ns.omap_all(&oid, keys::REFERENCE) {
            Ok(entries) => entries.into_iter().map(|(k, _)| k).collect(),
            Err(StoreError::NotFound { .. }) => continue, // removed meanwhile
            Err(e) => return Err(e.into()),
        };
        let wanted_here = wanted.get(guid);
        for r in &refs {
            if !wanted_here.is_some_and(|w| w.contains(r)) {
                report.stale_references.push((oid.clone(), r.clone()));
            }
        }
        if wanted_here.is_none() {
            let age = match ns.stat(&oid) {
                Ok((st, _)) => now.duration_since(st.mtime).map(|d| d.as_secs()).unwrap_or(0),
                Err(_) => 0,
            };
            report.orphan_bodies.push((oid, age));
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
    Ok(report)
}
