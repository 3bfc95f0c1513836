//! [`rm_user_repair_mailbox`]: repairing one mailbox in RADOS, what `doveadm
//! force-resync` runs (the same code as `rados-mail repair`:
//! [`rados_mail::repair::repair_mailbox`]).

use std::ffi::{CString, c_char, c_void};

use rados_mail::repair::{self, RepairAction, RepairOptions, RepairReport};

use crate::error::Failure;
use crate::error::rm_result;
use crate::ffi::{Out, borrow_handle, str_arg};
use crate::panic::ffi_call;
use crate::user::rm_user;

/// What an item a repair reports is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum rm_repair_item {
    /// Something the repair did (or, in a dry run, would do).
    Action = 0,
    /// Damage the repair found and could not fix: it needs a human.
    Unrepaired = 1,
}

/// Called by [`rm_user_repair_mailbox`] once per item of its report, actions first, in
/// the order they were done: `text` is a one-line description for a log (NUL-terminated
/// UTF-8 of `text_len` bytes, without the NUL), valid only during the call; `userdata` is
/// the caller's pointer, passed through untouched.
pub type rm_repair_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, item: rm_repair_item, text: *const c_char, text_len: usize)>;

/// How many items of each kind a repair reported.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct rm_repair_counts {
    /// Things done (or, in a dry run, that would be done).
    pub actions: usize,
    /// Damage left unrepaired.
    pub unrepaired: usize,
}

/// Repairs the mailbox `name` of `user` in RADOS: its mailbox-list entry, its head (header,
/// trim mark, WAL) rebuilt from what is intact, the references of its records, and its
/// records whose body is missing or that are corrupt moved to the mailbox `lost+found`
/// with a report mail (see `rados_mail::repair`). Orphan bodies are left to a repair of
/// the whole user (`rados-mail repair`). With `dry_run` nothing is written: the report says
/// what would be done.
///
/// `callback` (may be NULL) gets each item of the report; `*out` their counts. Sync
/// (`rm_mailbox_sync`) or open again the `rm_mailbox` handles opened before, to see the
/// repaired state.
///
/// Returns `RM_RESULT_OK` (also when some damage could not be repaired: see
/// `out->unrepaired`), `RM_RESULT_NOT_FOUND` (no such mailbox), `RM_RESULT_INVALID_INPUT`,
/// `RM_RESULT_UNAVAILABLE`, `RM_RESULT_NULL_PARAMETER`, or another code. `*out` is written
/// and `callback` called only on success.
///
/// # Safety
/// `user` is a live handle; `name` is NUL-terminated; `out` is writable; a non-NULL
/// `callback` is safe to call with `userdata` and does not unwind.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rm_user_repair_mailbox(
    user: *const rm_user,
    name: *const c_char,
    dry_run: bool,
    callback: rm_repair_callback,
    userdata: *mut c_void,
    out: *mut rm_repair_counts,
) -> rm_result {
    ffi_call(|| {
        // SAFETY: forwarded contract of this export.
        let user = unsafe { borrow_handle(user, "user") }?;
        // SAFETY: forwarded contract of this export.
        let name = unsafe { str_arg(name, "name") }?;
        // SAFETY: forwarded contract of this export.
        let out = unsafe { Out::new(out, "out") }?;
        let options = RepairOptions { dry_run, ..RepairOptions::default() };
        let report = repair::repair_mailbox(&user.user, name, &options)?;
        let items = report_lines(&report)?;
        if let Some(cb) = callback {
            for (item, text) in &items {
                // SAFETY: per the contract; `text` outlives the call.
                unsafe { cb(userdata, *item, text.as_ptr(), text.as_bytes().len()) };
            }
        }
        out.set(rm_repair_counts { actions: report.actions.len(), unrepaired: report.unrepaired.len() });
        Ok(())
    })
}

/// The report's items as lines for a log, actions first.
fn report_lines(report: &RepairReport) -> Result<Vec<(rm_repair_item, CString)>, Failure> {
    let actions = report.actions.iter().map(|a| (rm_repair_item::Action, describe(a, report.dry_run)));
    let unrepaired = report.unrepaired.iter().map(|u| (rm_repair_item::Unrepaired, format!("not repaired: {u}")));
    actions
        .chain(unrepaired)
        .map(|(item, text)| {
            // A NUL inside (from a mailbox name, say) would cut the line short: shown as \0.
            let text = CString::new(text.replace('\0', "\\0")).map_err(|e| Failure::invalid(e.to_string()))?;
            Ok((item, text))
        })
        .collect()
}

/// One line for a log: what was done (as `rados-mail repair` shows it), marked as not done
/// in a dry run.
pub(crate) fn describe(action: &RepairAction, dry_run: bool) -> String {
    if dry_run { format!("(dry run, not done) {action}") } else { action.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_what_was_done_and_what_was_not() {
        let report = RepairReport {
            dry_run: false,
            actions: vec![
                RepairAction::RemovedFromMailbox { mailbox: "INBOX".into(), uid: 7, reason: "body missing".into() },
                RepairAction::WroteReport { uid: 3 },
            ],
            unrepaired: vec!["mbox.x: unreadable".into()],
        };
        let lines: Vec<(rm_repair_item, String)> =
            report_lines(&report).unwrap().into_iter().map(|(i, t)| (i, t.into_string().unwrap())).collect();
        assert_eq!(
            lines,
            vec![
                (rm_repair_item::Action, report.actions[0].to_string()),
                (rm_repair_item::Action, report.actions[1].to_string()),
                (rm_repair_item::Unrepaired, "not repaired: mbox.x: unreadable".to_string()),
            ]
        );
        assert!(lines[0].1.contains("UID 7") && lines[0].1.contains("INBOX"), "{}", lines[0].1);
        let action = RepairAction::AddedReference { object: "mail.1".into(), key: "ref/a/0".into() };
        assert_eq!(describe(&action, true), format!("(dry run, not done) {action}"));
    }

    #[test]
    fn a_nul_in_a_name_does_not_cut_the_line() {
        let report = RepairReport {
            dry_run: false,
            actions: vec![RepairAction::RebuiltListEntry { mailbox: "a\0b".into(), key: "mbox/a\0b".into() }],
            unrepaired: vec![],
        };
        let lines = report_lines(&report).unwrap();
        assert!(lines[0].1.to_str().unwrap().contains("mbox/a\\0b"), "{:?}", lines[0].1);
    }
}
