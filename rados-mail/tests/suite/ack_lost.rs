//! Commits whose reply was lost (issue 13, point 2).
//!
//! The story: in 2 of 4 OSD-outage runs a commit whose reply timed out had in fact been
//! applied; the library could not tell (its one read-back failed too, the cluster being
//! still away), LMTP answered 451, the sender retried, and the mail was stored twice. Now a
//! commit keeps asking the cluster whether it landed (`Config::resolve_window`) and succeeds
//! if it did; one that did not land fails cleanly, leaving nothing behind; and a commit whose
//! WAL entry was applied and trimmed meanwhile is still recognised, by its new mail's
//! record in the shard.

use std::collections::BTreeSet;
use std::sync::Arc;

use rados_mail::check::check_user;
use rados_mail::objstore::{FaultMode, FaultyStore};
use rados_mail::{Config, MailStore, StoreMode};

use super::{body, mailbox, other_process, store_pool};

/// Generates one `#[test]` per case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! ack_lost_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in ack_lost $make;
            ack_lost_append_that_landed_succeeds_once, ack_lost_append_that_did_not_land_fails_cleanly,
            ack_lost_after_the_wal_was_trimmed,
        );
    };
}

/// The sweep over every write of five operations (in memory: 40 small users).
#[macro_export]
macro_rules! ack_lost_sweep_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in ack_lost $make; ack_lost_at_every_commit_point_is_told_right);
    };
}

/// A process whose store fails as `faulty` says, over the pool of `store`.
fn faulty_process(store: &MailStore) -> (FaultyStore, MailStore) {
    faulty_process_resolving(store, std::time::Duration::from_secs(5))
}

/// The same, resolving a lost reply within `resolve_window`.
pub(super) fn faulty_process_resolving(
    store: &MailStore,
    resolve_window: std::time::Duration,
) -> (FaultyStore, MailStore) {
    let faulty = FaultyStore::new(store_pool(store));
    let config = Config { resolve_window, ..store.config().clone() };
    (faulty.clone(), MailStore::new(Arc::new(faulty), config))
}

/// Bodies, chunks and references `check` finds left over (it must find no damage).
pub(super) fn leftovers(store: &MailStore, user: &str) -> usize {
    let r = check_user(&other_process(store).user(user).unwrap()).unwrap();
    assert!(!r.has_damage(), "{r:#?}");
    r.orphan_bodies.len() + r.orphan_chunks.len() + r.stale_references.len()
}

/// The commit was applied, its reply lost, and the cluster stays away for a few more
/// operations: the append succeeds once the cluster answers, and the mail is there once.
pub fn ack_lost_append_that_landed_succeeds_once(store: &MailStore, user: &str) {
    mailbox(store, user, "INBOX");
    let (faulty, here) = faulty_process(store);
    let inbox = here.user(user).unwrap().open_mailbox("INBOX").unwrap();
    faulty.fail_after(1, FaultMode::AppliedThenDown(3)); // the body passes, the commit is lost
    let uid = inbox.append(&b"Subject: once\n\nonce\n"[..], Default::default()).expect("found to have landed");
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(there.uids().unwrap(), vec![uid]);
    assert_eq!(body(&there, uid), b"Subject: once\n\nonce\n");
    assert_eq!(leftovers(store, user), 0);
}

/// The commit was not applied and the cluster stays away for a few more operations: the
/// append fails with a temporary error once the cluster tells, and leaves nothing behind.
pub fn ack_lost_append_that_did_not_land_fails_cleanly(store: &MailStore, user: &str) {
    mailbox(store, user, "INBOX");
    let (faulty, here) = faulty_process(store);
    let inbox = here.user(user).unwrap().open_mailbox("INBOX").unwrap();
    faulty.fail_after(1, FaultMode::DownFor(4)); // the commit and three read-backs fail
    let err = inbox.append(&b"Subject: never\n\nnever\n"[..], Default::default()).unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert!(there.uids().unwrap().is_empty());
    assert_eq!(leftovers(store, user), 0, "the body was taken back");
}

