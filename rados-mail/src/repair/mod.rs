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
    /// Rebuilt a mailbox head (header, trim mark, WAL) from what was intact.
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
    /// Moved a mail out of its mailbox into [`LOST_FOUND`].
    MovedToLostFound {
        /// The mailbox it was in.
        mailbox: String,
        /// Its UID there.
        uid: u32,
        /// Why: `body missing` or `corrupt record`.
        reason: String,
        /// The body object, when known.
        body: Option<String>,
        /// Its UID in [`LOST_FOUND`] (None for a record whose body is gone: only the report
        /// mail describes it). None in a dry run.
        lost_found_uid: Option<u32>,
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

/// Repairs every mailbox, the mailbox list and the bodies of `user` (see the module doc).
pub fn repair_user(user: &User, options: &RepairOptions) -> Result<RepairReport> {
    let _ = (user, options);
    Err(Error::InvalidInput("repair_user: not implemented yet".into()))
}

/// Repairs one mailbox of `user` (its list entry, head, shards and the references of its
/// records): what `doveadm force-resync` runs. Orphan bodies are left to [`repair_user`].
pub fn repair_mailbox(user: &User, name: &str, options: &RepairOptions) -> Result<RepairReport> {
    let _ = (user, name, options);
    Err(Error::InvalidInput("repair_mailbox: not implemented yet".into()))
}
