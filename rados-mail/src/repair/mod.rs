//! Repair of a user's objects, for operators (`rados-mail repair`) and for Dovecot's
//! `doveadm force-resync`: the same code behind both.
//!
//! What [`crate::check`] finds, this fixes, never by dropping mail silently:
//!
//! * orphan bodies and chunks older than [`RepairOptions::orphan_grace`] are removed (a
//!   save in flight is younger, and is never touched);
//! * references are rebuilt: a reference no record holds is removed, a record whose body
//!   lacks its reference gets it back;
//! * a mailbox head whose header, trim mark or WAL entry is corrupt is rebuilt from what is
//!   intact (the shards, the other WAL entries, the mailbox list, the bodies' xattrs);
//! * a corrupt mailbox-list entry is rebuilt from the GUID map and the mailbox's head;
//! * records whose body is missing, and corrupt records whose body is still there, are
//!   moved out of their mailbox into [`LOST_FOUND`], together with a report mail that
//!   names each of them.
//!
//! With [`RepairOptions::dry_run`] nothing is written: the report says what would be done.

pub(crate) mod head;
mod lost;
mod run;
pub(crate) mod scan;

use std::time::Duration;

use crate::error::{Error, Result};
use crate::user::User;

/// The mailbox that receives what a repair takes out of other mailboxes.
pub const LOST_FOUND: &str = "lost+found";

/// How a repair runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairOptions {
    /// Only report what would be done; write nothing.
    pub dry_run: bool,
    /// Orphans younger than this are left alone (a save may be in flight). Default 1 hour.
    pub orphan_grace: Duration,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions { dry_run: false, orphan_grace: Duration::from_secs(3600) }
    }
}

/// One thing a repair did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize), serde(tag = "action", rename_all = "snake_case"))]
#[non_exhaustive]
pub enum RepairAction {
    /// Removed an unreferenced body (and its chunks) or a chunk without its body.
    RemovedOrphan {
        /// The object.
        object: String,
        /// Its age in seconds.
        age_secs: u64,
    },
    /// Removed a reference on a body that no record holds.
    RemovedReference {
        /// The body object.
        object: String,
        /// The omap key (`ref/<mailbox guid>/<instance>`).
        key: String,
    },
    /// Added the reference a record holds but its body lacked.
    AddedReference {
        /// The body object.
        object: String,
        /// The omap key.
        key: String,
    },
    /// Rebuilt a mailbox head (header, trim mark, WAL) from what was intact, or removed
    /// its damaged delivery marks.
    RebuiltHead {
        /// The mailbox name.
        mailbox: String,
        /// The head object.
        object: String,
        /// What was wrong and what was done.
        detail: String,
    },
    /// Rebuilt a corrupt mailbox-list entry (or the list's counters).
    RebuiltListEntry {
        /// The mailbox name (or `counters`).
        mailbox: String,
        /// The omap key rewritten.
        key: String,
    },
    /// Removed a leftover head or shard object of no listed mailbox.
    RemovedUnlistedMailboxObject {
        /// The object.
        object: String,
    },
    /// Gave a body that a damaged record or a lost change held a record in [`LOST_FOUND`]
    /// (by reference: its bytes are not copied).
    MovedToLostFound {
        /// The mailbox whose record it was.
        mailbox: String,
        /// The body object.
        body: String,
        /// Its UID in [`LOST_FOUND`] (None in a dry run).
        lost_found_uid: Option<u32>,
    },
    /// Expunged a mail its mailbox can no longer serve (described in the report mail).
    RemovedFromMailbox {
        /// The mailbox.
        mailbox: String,
        /// Its UID there.
        uid: u32,
        /// Why: `body missing` or `corrupt record`.
        reason: String,
    },
    /// Left something for a later repair (a body younger than the grace that may be a
    /// damaged mail's, or a save in flight).
    Deferred {
        /// The mailbox concerned.
        mailbox: String,
        /// The object left.
        object: String,
        /// Why, and what a later repair does.
        reason: String,
    },
    /// Removed `damaged/` markers of a head: every body they may have held is moved (or
    /// none is left).
    ClearedMarkers {
        /// The mailbox.
        mailbox: String,
        /// The keys removed.
        keys: Vec<String>,
    },
    /// Appended the report mail that describes what was moved to [`LOST_FOUND`].
    WroteReport {
        /// Its UID in [`LOST_FOUND`].
        uid: u32,
    },
}

/// What a repair did, and what it could not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RepairReport {
    /// Whether this was a dry run (nothing written).
    pub dry_run: bool,
    /// What was done, in order.
    pub actions: Vec<RepairAction>,
    /// What needs a human: damage the repair found and could not fix.
    pub unrepaired: Vec<String>,
}

impl RepairReport {
    /// Whether the repair found nothing to do and nothing it could not do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty() && self.unrepaired.is_empty()
    }
}

