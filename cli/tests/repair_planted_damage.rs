//! Planted damage of every kind goes through `rados-mail check`, `repair --dry-run`,
//! `repair` and `check` again, against the real cluster (issue 12). The rest of the
//! mailbox is served throughout (read here through the library, as the Dovecot plugin
//! does; `dovecot-glue/tests/test_damage.py` does it through Dovecot).

mod common;

use std::io::Read;

use rados_mail::objstore::ObjectStore;
use rados_mail::{Guid, MailStore};

fn corrupt(ns: &dyn ObjectStore, oid: &str, key: &str) {
    let mut value = ns.omap_get(oid, &[key]).unwrap().remove(key).unwrap();
    let last = value.len() - 1;
    value[last] ^= 0xff;
    ns.omap_set(oid, &[(key, &value)]).unwrap();
}

fn body(store: &MailStore, mailbox: &str, uid: u32) -> Vec<u8> {
    let m = store.user("damaged").unwrap().open_mailbox(mailbox).unwrap();
    let mut out = Vec::new();
    m.open_body(uid).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// The rest of INBOX reads as it should.
fn served(store: &MailStore) {
    for uid in [1, 4, 5, 6] {
        assert_eq!(body(store, "INBOX", uid), format!("Subject: {uid}\n\nmail {uid}\n").as_bytes());
    }
}

#[test]
fn repair_planted_damage_check_dry_run_repair_check() {
    let prefix = common::prefix("planted");
    let store = common::store(&prefix);
    let u = store.user("damaged").unwrap();
    u.create_mailbox("INBOX").unwrap();
    let m = u.open_mailbox("INBOX").unwrap();
    for i in 1..=6 {
        m.append(format!("Subject: {i}\n\nmail {i}\n").as_bytes(), Default::default()).unwrap();
    }
    m.apply_wal().unwrap();
    let ns = u.store().clone();
    let inbox = m.info().guid;
    let guid = |uid: u32| Guid::from_slice(&m.record(uid).unwrap().unwrap().mail_guid).unwrap();
    corrupt(ns.as_ref(), &format!("mbox.{inbox}.0000"), "r/00000002");
    ns.remove(&format!("mail.{}", guid(3))).unwrap();
    let rec4 = m.record(4).unwrap().unwrap();
    // References are xattrs in pool format v2 (a fresh deployment), omap keys in v1.
    if store.layout().unwrap().version >= 2 {
        let ours = format!("rm.ref.{inbox}.{:016x}", rec4.instance);
        ns.write_op(&format!("mail.{}", guid(4)), &rados_mail::objstore::WriteOp::new().rm_xattr(ours)).unwrap();
        ns.set_xattr(&format!("mail.{}", guid(5)), &format!("rm.ref.{inbox}.00000000deadbeef"), b"").unwrap();
    } else {
        ns.omap_rm_keys(&format!("mail.{}", guid(4)), &[&format!("ref/{inbox}/{:016x}", rec4.instance)]).unwrap();
        ns.omap_set(&format!("mail.{}", guid(5)), &[(&format!("ref/{inbox}/00000000deadbeef"), &b""[..])]).unwrap();
    }
    ns.write_full("mail.0123456789abcdef0123456789abcdef", b"orphan").unwrap();
    u.create_mailbox("Work").unwrap();
    let work = u.open_mailbox("Work").unwrap();
    work.append(&b"Subject: w\n\nwork\n"[..], Default::default()).unwrap();
    corrupt(ns.as_ref(), &format!("mbox.{}", work.info().guid), "hdr");
    corrupt(ns.as_ref(), "mailboxes", "mbox/Work");
    corrupt(ns.as_ref(), "mailboxes", "counters");
    served(&store);

    let found = common::json(&prefix, &["check", "damaged"], 1);
    for kind in ["orphan_bodies", "missing_bodies", "missing_references", "stale_references", "corrupt"] {
        assert!(!found[kind].as_array().unwrap().is_empty(), "{kind} not found: {found:#}");
    }
    let human = common::expect(&prefix, &["check", "damaged"], 1);
    assert!(human.contains("r/00000002") && human.contains("mbox/Work"), "{human}");
    // `check --all` finds the same user (one walk of the pool, this prefix only).
    let all = common::expect(&prefix, &["check", "--all"], 1);
    assert!(all.contains("damaged"), "{all}");

    let dry = common::json(&prefix, &["repair", "damaged", "--dry-run", "--grace", "0s"], 0);
    assert!(!dry["actions"].as_array().unwrap().is_empty(), "{dry:#}");
    let again = common::json(&prefix, &["check", "damaged"], 1);
    assert_eq!(again["corrupt"], found["corrupt"], "a dry run writes nothing");
    served(&store);

    let done = common::json(&prefix, &["repair", "damaged", "--grace", "0s"], 0);
    assert!(done["unrepaired"].as_array().unwrap().is_empty(), "{done:#}");
    served(&store);
    let clean = common::json(&prefix, &["check", "damaged"], 0);
    assert!(clean["corrupt"].as_array().unwrap().is_empty(), "{clean:#}");
    common::expect(&prefix, &["check", "damaged"], 0);

    // What INBOX could not serve is in lost+found, with the report.
    let listed = common::expect(&prefix, &["mails", "damaged", "lost+found"], 0);
    assert_eq!(body(&store, "lost+found", 1), b"Subject: 2\n\nmail 2\n", "{listed}");
    let report = String::from_utf8(body(&store, "lost+found", 2)).unwrap();
    assert!(report.contains("UID 2: corrupt record") && report.contains("UID 3: body missing"), "{report}");
    assert_eq!(body(&store, "Work", 1), b"Subject: w\n\nwork\n");
    common::cleanup(&store, &["damaged"]);
}
