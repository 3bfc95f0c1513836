//! `MailStore::delete_user` and `MailStore::rename_user`: what they leave behind, what they
//! refuse, and fault sweeps proving that an interrupted run — failed at any one of its
//! writes, including a write that was applied while its caller saw an error — is finished
//! by running it again, with nothing lost and nothing duplicated. On the in-memory store.

use std::io::Read;
use std::sync::Arc;

use omap_index::names::MAILBOX_LIST;
use rados_mail::objstore::{CountingStore, FaultMode, FaultyStore, MemoryStore, ObjectStore};
use rados_mail::{Config, Error, Flags, MailStore, RENAME_MARKER, StoreMode};

mod common;

use common::Snapshot;

fn snapshot(store: &MailStore, user: &str) -> Snapshot {
    common::snapshot(&**store.user(user).unwrap().store())
}

fn config() -> Config {
    Config { chunk_size: 100, ..Config::default() }
}

/// A user with two mailboxes, copies, flags, keywords, a subscription, special use, a
/// chunked body, a dict with more keys than one omap page, and a raw object larger than
/// one copy step (9 MiB).
fn populate(store: &MailStore, name: &str, big: bool) {
    let u = store.user(name).unwrap();
    u.create_mailbox("INBOX").unwrap();
    u.create_mailbox("Sent").unwrap();
    u.set_special_use("Sent", &["\\Sent"]).unwrap();
    u.subscribe("Sent").unwrap();
    let inbox = u.open_mailbox("INBOX").unwrap();
    let sent = u.open_mailbox("Sent").unwrap();
    for i in 0..3 {
        let body = format!("Subject: {i} {name}\n\n{}\n", "line\n".repeat(i * 30));
        inbox.append(body.as_bytes(), Default::default()).unwrap();
    }
    inbox.store(&[2], StoreMode::Add, Flags::SEEN, &["$Label1"], None).unwrap();
    inbox.copy_to(&[1, 3], &sent).unwrap();
    inbox.expunge(&[1]).unwrap();
    let mut txn = u.dict().transaction();
    for i in 0..1100 {
        txn.set(&format!("priv/k/{i:05}"), format!("v{i}").as_bytes()).unwrap();
    }
    txn.commit().unwrap();
    if big {
        let blob: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
        u.store().write_full("blob", &blob).unwrap();
        u.store().set_xattr("blob", "x", b"y").unwrap();
    }
}

fn memory_store() -> (Arc<dyn ObjectStore>, MailStore) {
    let raw: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(""));
    (raw.clone(), MailStore::new(raw, config()))
}

fn body(store: &MailStore, user: &str, mailbox: &str, uid: u32) -> Vec<u8> {
    let m = store.user(user).unwrap().open_mailbox(mailbox).unwrap();
    let mut out = Vec::new();
    m.open_body(uid).unwrap().read_to_end(&mut out).unwrap();
    out
}

#[test]
fn rename_moves_every_object_exactly() {
    let (_, store) = memory_store();
    populate(&store, "alice", true);
    populate(&store, "carol", false);
    let before = snapshot(&store, "alice");
    let carol = snapshot(&store, "carol");
    let mail = body(&store, "alice", "Sent", 2);
    let report = store.rename_user("alice", "bob").unwrap();
    assert_eq!(report.objects, before.len());
    assert!(!report.resumed);
    assert_eq!(snapshot(&store, "bob"), before, "an exact copy");
    assert!(snapshot(&store, "alice").is_empty());
    assert_eq!(snapshot(&store, "carol"), carol, "other users untouched");
    assert_eq!(body(&store, "bob", "Sent", 2), mail);
    let bob = store.user("bob").unwrap();
    assert_eq!(bob.subscriptions("*").unwrap(), ["Sent"]);
    assert_eq!(bob.dict().lookup("priv/k/01099").unwrap().unwrap(), b"v1099");
    assert!(rados_mail::check::check_user(&bob).unwrap().is_clean());
}