impl std::fmt::Display for RepairAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RepairAction::RemovedOrphan { object, age_secs } => write!(f, "removed orphan {object} (age {age_secs} s)"),
            RepairAction::RemovedReference { object, key } => write!(f, "removed stale reference {key} of {object}"),
            RepairAction::AddedReference { object, key } => write!(f, "added missing reference {key} to {object}"),
            RepairAction::RebuiltHead { mailbox, object, detail } => {
                write!(f, "rebuilt the head {object} of mailbox {mailbox:?}: {detail}")
            }
            RepairAction::RebuiltListEntry { mailbox, key } => {
                write!(f, "rebuilt list value {key} (mailbox {mailbox:?})")
            }
            RepairAction::RemovedUnlistedMailboxObject { object } => write!(f, "removed {object} of no listed mailbox"),
            RepairAction::MovedToLostFound { mailbox, body, lost_found_uid } => match lost_found_uid {
                Some(uid) => write!(f, "moved {body} (of mailbox {mailbox:?}) to {LOST_FOUND} as UID {uid}"),
                None => write!(f, "move {body} (of mailbox {mailbox:?}) to {LOST_FOUND}"),
            },
            RepairAction::RemovedFromMailbox { mailbox, uid, reason } => {
                write!(f, "removed UID {uid} from mailbox {mailbox:?} ({reason}; see the report in {LOST_FOUND})")
            }
            RepairAction::WroteReport { uid } => write!(f, "wrote the report mail, UID {uid} in {LOST_FOUND}"),
            RepairAction::ClearedMarkers { mailbox, keys } => {
                write!(f, "removed the markers {} of mailbox {mailbox:?}: nothing left to look for", keys.join(", "))
            }
            RepairAction::Deferred { mailbox, object, reason } => {
                write!(f, "left {object} (mailbox {mailbox:?}): {reason}")
            }
        }
    }
}

/// Repairs every mailbox, the mailbox list and the bodies of `user` (see the module doc).
/// Costs a listing of the user's namespace, a check, and the writes the repairs need.
pub fn repair_user(user: &User, options: &RepairOptions) -> Result<RepairReport> {
    let objects: Vec<String> = user.store().list_objects()?.collect::<objstore::Result<_>>()?;
    repair_user_objects(user, objects, options)
}

/// [`repair_user`] given the names of the objects of the user's namespace (from one walk
/// of the whole pool when repairing every user).
pub fn repair_user_objects(user: &User, objects: Vec<String>, options: &RepairOptions) -> Result<RepairReport> {
    let mut report = RepairReport { dry_run: options.dry_run, ..Default::default() };
    let list = scan::ListScan::read(user.store().as_ref())?;
    run::repair_list(user, &list, None, options, &mut report)?;
    let bodies = crate::check::inventory(user, &objects)?;
    let mut unrecoverable = false;
    for e in &list.entries {
        match e.guid {
            Some(guid) if e.name != LOST_FOUND => {
                run::repair_mailbox_objects(user, &e.name, guid, &objects, &bodies, options, &mut report)?
            }
            Some(_) => {}
            None => unrecoverable = true,
        }
    }
    // lost+found last: what the others moved there is in order already.
    if let Some(guid) = list.entries.iter().find(|e| e.name == LOST_FOUND).and_then(|e| e.guid) {
        // Seen as it is now: the repairs above may have added to it.
        let (objects, bodies) = if options.dry_run {
            (objects, bodies)
        } else {
            let objects: Vec<String> = user.store().list_objects()?.collect::<objstore::Result<_>>()?;
            let bodies = crate::check::inventory(user, &objects)?;
            (objects, bodies)
        };
        run::repair_mailbox_objects(user, LOST_FOUND, guid, &objects, &bodies, options, &mut report)?;
    }
    let objects: Vec<String> = user.store().list_objects()?.collect::<objstore::Result<_>>()?;
    run::repair_leftovers(user, objects, unrecoverable, options, &mut report)?;
    Ok(report)
}

/// Repairs one mailbox of `user`: its list entry, its head, the mails it can no longer
/// serve (moved to [`LOST_FOUND`]) and the references its records lack. What `doveadm
/// force-resync` runs. Orphans and stale references are left to [`repair_user`]. Costs a
/// listing of the user's namespace (to find the bodies a damaged record may have held).
pub fn repair_mailbox(user: &User, name: &str, options: &RepairOptions) -> Result<RepairReport> {
    let name = crate::names::normalize(name)?;
    let mut report = RepairReport { dry_run: options.dry_run, ..Default::default() };
    let list = scan::ListScan::read(user.store().as_ref())?;
    let Some(entry) = list.entries.iter().find(|e| e.name == name) else {
        return Err(Error::NotFound(format!("mailbox {name:?}")));
    };
    run::repair_list(user, &list, Some(&name), options, &mut report)?;
    let Some(guid) = entry.guid else { return Ok(report) };
    let objects: Vec<String> = user.store().list_objects()?.collect::<objstore::Result<_>>()?;
    let bodies = crate::check::inventory(user, &objects)?;
    run::repair_mailbox_objects(user, &name, guid, &objects, &bodies, options, &mut report)?;
    Ok(report)
}
