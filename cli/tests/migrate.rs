//! `rados-mail migrate` against the real cluster: the "namespaces" step.
//!
//! Issue 14: under mapping v1 (`<prefix><user>`) two deployments whose prefixes extend one
//! another (`faults-`, `faults-q-`) shared namespaces. The step moves every v1 namespace of
//! the given prefixes to `<prefix>/<user>`, refuses the ambiguous ones, and does nothing
//! the second time.

mod common;

use common::{cleanup, expect, json, prefix, run, store, text};

#[test]
fn migrate_moves_v1_namespaces_and_is_idempotent() {
    let p = prefix("migrate");
    let q = format!("{p}q-");
    // Mapping v1 wrote user U of prefix P into namespace P+U: the namespace of user P+U
    // without a prefix.
    let flat = store("");
    for user in [format!("{p}alice"), format!("{p}q-a@x")] {
        let u = flat.user(&user).unwrap();
        u.create_mailbox("INBOX").unwrap();
        let mail = format!("Subject: {user}\n\nbody\n");
        u.open_mailbox("INBOX").unwrap().append(mail.as_bytes(), Default::default()).unwrap();
    }

    // Dry run with both prefixes: alice moves; q-a@x (or a@x of the second) is ambiguous.
    let out = expect(&p, &["migrate", "--prefix", &p, "--prefix", &q, "--dry-run"], 1);
    assert!(out.contains("would move 1, leaving 1"), "{out}");
    assert!(out.contains(&format!("left alone: \"{p}q-a@x\"")) && out.contains("ambiguous"), "{out}");
    assert!(out.contains(&format!("\"{p}alice\" -> \"{p}/alice\"")), "{out}");
    assert!(flat.user(&format!("{p}alice")).unwrap().open_mailbox("INBOX").is_ok(), "dry run moved nothing");

    // The ambiguity is the operator's to resolve; told that only P is used, both move.
    let report = json(&p, &["migrate"], 0);
    let step = &report["steps"][0];
    assert_eq!(step["step"], "namespaces");
    assert_eq!(step["moved"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(step["moved"][0]["to"], format!("{p}/alice"));
    let s = store(&p);
    for user in ["alice", "q-a@x"] {
        let inbox = s.user(user).unwrap().open_mailbox("INBOX").unwrap();
        assert_eq!(inbox.uids().unwrap(), [1], "{user}");
    }
    let users = json(&p, &["users"], 0);
    assert_eq!(users.as_array().unwrap().len(), 2, "{users}");
    assert!(flat.user(&format!("{p}alice")).unwrap().store().list_objects().unwrap().next().is_none());

    // Again: nothing to do.
    let (code, out, err) = text(&run(&p, &["migrate"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("moving 0, leaving 0") && out.contains("moved 0 namespaces"), "{out}");

    // A prefix that cannot be one is refused, naming it.
    let (code, _, err) = text(&run(&p, &["migrate", "--prefix", "a/b"]));
    assert_eq!(code, 2);
    assert!(err.contains("a/b") && err.contains("'/'"), "{err}");
    cleanup(&s, &["alice", "q-a@x"]);
}
