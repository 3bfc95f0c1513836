//! `rados-mail import` and `export` against the real cluster: a Maildir goes through
//! import, export, import elsewhere and export again (identical trees), and import again
//! (no duplicates); an mbox with `>From ` escaping the same. The fixtures are made here.
//!
//! The cluster comes from `CEPH_CONF` and `RADOS_MAIL_POOL` (`. target/ceph/env.sh`);
//! without one these tests fail, they never skip.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// A namespace prefix no other test (or earlier run) uses.
fn prefix(case: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("test-cli-{case}-{}-{nanos}-", std::process::id())
}

/// Runs the binary on the test cluster; returns the exit code and stdout.
fn run(prefix: &str, args: &[&str]) -> (i32, String) {
    let conf = std::env::var("CEPH_CONF").unwrap_or_else(|_| {
        panic!(
            "no Ceph cluster configured (CEPH_CONF is unset{}): run ./ci/ceph-start.sh && . target/ceph/env.sh",
            if std::env::var_os("CI").is_some() { ", and CI is set" } else { "" }
        )
    });
    let pool = std::env::var("RADOS_MAIL_POOL").unwrap_or_else(|_| "mail".into());
    let out = Command::new(env!("CARGO_BIN_EXE_rados-mail"))
        .env_remove("RADOS_MAIL_DATA_POOL")
        .args(["-c", &conf, "-p", &pool, "--namespace-prefix", prefix])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code().unwrap_or(-1);
    assert!(code != 2 || stderr.contains("rados-mail:"), "{args:?}: exit {code}\n{stdout}\n{stderr}");
    (code, stdout)
}

/// Runs a command that must succeed with `--json`; returns its summary.
fn run_json(prefix: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout) = run(prefix, &all);
    assert_eq!(code, 0, "{args:?}:\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}:\n{stdout}"))
}

/// Totals of one field over the mailboxes of a summary.
fn total(summary: &Value, field: &str) -> u64 {
    summary["mailboxes"].as_array().unwrap().iter().map(|m| m[field].as_u64().unwrap()).sum()
}

fn put(path: &Path, bytes: &[u8], mtime: i64) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(UNIX_EPOCH + std::time::Duration::from_secs(mtime as u64)).unwrap();
}

/// A Maildir++ tree with flags, keywords, a UID list, a sub-folder with a non-ASCII
/// name, two identical mails, an 8-bit/binary mail and one of 5 MiB (two body chunks).
fn make_maildir(root: &Path) {
    for d in ["cur", "new", "tmp"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    put(&root.join("cur/1000.M1.h:2,S"), b"Subject: seen\n\nhello\n", 1_600_000_000);
    put(&root.join("cur/1001.M2.h:2,FRSab"), b"Subject: flagged\n\nwith keywords\n", 1_600_000_100);
    put(&root.join("cur/1002.M3.h:2,DT"), b"Subject: draft\n\ndeleted draft\n", 1_600_000_200);
    put(&root.join("new/1003.M4.h"), b"Subject: same\n\nidentical\n", 1_600_000_300);
    put(&root.join("new/1004.M5.h"), b"Subject: same\n\nidentical\n", 1_600_000_400);
    fs::write(root.join("dovecot-keywords"), "0 $Forwarded\n1 Junk\n").unwrap();
    // UIDs 10, 20, 30 for the cur/ mails; the new/ ones get the next ones.
    fs::write(
        root.join("dovecot-uidlist"),
        "3 V12345 N40 G00112233445566778899aabbccddeeff\n10 :1000.M1.h\n20 W30 :1001.M2.h\n30 :1002.M3.h\n",
    )
    .unwrap();
    let sub = root.join(".Archive.Entw&APw-rfe");
    let mut binary: Vec<u8> = b"Subject: 8bit\nContent-Transfer-Encoding: 8bit\n\n".to_vec();
    binary.extend((0..=255u8).cycle().take(3000));
    put(&sub.join("cur/2000.M6.h:2,S"), &binary, 1_500_000_000);
    let mut big = b"Subject: big\n\n".to_vec();
    let mut x: u32 = 12345;
    big.extend((0..5 << 20).map(|_| {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (x >> 16) as u8
    }));
    put(&sub.join("cur/2001.M7.h:2,"), &big, 1_500_000_100);
    fs::create_dir_all(sub.join("new")).unwrap();
}

/// Every file of a tree by relative path: its bytes and mtime.
fn tree(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                let meta = e.metadata().unwrap();
                out.insert(
                    e.path().strip_prefix(root).unwrap().to_path_buf(),
                    (fs::read(e.path()).unwrap(), meta.modified().unwrap()),
                );
            }
        }
    }
    out
}

