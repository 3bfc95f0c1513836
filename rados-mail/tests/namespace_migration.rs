//! The "namespaces" migration step (`MailStore::plan_namespace_migration`,
//! `MailStore::migrate_namespace`) on the in-memory store.
//!
//! Issue 14: under mapping v1 a namespace was `<prefix><user>`, so two deployments sharing
//! a pool with the prefixes `faults-` and `faults-q-` shared namespaces (`q-a@x` of the
//! first was `a@x` of the second). Mapping v2 is `<prefix>/<user>`; the step moves every
//! v1 namespace of the given prefixes, refuses the ambiguous ones, and is idempotent and
//! resumable: a fault sweep fails it at every write (applied or not) and checks that a
//! rerun finishes it with every object moved exactly once.

use std::sync::Arc;

use rados_mail::objstore::{CountingStore, FaultMode, FaultyStore, MemoryStore, ObjectStore};
use rados_mail::{Config, MailStore, NamespacePlan};

mod common;

use common::Snapshot;

fn snapshot(raw: &Arc<dyn ObjectStore>, namespace: &str) -> Snapshot {
    common::snapshot(&*raw.with_namespace(namespace).unwrap())
}

fn store(raw: &Arc<dyn ObjectStore>, prefix: &str) -> MailStore {
    MailStore::new(raw.clone(), Config { namespace_prefix: prefix.into(), chunk_size: 100, ..Config::default() })
}

/// A user with two mailboxes, mails (one chunked), flags and a dict.
fn populate(store: &MailStore, name: &str) {
    let u = store.user(name).unwrap();
    u.create_mailbox("INBOX").unwrap();
    u.create_mailbox("Sent").unwrap();
    let inbox = u.open_mailbox("INBOX").unwrap();
    for i in 0..3 {
        let body = format!("Subject: {i} {name}\n\n{}\n", "line\n".repeat(i * 30));
        inbox.append(body.as_bytes(), Default::default()).unwrap();
    }
    let mut txn = u.dict().transaction();
    txn.set("priv/k", name.as_bytes()).unwrap();
    txn.commit().unwrap();
}

/// A pool laid out under mapping v1: users `alice` and `q-a@x` and the shared dict of
/// prefix `faults-`, user `bob` of prefix `other-`, user `carol` without a prefix. (A v1
/// namespace `<prefix><user>` is the v2 namespace of user `<prefix><user>` without a
/// prefix, which is how it is written here.)
fn v1_pool() -> Arc<dyn ObjectStore> {
    let raw: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(""));
    let flat = store(&raw, "");
    for user in ["faults-alice", "faults-q-a@x", "other-bob", "carol"] {
        populate(&flat, user);
    }
    let shared = rados_mail::dict::Dict::new(
        raw.with_namespace("faults-.shared").unwrap(),
        Arc::new(Config::default()),
        rados_mail::dict::Scope::Shared,
    );
    let mut txn = shared.transaction();
    txn.set("shared/k", b"v").unwrap();
    txn.commit().unwrap();
    raw
}

/// The whole step, as `rados-mail migrate` runs it: plan, then every move.
fn migrate(s: &MailStore, prefixes: &[&str]) -> rados_mail::Result<NamespacePlan> {
    let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
    let plan = s.plan_namespace_migration(&prefixes)?;
    for m in &plan.moves {
        s.migrate_namespace(m)?;
    }
    Ok(plan)
}

#[test]
fn namespace_migration_moves_v1_namespaces_of_the_prefix() {
    let raw = v1_pool();
    let before: Vec<Snapshot> =
        ["faults-alice", "faults-q-a@x", "faults-.shared", "other-bob", "carol"].map(|n| snapshot(&raw, n)).into();
    let plan = migrate(&store(&raw, ""), &["faults-"]).unwrap();
    let moved: Vec<(&str, &str)> = plan.moves.iter().map(|m| (m.from.as_str(), m.to.as_str())).collect();
    assert_eq!(
        moved,
        [("faults-.shared", "faults-/.shared"), ("faults-alice", "faults-/alice"), ("faults-q-a@x", "faults-/q-a@x")]
    );
    assert!(plan.skipped.is_empty(), "{plan:?}");
    assert_eq!(snapshot(&raw, "faults-/alice"), before[0]);
    assert_eq!(snapshot(&raw, "faults-/q-a@x"), before[1]);
    assert_eq!(snapshot(&raw, "faults-/.shared"), before[2]);
    for old in ["faults-alice", "faults-q-a@x", "faults-.shared"] {
        assert!(snapshot(&raw, old).is_empty(), "{old} left behind");
    }
    assert_eq!(snapshot(&raw, "other-bob"), before[3], "another prefix is not touched");
    assert_eq!(snapshot(&raw, "carol"), before[4], "the empty prefix is not touched");
    // The deployment sees its users (and its shared dict) under mapping v2.
    let faults = store(&raw, "faults-");
    assert_eq!(faults.user("alice").unwrap().open_mailbox("INBOX").unwrap().uids().unwrap(), [1, 2, 3]);
    assert_eq!(faults.shared_dict().unwrap().lookup("shared/k").unwrap().as_deref(), Some(b"v".as_slice()));
    // Running it again is a no-op.
    let again = migrate(&store(&raw, ""), &["faults-"]).unwrap();
    assert_eq!(again, NamespacePlan::default());
}