#[test]
fn rename_refuses_what_it_must_not_do() {
    let (_, store) = memory_store();
    populate(&store, "alice", false);
    populate(&store, "bob", false);
    assert!(matches!(store.rename_user("alice", "bob"), Err(Error::AlreadyExists(_))));
    assert!(matches!(store.rename_user("nobody", "x"), Err(Error::NotFound(_))));
    assert!(matches!(store.rename_user("alice", "alice"), Err(Error::InvalidInput(_))));
    assert!(matches!(store.rename_user("alice", ".shared"), Err(Error::InvalidInput(_))));
    // An interrupted rename pins both namespaces until it is finished.
    let faulty = FaultyStore::new(store.pool().clone());
    let through = MailStore::new(Arc::new(faulty.clone()), config());
    faulty.fail_after(3, FaultMode::WritesUnavailable);
    assert!(through.rename_user("alice", "carol").is_err());
    faulty.heal();
    assert!(matches!(store.rename_user("alice", "dave"), Err(Error::InvalidInput(_))));
    assert!(matches!(store.rename_user("bob", "carol"), Err(Error::InvalidInput(_))));
    assert!(matches!(store.delete_user("alice"), Err(Error::InvalidInput(_))));
    assert!(store.rename_user("alice", "carol").unwrap().resumed);
    assert!(store.user("carol").unwrap().store().stat(RENAME_MARKER).is_err(), "the marker is gone");
    assert!(snapshot(&store, "alice").is_empty());
    // Only the new namespace's marker is left, and the old name got new mail meanwhile:
    // copying it would overwrite carol's, so it is refused.
    let carol = snapshot(&store, "carol");
    populate(&store, "alice", false);
    let marker = rados_mail::objstore::WriteOp::new()
        .create_exclusive()
        .set_xattr(rados_mail::MARKER_FROM, &b"alice"[..])
        .set_xattr(rados_mail::MARKER_TO, &b"carol"[..]);
    store.user("carol").unwrap().store().write_op(RENAME_MARKER, &marker).unwrap();
    assert!(matches!(store.rename_user("alice", "carol"), Err(Error::Conflict(_))));
    let mut carol_now = snapshot(&store, "carol");
    carol_now.remove(RENAME_MARKER);
    assert!(carol_now == carol, "carol untouched");
}

#[test]
fn delete_removes_everything_and_only_that() {
    let (_, store) = memory_store();
    populate(&store, "alice", true);
    populate(&store, "carol", false);
    let carol = snapshot(&store, "carol");
    let report = store.delete_user("alice").unwrap();
    assert_eq!(report.mailboxes, 2);
    assert!(report.objects >= 3, "{report:?}"); // the dict, the list, the blob
    assert!(snapshot(&store, "alice").is_empty());
    assert_eq!(snapshot(&store, "carol"), carol);
    assert_eq!(store.delete_user("alice").unwrap(), Default::default(), "deleting again is a no-op");
}

/// A damaged account can still be deleted: the damage is reported, everything goes.
#[test]
fn delete_of_a_damaged_user() {
    let (_, store) = memory_store();
    populate(&store, "alice", false);
    let u = store.user("alice").unwrap();
    let inbox = u.open_mailbox("INBOX").unwrap();
    inbox.apply_wal().unwrap();
    let shard = format!("mbox.{}.0000", inbox.info().guid);
    u.store().omap_set(&shard, &[("r/00000002", b"\x01garbage")]).unwrap();
    // A damaged record is confined to its mail (issue 12): the mailbox is deleted as
    // usual, and the body the record held goes with the namespace's leftovers.
    let report = store.delete_user("alice").unwrap();
    assert_eq!(report.mailboxes, 2, "{report:?}");
    assert!(snapshot(&store, "alice").is_empty());
    // A corrupt mailbox-list entry.
    populate(&store, "bob", false);
    store.user("bob").unwrap().store().omap_set(MAILBOX_LIST, &[("mbox/Broken", b"\x01bad")]).unwrap();
    let report = store.delete_user("bob").unwrap();
    assert!(report.damage[0].contains("mbox/Broken"), "{report:?}");
    assert!(snapshot(&store, "bob").is_empty());
}

