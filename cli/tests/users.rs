//! `user delete`, `user rename` and the connection flags (`--doveconf`, `-p`, `--id`) of
//! the `rados-mail` binary, against the real cluster.

mod common;

use std::io::Read;

use common::{cleanup, expect, json, prefix, run, run_with_input, store, text};
use rados_mail::MailStore;

fn populate(store: &MailStore, user: &str) -> Vec<u8> {
    let u = store.user(user).unwrap();
    u.create_mailbox("INBOX").unwrap();
    u.create_mailbox("Archive/2025").unwrap();
    u.subscribe("INBOX").unwrap();
    let mail = format!("Subject: for {user}\n\nbody of {user}\n").into_bytes();
    let inbox = u.open_mailbox("INBOX").unwrap();
    inbox.append(&mail[..], Default::default()).unwrap();
    inbox.copy_to(&[1], &u.open_mailbox("Archive/2025").unwrap()).unwrap();
    let mut txn = u.dict().transaction();
    txn.set("priv/k", b"v").unwrap();
    txn.commit().unwrap();
    mail
}

fn objects(store: &MailStore, user: &str) -> usize {
    store.user(user).unwrap().store().list_objects().unwrap().count()
}

#[test]
fn user_delete() {
    let p = prefix("delete");
    let s = store(&p);
    populate(&s, "alice");
    populate(&s, "bob");
    let bob_objects = objects(&s, "bob");
    // Without --yes and without a terminal: refused, nothing deleted.
    let (code, _, err) = text(&run(&p, &["user", "delete", "alice"]));
    assert_eq!(code, 2);
    assert!(err.contains("--yes"), "{err}");
    assert!(objects(&s, "alice") > 0);
    let report = json(&p, &["user", "delete", "alice", "--yes"], 0);
    assert_eq!(report["mailboxes"], 2);
    assert_eq!(objects(&s, "alice"), 0, "the namespace is empty");
    assert_eq!(objects(&s, "bob"), bob_objects, "bob is untouched");
    let users = expect(&p, &["users"], 0);
    assert!(!users.contains("alice") && users.contains("bob"), "{users}");
    // Again: nothing left, not an error.
    let out = expect(&p, &["user", "delete", "alice", "--yes"], 0);
    assert!(out.contains("0 mailboxes"), "{out}");
    cleanup(&s, &["bob"]);
}

#[test]
fn user_rename() {
    let p = prefix("rename");
    let s = store(&p);
    let mail = populate(&s, "alice");
    populate(&s, "bob");
    // More dict keys than one omap page (1,024): the copy pages.
    let mut txn = s.user("alice").unwrap().dict().transaction();
    for i in 0..1500 {
        txn.set(&format!("priv/many/{i:05}"), format!("value {i}").as_bytes()).unwrap();
    }
    txn.commit().unwrap();
    let dict_before = s.user("alice").unwrap().store().omap_all("dict", "").unwrap();
    assert_eq!(dict_before.len(), 1501);
    let before = json(&p, &["mailboxes", "alice"], 0);
    let count = objects(&s, "alice");
    // A target that exists is refused.
    let (code, _, err) = text(&run(&p, &["user", "rename", "alice", "bob"]));
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    let out = expect(&p, &["user", "rename", "alice", "carol"], 0);
    assert!(out.contains(&format!("renamed user \"alice\" to \"carol\": {count} objects")), "{out}");
    assert_eq!(objects(&s, "alice"), 0);
    assert_eq!(objects(&s, "carol"), count);
    assert_eq!(json(&p, &["mailboxes", "carol"], 0), before, "same GUIDs, UIDs, counters, subscriptions");
    assert_eq!(run(&p, &["cat", "carol", "Archive/2025", "1"]).stdout, mail);
    let carol = s.user("carol").unwrap();
    let mut got = Vec::new();
    carol.open_mailbox("INBOX").unwrap().open_body(1).unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(got, mail);
    assert_eq!(carol.dict().lookup("priv/k").unwrap().unwrap(), b"v");
    assert!(carol.store().omap_all("dict", "").unwrap() == dict_before, "every dict key, exactly");
    expect(&p, &["check", "carol"], 0);
    let users = expect(&p, &["users"], 0);
    assert!(!users.contains("alice") && users.contains("carol"), "{users}");
    // Renaming a user that has nothing is an error.
    assert_eq!(text(&run(&p, &["user", "rename", "alice", "dave"])).0, 2);
    cleanup(&s, &["bob", "carol"]);
}

/// `--doveconf=PATH` takes the plugin's `rados_*` settings; flags given explicitly win.
#[test]
fn doveconf_and_flags() {
    let p = prefix("doveconf");
    let s = store(&p);
    populate(&s, "alice");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("dovecot.conf");
    let ceph_conf = std::env::var("CEPH_CONF").unwrap();
    let write = |pool: &str, prefix: &str| {
        std::fs::write(
            &conf,
            format!(
                "base_dir = {0}/run\nlog_path = {0}/log\nssl = no\nmail_location = rados:\n\
                 plugin {{\n  rados_conf = {ceph_conf}\n  rados_pool = {pool}\n  \
                 rados_namespace_prefix = {prefix}\n  rados_timeout = 20\n  quota = count\n}}\n",
                dir.path().display()
            ),
        )
        .unwrap();
    };
    let pool = std::env::var("RADOS_MAIL_POOL").unwrap_or_else(|_| "mail".into());
    write(&pool, &p);
    let doveconf = format!("--doveconf={}", conf.display());
    // No --namespace-prefix: it comes from the plugin settings.
    let bin = env!("CARGO_BIN_EXE_rados-mail");
    let out = std::process::Command::new(bin)
        .env_remove("RADOS_MAIL_DATA_POOL")
        .args([doveconf.as_str(), "--json", "users"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users[0]["user"], "alice", "{users}");
    assert_eq!(users.as_array().unwrap().len(), 1);
    // A pool that does not exist: an error naming it; -p wins over the plugin's.
    write("no-such-pool-cli", &p);
    let out = std::process::Command::new(bin)
        .env_remove("RADOS_MAIL_DATA_POOL")
        .args([doveconf.as_str(), "users"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-pool-cli"));
    let out = std::process::Command::new(bin)
        .env_remove("RADOS_MAIL_DATA_POOL")
        .args([doveconf.as_str(), "-p", &pool, "users"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // --namespace-prefix wins over the plugin's too (run() passes the test's own).
    write(&pool, "cli-nobody-");
    let got = run_with_input(&p, &[doveconf.as_str(), "--json", "users"], b"");
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&got.stdout).unwrap()[0]["user"], "alice");
    // --id names the client: an unknown one cannot authenticate.
    let (code, _, err) = text(&run(&p, &["--id", "nosuchclient", "--timeout", "5", "users"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("client.nosuchclient"), "{err}");
    cleanup(&s, &["alice"]);
}