/// Every write of append, copy, move, flag change and expunge in turn is applied with its
/// reply lost while the cluster stays away a little: each operation reports what happened
/// (success: it landed), and the mailboxes hold each mail exactly once.
pub fn ack_lost_at_every_commit_point_is_told_right(store: &MailStore, user: &str) {
    let steps = ["append", "copy", "move", "store", "expunge"];
    for step in steps {
        for at in 0..8u64 {
            let who = format!("{user}-{step}-{at}");
            let (u, m) = mailbox(store, &who, "INBOX");
            u.create_mailbox("Other").unwrap();
            for i in 1..=3 {
                m.append(format!("Subject: {i}\n\n{i}\n").as_bytes(), Default::default()).unwrap();
            }
            let (faulty, here) = faulty_process(store);
            let hu = here.user(&who).unwrap();
            let (inbox, other) = (hu.open_mailbox("INBOX").unwrap(), hu.open_mailbox("Other").unwrap());
            inbox.sync().unwrap();
            other.sync().unwrap();
            faulty.fail_after(at, FaultMode::AppliedThenDown(3));
            let result = match step {
                "append" => inbox.append(&b"Subject: 4\n\n4\n"[..], Default::default()).map(|_| ()),
                "copy" => inbox.copy_to(&[1, 2], &other).map(|_| ()),
                "move" => inbox.move_to(&[1, 2], &other).map(|_| ()),
                "store" => inbox.store(&[1], StoreMode::Add, rados_mail::Flags::SEEN, &[], None).map(|_| ()),
                _ => inbox.expunge(&[3]).map(|_| ()),
            };
            faulty.heal_all();
            let what = format!("{step}, fault at write {at}: {result:?}");
            let view = other_process(store).user(&who).unwrap();
            let (i, o) = (view.open_mailbox("INBOX").unwrap(), view.open_mailbox("Other").unwrap());
            let bodies = |mb: &rados_mail::Mailbox| -> Vec<Vec<u8>> {
                mb.uids().unwrap().into_iter().map(|uid| body(mb, uid)).collect()
            };
            let (ib, ob) = (bodies(&i), bodies(&o));
            let after: (usize, usize) = match step {
                "append" => (4, 0),
                "copy" => (3, 2),
                "move" => (1, 2),
                "store" => (3, 0),
                _ => (2, 0),
            };
            let seen = step == "store" && i.record(1).unwrap().unwrap().flags == rados_mail::Flags::SEEN.bits();
            let landed = if step == "store" { seen } else { (ib.len(), ob.len()) == after };
            match &result {
                // What landed is reported as done: never "try again" for a stored change.
                _ if landed => assert!(result.is_ok(), "{what}: it landed"),
                // A write before the commit lost (a body, a reference): a temporary
                // failure, nothing visible.
                Err(e) => {
                    assert!(e.is_temporary(), "{what}");
                    assert_eq!((ib.len(), ob.len()), (3, 0), "{what}: half done");
                }
                Ok(_) => panic!("{what}: reported done, not there: {:?}", (ib.len(), ob.len())),
            }
            let distinct: BTreeSet<&Vec<u8>> = ib.iter().collect();
            assert_eq!(distinct.len(), ib.len(), "{what}: a mail twice");
            let r = check_user(&view).unwrap();
            assert!(!r.has_damage(), "{what}: {r:#?}");
            // Leftovers (a body or a reference whose clean-up met the outage) are allowed:
            // `check` finds them and `repair` removes them after the grace.
        }
    }
}

/// The WAL entry of the lost commit is applied and trimmed by another process before the
/// cluster answers the read-back: the commit is recognised by its mail's record.
pub fn ack_lost_after_the_wal_was_trimmed(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    m.append(&b"Subject: 1\n\n1\n"[..], Default::default()).unwrap();
    let (faulty, here) = faulty_process(store);
    let inbox = here.user(user).unwrap().open_mailbox("INBOX").unwrap();
    inbox.sync().unwrap();
    let head = format!("mbox.{}", m.info().guid);
    let before = store.user(user).unwrap().store().omap_get(&head, &["hdr"]).unwrap()["hdr"].clone();
    // Five failed read-backs: about 600 ms for the other process to apply and trim.
    faulty.fail_after(1, FaultMode::AppliedThenDown(5));
    let uid = std::thread::scope(|s| {
        let trimmer = s.spawn(|| {
            let other = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
            let raw = store.user(user).unwrap().store().clone();
            while raw.omap_get(&head, &["hdr"]).unwrap()["hdr"] == before {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other.apply_wal().unwrap();
            assert!(raw.omap_all(&head, "w/").unwrap().is_empty(), "trimmed");
        });
        let uid = inbox.append(&b"Subject: 2\n\n2\n"[..], Default::default()).expect("recognised in the shard");
        trimmer.join().unwrap();
        uid
    });
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(there.uids().unwrap(), vec![1, uid]);
    assert_eq!(leftovers(store, user), 0);
}