#[test]
fn namespace_migration_refuses_ambiguous_namespaces() {
    // `faults-q-a@x` is user `q-a@x` of `faults-` or user `a@x` of `faults-q-`: refused,
    // listed with both prefixes, and left where it is; the rest moves.
    let raw = v1_pool();
    let ambiguous = snapshot(&raw, "faults-q-a@x");
    let plan = migrate(&store(&raw, ""), &["faults-", "faults-q-"]).unwrap();
    assert_eq!(plan.skipped.len(), 1, "{plan:?}");
    assert_eq!(plan.skipped[0].namespace, "faults-q-a@x");
    assert_eq!(plan.skipped[0].prefixes, ["faults-", "faults-q-"]);
    assert_eq!(snapshot(&raw, "faults-q-a@x"), ambiguous);
    assert!(snapshot(&raw, "faults-/q-a@x").is_empty() && snapshot(&raw, "faults-q-/a@x").is_empty());
    assert!(!snapshot(&raw, "faults-/alice").is_empty());
    // With the empty prefix declared too, every namespace a prefix matches is ambiguous.
    let raw = v1_pool();
    let plan = store(&raw, "").plan_namespace_migration(&["".into(), "other-".into()]).unwrap();
    assert!(plan.moves.is_empty(), "{plan:?}");
    assert_eq!(plan.skipped.len(), 1);
    assert_eq!(plan.skipped[0].prefixes, ["", "other-"]);
    // A prefix that could not be one is refused.
    assert!(store(&raw, "").plan_namespace_migration(&["a/".into()]).is_err());
}

#[test]
fn namespace_migration_skips_names_v2_cannot_store() {
    // A v1 user name with '/' has no v2 namespace: listed, not moved.
    let raw = v1_pool();
    raw.with_namespace("faults-x/y").unwrap().write_full("o", b"1").unwrap();
    let plan = migrate(&store(&raw, ""), &["faults-"]).unwrap();
    assert_eq!(plan.skipped.len(), 1, "{plan:?}");
    assert_eq!(plan.skipped[0].namespace, "faults-x/y");
    assert!(plan.skipped[0].reason.contains("'/'"), "{plan:?}");
    assert_eq!(snapshot(&raw, "faults-x/y").len(), 1);
}

/// Writes the step makes when nothing fails.
fn writes_of_migration() -> u64 {
    let raw = v1_pool();
    let counting = CountingStore::new(raw);
    let before = counting.counts();
    migrate(&store(&(Arc::new(counting.clone()) as Arc<dyn ObjectStore>), ""), &["faults-"]).unwrap();
    (counting.counts() - before).writes
}

#[test]
fn namespace_migration_fault_sweep() {
    let writes = writes_of_migration();
    println!("migration: {writes} writes swept");
    assert!(writes >= 20, "{writes} writes");
    for mode in [FaultMode::WritesUnavailable, FaultMode::AppliedButUnavailable] {
        for at in 0..=writes {
            let raw = v1_pool();
            let expected =
                ["faults-alice", "faults-q-a@x", "faults-.shared", "other-bob", "carol"].map(|n| snapshot(&raw, n));
            let faulty = FaultyStore::new(raw.clone());
            faulty.fail_after(at, mode);
            let first = migrate(&store(&(Arc::new(faulty.clone()) as Arc<dyn ObjectStore>), ""), &["faults-"]);
            faulty.heal();
            if let Err(e) = &first {
                assert!(e.is_temporary(), "write {at} ({mode:?}): {e}");
            }
            // The rerun finishes it; a third run finds nothing to do.
            migrate(&store(&raw, ""), &["faults-"]).unwrap_or_else(|e| panic!("write {at} ({mode:?}): rerun: {e}"));
            let third = migrate(&store(&raw, ""), &["faults-"]).unwrap();
            assert_eq!(third, NamespacePlan::default(), "write {at} ({mode:?})");
            let after =
                ["faults-/alice", "faults-/q-a@x", "faults-/.shared", "other-bob", "carol"].map(|n| snapshot(&raw, n));
            assert!(after == expected, "write {at} ({mode:?}): not an exact move");
            for old in ["faults-alice", "faults-q-a@x", "faults-.shared"] {
                assert!(snapshot(&raw, old).is_empty(), "write {at} ({mode:?}): {old} left behind");
            }
        }
    }
}
