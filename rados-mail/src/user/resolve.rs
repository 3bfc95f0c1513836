//! Mailbox-list changes whose reply was lost (issue 13): a create, rename or delete whose
//! write timed out or lost its connection may have been applied. As a mailbox commit does
//! (`Mailbox::landed`), the change asks the list again until the cluster answers or
//! [`crate::Config::resolve_window`] has passed since the write was sent, and reports
//! success if it landed — so a client is never told "try again" for a change that was
//! made (and a retried create does not answer "already exists" for its own mailbox).

use std::collections::BTreeMap;
use std::time::Instant;

use objstore::WriteOp;
use omap_index::names::MAILBOX_LIST;

use super::{User, lost_race};
use crate::error::Result;

/// What the list must hold after the write, key by key: `Some(bytes)` that value, `None`
/// the key absent. The write landed iff every key is as given; it did not if `before`
/// (the keys as they were when the write was planned) still holds.
pub(super) struct Expect {
    pub(super) after: Vec<(String, Option<Vec<u8>>)>,
    pub(super) before: Vec<(String, Option<Vec<u8>>)>,
}

impl User {
    /// Applies a guarded write to the mailbox list: `false` when a guard failed because
    /// someone else changed the list since it was read. A temporary failure is resolved
    /// with `expect` (see the module documentation).
    pub(super) fn try_write_resolved(&self, op: &WriteOp, expect: &Expect) -> Result<bool> {
        let started = Instant::now();
        match self.store.write_op(MAILBOX_LIST, op) {
            Ok(_) => {
                self.list_changed();
                Ok(true)
            }
            Err(e) if lost_race(&e) => Ok(false),
            Err(e) if e.is_temporary() => match self.list_landed(expect, started) {
                Some(true) => {
                    self.list_changed();
                    Ok(true)
                }
                _ => Err(e.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a list write whose reply was lost landed: `Some(true)` it did, `Some(false)`
    /// it did not, `None` unknown (the cluster did not answer within the window, or the
    /// list is in neither state: another change came in between).
    fn list_landed(&self, expect: &Expect, started: Instant) -> Option<bool> {
        let keys: Vec<&str> = expect.after.iter().chain(&expect.before).map(|(k, _)| k.as_str()).collect();
        crate::retry::resolve_lost_reply(started, self.config.resolve_window, || {
            let found = self.read_keys(&keys)?.unwrap_or_default();
            let holds = |want: &[(String, Option<Vec<u8>>)]| want.iter().all(|(k, v)| found.get(k) == v.as_ref());
            Ok(if holds(&expect.after) {
                Some(true)
            } else if holds(&expect.before) {
                Some(false)
            } else {
                None
            })
        })
    }
}

/// The keys of `set` with their values and of `removed` absent.
pub(super) fn state(set: &[(String, Vec<u8>)], removed: &[String]) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out: BTreeMap<String, Option<Vec<u8>>> = removed.iter().map(|k| (k.clone(), None)).collect();
    out.extend(set.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
    out.into_iter().collect()
}
