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

/// The "layout" step (issue 15): a deployment of pool format v1 (data written before the
/// format record) moves to v2: references become xattrs and, with `RADOS_MAIL_DATA_POOL`
/// set (CI: the erasure-coded `mail-ec`), bodies move to the data pool. Every mail reads
/// back, check is clean, a second run does nothing.
#[test]
fn migrate_layout_to_v2_and_is_idempotent() {
    let p = prefix("layout");
    let data_pool = std::env::var("RADOS_MAIL_DATA_POOL").unwrap_or_default();
    // Data before the record: the deployment is v1.
    let raw = store("").pool().with_namespace(&format!("{p}/bob")).unwrap();
    raw.write_full("mailboxes", b"").unwrap();
    let s = store(&p);
    assert_eq!(s.layout().unwrap().version, 1);
    let u = s.user("alice").unwrap();
    u.create_mailbox("INBOX").unwrap();
    u.create_mailbox("Sent").unwrap();
    let inbox = u.open_mailbox("INBOX").unwrap();
    let big: Vec<u8> = (0..(5u32 << 20)).map(|i| b'a' + (i % 26) as u8).collect();
    let mails = [b"Subject: one\n\n1\n".to_vec(), big];
    for m in &mails {
        inbox.append(&m[..], Default::default()).unwrap();
    }
    inbox.copy_to(&[1, 2], &u.open_mailbox("Sent").unwrap()).unwrap();

    let mut args = vec!["migrate", "--layout", "--refresh-wait", "0"];
    if !data_pool.is_empty() {
        args.extend(["--data-pool", &data_pool]);
    }
    let out = expect(&p, &args, 0);
    let moved = if data_pool.is_empty() { "0 bodies moved" } else { "2 bodies moved" };
    assert!(out.contains("switched now") && out.contains(moved) && out.contains("migration finished"), "{out}");

    let mut settings = rados_mail::settings::Settings::default();
    settings.set("conf", &std::env::var("CEPH_CONF").unwrap()).unwrap();
    if let Ok(pool) = std::env::var("RADOS_MAIL_POOL") {
        settings.set("pool", &pool).unwrap();
    }
    settings.set("namespace_prefix", &p).unwrap();
    settings.set("data_pool", &data_pool).unwrap();
    let v2 = settings.open().unwrap();
    let layout = v2.layout().unwrap();
    assert_eq!((layout.version, layout.data_pool.as_str(), layout.migrating), (2, data_pool.as_str(), false));
    let u = v2.user("alice").unwrap();
    for name in ["INBOX", "Sent"] {
        let m = u.open_mailbox(name).unwrap();
        for (uid, want) in m.uids().unwrap().into_iter().zip(&mails) {
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut m.open_body(uid).unwrap(), &mut got).unwrap();
            assert!(got == *want, "{name} UID {uid}");
        }
    }
    let report = rados_mail::check::check_user(&u).unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.bodies, 2);

    // Again: nothing to do.
    let out = expect(&p, &args, 0);
    assert!(out.contains("0 bodies moved") && !out.contains("switched now"), "{out}");
    raw.remove("mailboxes").unwrap();
    cleanup(&v2, &["alice"]);
}

/// Issue 15: a deployment whose shared dict is one object (format 1, or a record made
/// before `dict_shards`) is spread over N objects by `migrate --dict-shards N` (offline),
/// and back; every key stays readable through a store that reads the new record.
#[test]
fn migrate_dict_shards_moves_every_key() {
    let p = prefix("dictshards");
    let s = store(&p);
    let from = s.layout().unwrap().dict_shards;
    let dict = s.shared_dict().unwrap();
    let mut t = dict.transaction();
    for i in 0..300 {
        t.set(&format!("shared/last-login/user{i:04}"), format!("{i}").as_bytes()).unwrap();
    }
    t.commit().unwrap();
    for to in [16, 5, from] {
        let out = expect(&p, &["migrate", "--dict-shards", &to.to_string()], 0);
        assert!(out.contains(&format!("to {to} objects")) || out.contains("already"), "{out}");
        let again = expect(&p, &["migrate", "--dict-shards", &to.to_string()], 0);
        assert!(again.contains(&format!("already spread over {to} objects")), "{again}");
        let fresh = store(&p);
        assert_eq!(fresh.layout().unwrap().dict_shards, to);
        let dict = fresh.shared_dict().unwrap();
        assert_eq!(dict.shards(), to);
        let all = dict.iterate("shared/last-login/", true).unwrap();
        assert_eq!(all.len(), 300, "after --dict-shards {to}");
        for (i, (k, v)) in all.iter().enumerate() {
            assert_eq!(
                (k.as_str(), v.as_slice()),
                (format!("shared/last-login/user{i:04}").as_str(), format!("{i}").as_bytes())
            );
        }
        let shared = fresh.pool().with_namespace(&format!("{p}/.shared")).unwrap();
        let objects: Vec<String> = shared.list_objects().unwrap().map(|o| o.unwrap()).collect();
        let dicts = objects.iter().filter(|o| o.starts_with("dict")).count();
        assert!(dicts <= to.max(1) as usize, "old shards removed: {objects:?}");
    }
    let shared = s.pool().with_namespace(&format!("{p}/.shared")).unwrap();
    for o in shared.list_objects().unwrap().map(|o| o.unwrap()).collect::<Vec<_>>() {
        shared.remove(&o).unwrap();
    }
}
