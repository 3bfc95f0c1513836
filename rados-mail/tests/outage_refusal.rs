//! Issue 13: with the OSD paused, IMAP APPEND was refused after twice `rados_timeout`.
//! The body write timed out, and the save then removed the objects it had written,
//! which waited a second timeout on the cluster that had just not answered. After
//! `Unavailable` a save now stops at once and leaves those (unreferenced) objects to
//! `repair`; after any other error it still removes them.

use std::sync::Arc;

use rados_mail::objstore::{CountingStore, FaultMode, FaultyStore};
use rados_mail::{Config, MailStore};

/// Appends a 1,000-byte mail in 100-byte chunks whose third write fails in `mode`;
/// returns the writes the save sent (the failed one included) and whether the error
/// was temporary.
fn failed_save_writes(mode: FaultMode) -> (u64, bool) {
    let base = MailStore::in_memory(Config::default());
    let faulty = FaultyStore::new(base.pool().clone());
    let counting = CountingStore::new(Arc::new(faulty.clone()));
    let config = Config { chunk_size: 100, write_in_flight: 1, ..base.config().clone() };
    let store = MailStore::new(Arc::new(counting.clone()), config);
    let user = store.user("alice").unwrap();
    user.create_mailbox("INBOX").unwrap();
    let mailbox = user.open_mailbox("INBOX").unwrap();
    let before = counting.counts();
    faulty.fail_after(2, mode);
    let err = mailbox.append(&[b'y'; 1000][..], Default::default()).unwrap_err();
    faulty.heal();
    ((counting.counts() - before).writes, err.is_temporary())
}

#[test]
fn a_save_whose_write_timed_out_sends_nothing_more() {
    let (writes, temporary) = failed_save_writes(FaultMode::Unavailable);
    assert!(temporary);
    assert_eq!(writes, 3, "two chunks written, the third timed out, and nothing after it");
}

#[test]
fn a_save_that_failed_otherwise_removes_what_it_wrote() {
    let (writes, temporary) = failed_save_writes(FaultMode::Io);
    assert!(!temporary);
    assert_eq!(writes, 3 + 3, "the three chunk objects are removed");
}