/// Writes `op` makes when nothing fails.
fn writes_of(op: impl Fn(&MailStore)) -> u64 {
    let (raw, _) = memory_store();
    let counting = CountingStore::new(raw.clone());
    let store = MailStore::new(raw, config());
    populate(&store, "alice", true);
    let through = MailStore::new(Arc::new(counting.clone()), config());
    let before = counting.counts();
    op(&through);
    (counting.counts() - before).writes
}

/// Runs `op` failing at write `at` (as `mode` says), then again without faults.
fn interrupted(raw: &Arc<dyn ObjectStore>, at: u64, mode: FaultMode, op: impl Fn(&MailStore) -> bool) {
    let faulty = FaultyStore::new(raw.clone());
    let through = MailStore::new(Arc::new(faulty.clone()), config());
    faulty.fail_after(at, mode);
    let finished = op(&through);
    faulty.heal();
    if !finished {
        assert!(op(&MailStore::new(raw.clone(), config())), "write {at} ({mode:?}): the re-run failed");
    }
}

/// A re-run of a rename: done, or nothing left to do because the write whose reply was
/// lost was the very last one (the caller then checks that everything moved).
fn rename_again(s: &MailStore, at: u64, mode: FaultMode, first: bool) -> bool {
    match s.rename_user("alice", "bob") {
        Ok(_) => true,
        Err(Error::NotFound(_)) if !first && mode == FaultMode::AppliedButUnavailable => true,
        Err(e) => {
            assert!(first && e.is_temporary(), "write {at} ({mode:?}): {e}");
            false
        }
    }
}

#[test]
fn rename_fault_sweep() {
    let writes = writes_of(|s| {
        s.rename_user("alice", "bob").unwrap();
    });
    println!("rename: {writes} writes swept");
    assert!(writes >= 20, "{writes} writes");
    for mode in [FaultMode::WritesUnavailable, FaultMode::AppliedButUnavailable] {
        for at in 0..=writes {
            let (raw, store) = memory_store();
            populate(&store, "alice", true);
            populate(&store, "carol", false);
            let (before, carol) = (snapshot(&store, "alice"), snapshot(&store, "carol"));
            let runs = std::sync::atomic::AtomicU32::new(0);
            interrupted(&raw, at, mode, |s| {
                rename_again(s, at, mode, runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0)
            });
            let fresh = MailStore::new(raw, config());
            assert!(snapshot(&fresh, "bob") == before, "write {at} ({mode:?}): not an exact copy");
            assert!(snapshot(&fresh, "alice").is_empty(), "write {at} ({mode:?}): left behind");
            assert!(snapshot(&fresh, "carol") == carol);
            let report = rados_mail::check::check_user(&fresh.user("bob").unwrap()).unwrap();
            assert!(report.is_clean(), "write {at} ({mode:?}): {report:?}");
            assert_eq!(fresh.user("bob").unwrap().open_mailbox("INBOX").unwrap().uids().unwrap(), [2, 3]);
        }
    }
}

#[test]
fn delete_fault_sweep() {
    let writes = writes_of(|s| {
        s.delete_user("alice").unwrap();
    });
    println!("delete: {writes} writes swept");
    assert!(writes >= 8, "{writes} writes");
    for mode in [FaultMode::WritesUnavailable, FaultMode::AppliedButUnavailable] {
        for at in 0..=writes {
            let (raw, store) = memory_store();
            populate(&store, "alice", true);
            populate(&store, "carol", false);
            let carol = snapshot(&store, "carol");
            interrupted(&raw, at, mode, |s| match s.delete_user("alice") {
                Ok(_) => true,
                Err(e) => {
                    assert!(e.is_temporary(), "write {at} ({mode:?}): {e}");
                    false
                }
            });
            let fresh = MailStore::new(raw, config());
            assert!(snapshot(&fresh, "alice").is_empty(), "write {at} ({mode:?}): left behind");
            assert!(snapshot(&fresh, "carol") == carol, "write {at} ({mode:?}): another user touched");
        }
    }
}
