//! IMAP `\Recent`, handed out once per mailbox whichever process serves the session.
//!
//! RFC 3501: a mail is `\Recent` in exactly one session, the first to see it. Dovecot keeps
//! the boundary ("first recent UID") in its local index, so two servers on one mailbox
//! would each hand a new mail out once. Here it is kept in RADOS, in the head object's
//! `recent` key (8 hex digits; absent = 1, as in a fresh Dovecot index: every mail is
//! still recent). It is not part of the header: taking the recent mails changes no modseq,
//! writes no WAL entry, and never makes a concurrent commit (guarded by `hdr`) lose its
//! race. See docs/FORMAT.md.

use std::ops::Range;

use objstore::{CmpOp, Error as StoreError, WriteOp};
use omap_index::keys;

use super::Mailbox;
use crate::error::{Error, Result};

impl Mailbox {
    /// Takes the mails that are still `\Recent`, for the session calling it (a session
    /// that may change the mailbox: IMAP SELECT, not EXAMINE): returns the UIDs
    /// `R..end`, where `R` is the mailbox's first recent UID and `end` is `upto` or, if
    /// lower, the UIDNEXT this handle's view knows (call it after [`Mailbox::sync`] or
    /// [`Mailbox::changes_since`], passing the UIDNEXT that sync saw); the first recent
    /// UID becomes `end`. Empty (`R..R`) when there is nothing to take, and then no RADOS
    /// operation is made.
    ///
    /// Atomic across processes: the write is guarded by the value read (`omap_cmp` on
    /// `recent`, which only grows), so two sessions never get the same UID; a lost race
    /// reads the head again and tries again under the store's retry policy. One guarded
    /// write when there is something to take (the value comes from the head read the view
    /// last made).
    ///
    /// A temporary failure of the write is returned as it is and the UIDs are not
    /// handed out: if the write was applied all the same (the reply was lost), those
    /// mails are recent for nobody, which RFC 3501 allows; a session never gets a UID
    /// another was given. (Reading the value back could not tell this write from another
    /// session's that set the same value, so it is not tried.)
    pub fn take_recent(&self, upto: u32) -> Result<Range<u32>> {
        let mut view = self.lock();
        let mut retry = self.retry.start();
        loop {
            let first = view.first_recent;
            let end = upto.min(view.hdr.uidnext);
            if first >= end {
                return Ok(first..first);
            }
            // The value 1 is never written (only raised to a UIDNEXT above it): 1 is the
            // key being absent, which compares as the empty value.
            let guard = if first == 1 { Vec::new() } else { keys::hex32(first).into_bytes() };
            let op = WriteOp::new()
                .assert_exists()
                .omap_cmp(keys::RECENT, CmpOp::Eq, guard)
                .omap_set([(keys::RECENT, keys::hex32(end).into_bytes())]);
            match self.store.write_op(&self.head, &op) {
                Ok(_) => {
                    view.first_recent = end;
                    return Ok(first..end);
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(StoreError::NotFound { .. }) => {
                    return Err(Error::NotFound(format!("mailbox {}", self.info.name)));
                }
                Err(e) => return Err(e.into()),
            }
            retry.lost(|| format!("taking the recent mails of mailbox {}", self.info.name))?;
            self.refresh(&mut view)?;
        }
    }

    /// The mailbox's first recent UID as this handle's view last read it (no RADOS
    /// operation), at most its UIDNEXT: what a read-only session (IMAP EXAMINE, STATUS)
    /// shows as `\Recent` without taking it.
    pub fn first_recent(&self) -> u32 {
        let view = self.lock();
        view.first_recent.min(view.hdr.uidnext)
    }
}
