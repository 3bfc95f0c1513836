//! Four OS processes append 500 mails each into one mailbox on the real cluster, flagging
//! every mail they append right after, all at once. Afterwards the mailbox must hold exactly
//! 2,000 mails with 2,000 distinct UIDs, each process must have seen its UIDs strictly
//! increase, and every flag change must be present: no duplicate UID, no lost mail, no lost
//! flag update, no UID going backwards.
//!
//! The test re-runs its own binary as the child processes (`RADOS_MAIL_CHILD` set).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rados_mail::{Flags, MailStore, StoreMode};

mod common;

const PROCESSES: u32 = 4;
const MAILS: u32 = 500;

fn store() -> MailStore {
    common::cluster_store()
}

/// One child: append, then flag, each of its mails; print the UIDs in order.
fn child(user: &str, me: u32) {
    let mailbox = store().user(user).unwrap().open_mailbox("INBOX").unwrap();
    let mut uids = Vec::new();
    for i in 0..MAILS {
        let body = format!("From: p{me}@example.org\nSubject: {i}\n\nprocess {me} mail {i}\n");
        let uid = mailbox.append(body.as_bytes(), Default::default()).unwrap();
        let r = mailbox.store(&[uid], StoreMode::Add, Flags::SEEN, &[&format!("p{me}")], None).unwrap();
        assert_eq!(r.changed, [uid]);
        uids.push(uid);
    }
    let list: Vec<String> = uids.iter().map(u32::to_string).collect();
    println!("UIDS {me} {}", list.join(","));
}

#[test]
fn four_processes_append_and_flag_one_mailbox() {
    if let (Ok(user), Ok(me)) = (std::env::var("RADOS_MAIL_USER"), std::env::var("RADOS_MAIL_CHILD")) {
        child(&user, me.parse().unwrap());
        return;
    }
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let user = format!("mt-multiprocess-{}-{nanos}", std::process::id());
    let store = store();
    store.user(&user).unwrap().create_mailbox("INBOX").unwrap();
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let children: Vec<_> = (0..PROCESSES)
        .map(|me| {
            Command::new(&exe)
                .args(["--exact", "four_processes_append_and_flag_one_mailbox", "--nocapture", "--test-threads=1"])
                .env("RADOS_MAIL_USER", &user)
                .env("RADOS_MAIL_CHILD", me.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut by_process: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for mut c in children {
        let mut out = String::new();
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(c.wait().unwrap().success(), "a child failed:\n{out}");
        for line in out.lines().filter_map(|l| l.find("UIDS ").map(|i| &l[i + 5..])) {
            let (me, list) = line.split_once(' ').unwrap();
            by_process.insert(me.parse().unwrap(), list.split(',').map(|u| u.parse().unwrap()).collect());
        }
    }
    let took = start.elapsed();
    assert_eq!(by_process.len(), PROCESSES as usize);
    for (me, uids) in &by_process {
        assert_eq!(uids.len(), MAILS as usize);
        assert!(uids.windows(2).all(|w| w[0] < w[1]), "process {me} saw its UIDs go backwards");
    }
    let all: BTreeSet<u32> = by_process.values().flatten().copied().collect();
    assert_eq!(all.len(), (PROCESSES * MAILS) as usize, "a UID was handed out twice");

    let mailbox = store.user(&user).unwrap().open_mailbox("INBOX").unwrap();
    let status = mailbox.status().unwrap();
    assert_eq!(status.messages, PROCESSES * MAILS);
    assert_eq!(mailbox.uids().unwrap().into_iter().collect::<BTreeSet<_>>(), all);
    for (me, uids) in &by_process {
        for (i, uid) in uids.iter().enumerate() {
            let rec = mailbox.record(*uid).unwrap().unwrap();
            assert_eq!(rec.flags, Flags::SEEN.bits(), "flag change lost on UID {uid}");
            assert_eq!(rec.keywords, [format!("p{me}")]);
            if i % 97 == 0 {
                let mut body = String::new();
                mailbox.open_body(*uid).unwrap().read_to_string(&mut body).unwrap();
                assert!(body.ends_with(&format!("process {me} mail {i}\n")), "UID {uid} has the wrong body");
            }
        }
    }
    eprintln!(
        "multiprocess: {} appends + {} flag changes from {PROCESSES} processes in {took:.1?} ({:.0} commits/s); highestmodseq {}",
        PROCESSES * MAILS,
        PROCESSES * MAILS,
        f64::from(2 * PROCESSES * MAILS) / took.as_secs_f64(),
        status.highestmodseq
    );
}
