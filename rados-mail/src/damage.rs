//! Damage met on the data path: kept confined to what it touches, and reported loudly —
//! once per process for each damaged value, so a mailbox read a thousand times does not
//! flood the log.
//!
//! A corrupt mail record makes that one mail unreadable ([`DamagedRecord`]); a corrupt
//! mailbox head is rebuilt (`repair::head`); a corrupt mailbox-list entry is recovered from
//! the GUID map (`user/recover.rs`). None of these is ever shown as something normal: a
//! damaged mail is still listed and answers [`Error::Corrupted`] naming its object and key.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use omap_index::records::MailRecord;

use crate::error::Error;

/// A mail record that failed its integrity check, in place of the record in a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DamagedRecord {
    /// The shard object.
    pub(crate) object: String,
    /// The omap key (`r/<uid>`).
    pub(crate) key: String,
    /// What is wrong.
    pub(crate) detail: String,
    /// The shard's applied mark when read: the record's modseq is not above it.
    pub(crate) modseq: u64,
}

impl DamagedRecord {
    /// The error every read of this mail answers.
    pub(crate) fn error(&self) -> Error {
        Error::Corrupted { object: self.object.clone(), key: Some(self.key.clone()), detail: self.detail.clone() }
    }

    /// What a mail server's index is given for the mail: its UID and the modseq bound,
    /// no flags, no GUID. Reading it answers the error above.
    pub(crate) fn placeholder(&self, uid: u32) -> MailRecord {
        MailRecord { uid, modseq: self.modseq, ..Default::default() }
    }
}

/// Logs `e` (a damage) at error level, the first time this process meets its object and
/// key; later meetings are quiet.
pub(crate) fn report(e: &Error, what: &str) {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let id = match e {
        Error::Corrupted { object, key, .. } => format!("{object}\0{}", key.as_deref().unwrap_or_default()),
        other => other.to_string(),
    };
    let first = SEEN.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner()).insert(id);
    if first {
        tracing::error!("damage in the pool ({what}): {e}");
    }
}