/// The mails of one folder as (bytes, system flag letters, keyword names, mtime), sorted.
fn mails(folder: &Path) -> Vec<(Vec<u8>, String, Vec<String>, SystemTime)> {
    let keywords: BTreeMap<char, String> = fs::read_to_string(folder.join("dovecot-keywords"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(i, k)| ((b'a' + i.parse::<u8>().unwrap()) as char, k.to_string()))
        .collect();
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = fs::read_dir(folder.join(sub)) else { continue };
        for e in entries {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let letters = name.split_once(":2,").map_or("", |(_, l)| l).to_string();
            let mut flags: Vec<char> = letters.chars().filter(char::is_ascii_uppercase).collect();
            flags.sort();
            let mut kws: Vec<String> =
                letters.chars().filter(char::is_ascii_lowercase).map(|c| keywords[&c].clone()).collect();
            kws.sort();
            let mtime = e.metadata().unwrap().modified().unwrap();
            out.push((fs::read(e.path()).unwrap(), flags.into_iter().collect(), kws, mtime));
        }
    }
    out.sort();
    out
}

fn uidlist(folder: &Path) -> String {
    fs::read_to_string(folder.join("dovecot-uidlist")).unwrap()
}

#[test]
fn maildir_round_trip_is_identical_and_reimport_adds_nothing() {
    let ns = prefix("maildir");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c, d) = (tmp.path().join("A"), tmp.path().join("B"), tmp.path().join("C"), tmp.path().join("D"));
    make_maildir(&a);
    let (a_s, b_s, c_s, d_s) = (a.to_str().unwrap(), b.to_str().unwrap(), c.to_str().unwrap(), d.to_str().unwrap());

    let first = run_json(&ns, &["import", "alice", "--maildir", a_s, "--jobs", "3"]);
    assert_eq!((total(&first, "found"), total(&first, "imported"), total(&first, "failed")), (7, 7, 0), "{first}");
    assert_eq!(total(&first, "renumbered"), 0, "{first}");
    assert!(first["problems"].as_array().unwrap().is_empty(), "{first}");

    let exported = run_json(&ns, &["export", "alice", b_s]);
    assert_eq!(total(&exported, "written"), 7, "{exported}");
    // Every mail of A is in B with the same bytes, flags, keywords and date.
    let sub = ".Archive.Entw&APw-rfe";
    assert_eq!(mails(&a), mails(&b));
    assert_eq!(mails(&a.join(sub)), mails(&b.join(sub)));
    assert_eq!(mails(&b).len(), 5);
    assert_eq!(mails(&b.join(sub)).iter().map(|m| m.0.len()).max(), Some(14 + (5 << 20)));
    // The UID list kept UIDVALIDITY, the mailbox GUID and the UIDs; the mails it did not
    // list got UIDs from its next UID on.
    let list = uidlist(&b);
    assert!(list.starts_with("3 V12345 N42 G00112233445566778899aabbccddeeff\n"), "{list}");
    let uids: Vec<&str> = list.lines().skip(1).map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(uids, ["10", "20", "30", "40", "41"], "{list}");
    assert!(
        fs::read_dir(b.join("cur")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("1600000100.20_"))
    );

    // Import the export as another user and export that: the same tree, byte for byte.
    let second = run_json(&ns, &["import", "bob", "--maildir", b_s]);
    assert_eq!((total(&second, "imported"), total(&second, "renumbered")), (7, 0), "{second}");
    run_json(&ns, &["export", "bob", c_s]);
    let (tb, tc) = (tree(&b), tree(&c));
    assert_eq!(tb.keys().collect::<Vec<_>>(), tc.keys().collect::<Vec<_>>());
    for (path, (bytes, mtime)) in &tb {
        assert!(tc[path].0 == *bytes, "{} differs", path.display());
        if path.starts_with("cur") || path.to_string_lossy().contains("/cur/") {
            assert_eq!(tc[path].1, *mtime, "{}", path.display());
        }
    }

    // Again, from both sources: nothing new, and the mailboxes are as they were.
    for (user, src) in [("alice", a_s), ("alice", b_s), ("bob", b_s), ("bob", a_s)] {
        let again = run_json(&ns, &["import", user, "--maildir", src]);
        assert_eq!((total(&again, "imported"), total(&again, "already_present")), (0, 7), "{user} {src}: {again}");
    }
    run_json(&ns, &["export", "alice", d_s]);
    assert_eq!(tree(&d).keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
}

#[test]
fn mbox_import_unescapes_and_reruns_add_nothing() {
    let ns = prefix("mbox");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("old.mbox");
    fs::write(
        &file,
        b"From alice@example.org Sat Nov 14 22:13:20 2023\nStatus: RO\nX-Status: AF\nSubject: one\n\n\
          >From the first line\n>>From a quoted one\nplain\n\n\
          From bob@example.org Sat Nov 14 22:13:21 2023\nSubject: two\n\nno flags\n\n\
          From bob@example.org Sat Nov 14 22:13:21 2023\nSubject: two\n\nno flags\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let first = run_json(&ns, &["import", "carol", "--mbox", f, "--mailbox", "Old/Mail"]);
    assert_eq!((total(&first, "found"), total(&first, "imported")), (3, 3), "{first}");
    assert_eq!(first["mailboxes"][0]["mailbox"], "Old/Mail");
    let again = run_json(&ns, &["import", "carol", "--mbox", f, "--mailbox", "Old/Mail"]);
    assert_eq!((total(&again, "imported"), total(&again, "already_present")), (0, 3), "{again}");

    let out = tmp.path().join("out");
    run_json(&ns, &["export", "carol", out.to_str().unwrap(), "--mailbox", "Old/Mail"]);
    let got = mails(&out.join(".Old.Mail"));
    let t = |s| UNIX_EPOCH + std::time::Duration::from_secs(s);
    let one = b"Status: RO\nX-Status: AF\nSubject: one\n\nFrom the first line\n>From a quoted one\nplain\n".to_vec();
    let two = b"Subject: two\n\nno flags\n".to_vec();
    assert_eq!(
        got,
        vec![
            (one, "FRS".to_string(), vec![], t(1_700_000_000)),
            (two.clone(), String::new(), vec![], t(1_700_000_001)),
            (two, String::new(), vec![], t(1_700_000_001)),
        ]
    );
}

#[test]
fn export_refuses_a_full_directory_and_force_brings_it_up_to_date() {
    let ns = prefix("force");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for d in ["cur", "new", "tmp"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    put(&src.join("cur/1.a:2,"), b"Subject: a\n\na\n", 1_000);
    put(&src.join("cur/2.b:2,S"), b"Subject: b\n\nb\n", 2_000);
    run_json(&ns, &["import", "dave", "--maildir", src.to_str().unwrap()]);
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    run_json(&ns, &["export", "dave", o]);
    fs::write(out.join("notes.txt"), "mine").unwrap();
    let (code, _) = run(&ns, &["export", "dave", o]);
    assert_eq!(code, 2, "a second export into a full directory must be refused");

    // Change the mailbox behind the export's back: flag one mail, expunge the other.
    let mut settings = rados_mail::settings::Settings::default();
    settings.set("conf", &std::env::var("CEPH_CONF").unwrap()).unwrap();
    settings.set("pool", &std::env::var("RADOS_MAIL_POOL").unwrap_or_else(|_| "mail".into())).unwrap();
    settings.set("namespace_prefix", &ns).unwrap();
    let inbox = settings.open().unwrap().user("dave").unwrap().open_mailbox("INBOX").unwrap();
    let uids = inbox.uids().unwrap();
    assert_eq!(uids.len(), 2);
    inbox.store(&uids[..1], rados_mail::StoreMode::Add, rados_mail::Flags::FLAGGED, &[], None).unwrap();
    inbox.expunge(&uids[1..]).unwrap();

    let summary = run_json(&ns, &["export", "dave", o, "--force"]);
    let r = &summary["mailboxes"][0];
    assert_eq!(
        (r["written"].as_u64(), r["unchanged"].as_u64(), r["removed"].as_u64()),
        (Some(1), Some(0), Some(2)),
        "{summary}"
    );
    let names: Vec<String> =
        fs::read_dir(out.join("cur")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("1000.") && names[0].ends_with(".rados-mail:2,F"), "{names:?}");
    assert_eq!(fs::read_to_string(out.join("notes.txt")).unwrap(), "mine");
    let list = uidlist(&out);
    assert_eq!(list.lines().count(), 2, "{list}");
    // Nothing changed since: a third export writes and removes nothing.
    let summary = run_json(&ns, &["export", "dave", o, "--force"]);
    let r = &summary["mailboxes"][0];
    assert_eq!(
        (r["written"].as_u64(), r["unchanged"].as_u64(), r["removed"].as_u64()),
        (Some(0), Some(1), Some(0)),
        "{summary}"
    );
}

#[test]
fn export_of_a_mail_whose_body_is_lost_reports_it_and_exports_the_rest() {
    let ns = prefix("lost");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for d in ["cur", "new", "tmp"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    put(&src.join("cur/1.a:2,S"), b"Subject: kept\n\nstill here\n", 1_000);
    put(&src.join("cur/2.b:2,S"), b"Subject: lost\n\nits body object goes\n", 2_000);
    run_json(&ns, &["import", "erin", "--maildir", src.to_str().unwrap()]);

    // Delete the body object of UID 2, as a disk or an operator might.
    let mut settings = rados_mail::settings::Settings::default();
    settings.set("conf", &std::env::var("CEPH_CONF").unwrap()).unwrap();
    settings.set("pool", &std::env::var("RADOS_MAIL_POOL").unwrap_or_else(|_| "mail".into())).unwrap();
    settings.set("namespace_prefix", &ns).unwrap();
    let user = settings.open().unwrap().user("erin").unwrap();
    let rec = user.open_mailbox("INBOX").unwrap().record(2).unwrap().unwrap();
    let guid = rados_mail::Guid::from_slice(&rec.mail_guid).unwrap();
    user.store().remove(&omap_index::names::mail(&guid)).unwrap();

    let out = tmp.path().join("out");
    let (code, stdout) = run(&ns, &["--json", "export", "erin", out.to_str().unwrap()]);
    assert_eq!(code, 1, "a lost body is a finding:\n{stdout}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    let r = &summary["mailboxes"][0];
    assert_eq!((r["written"].as_u64(), r["failed"].as_u64()), (Some(1), Some(1)), "{summary}");
    let problems = summary["problems"].as_array().unwrap();
    assert!(problems.len() == 1 && problems[0].as_str().unwrap().contains("UID 2"), "{summary}");
    let files: Vec<_> = fs::read_dir(out.join("cur")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    assert_eq!(fs::read(&files[0]).unwrap(), b"Subject: kept\n\nstill here\n");
    assert_eq!(fs::read_dir(out.join("tmp")).unwrap().count(), 0, "no half-written file is left");
    let list = uidlist(&out);
    assert_eq!(list.lines().skip(1).map(|l| l.split(' ').next().unwrap()).collect::<Vec<_>>(), ["1"], "{list}");
}
