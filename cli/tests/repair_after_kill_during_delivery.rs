//! Crashes leave objects behind, and `rados-mail` cleans them up (issue 12).
//!
//! The story: killing Dovecot processes during deliveries left 13 unreferenced mail objects
//! in 30 s, and a 20 MiB-mail variant 32 MiB after 5 kills; `check` existed only as a Rust
//! function, and nothing removed them. Here a delivering process is SIGKILLed in the middle
//! of a mail, again and again: `rados-mail check` finds the leftovers (exit 1), a repair
//! with the default grace leaves them alone (they could be saves in flight), a repair with
//! no grace removes them, the next check is clean, and every mail that was committed is
//! still there, byte for byte.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

/// The mail the child delivers as its `n`-th: 9 MiB (three objects in 4 MiB chunks), its
/// bytes a function of `n`.
fn mail(n: u32) -> Vec<u8> {
    let mut m = format!("Subject: delivery {n}\n\n").into_bytes();
    m.extend((0..9u32 << 20).map(|i| b'a' + ((i / 64 + n) % 26) as u8));
    m
}

/// The delivering process: this test's own binary, run again by the test with the prefix
/// in the environment. Commits a mail, then writes most of the next one and stalls, as an
/// LMTP client that stops sending mid-DATA; prints `committed <uid>` and `stalled` for
/// the parent, which kills it.
fn deliver_until_killed(prefix: &str, first: u32) -> ! {
    let store = common::store(prefix);
    let user = store.user("victim").unwrap();
    let inbox = user.open_mailbox("INBOX").unwrap();
    let uid = inbox.append(&mail(first)[..], Default::default()).unwrap();
    println!("committed {uid}");
    let mut next = inbox.appender(None);
    let body = mail(first + 1);
    next.write(&body[..body.len() - 1000]).unwrap();
    println!("stalled");
    std::thread::sleep(std::time::Duration::from_secs(60));
    panic!("not killed");
}

#[test]
fn repair_after_kill_during_delivery() {
    if let (Ok(prefix), Ok(first)) = (std::env::var("RM_KILL_PREFIX"), std::env::var("RM_KILL_FIRST")) {
        deliver_until_killed(&prefix, first.parse().unwrap());
    }
    let prefix = common::prefix("kill");
    let store = common::store(&prefix);
    let user = store.user("victim").unwrap();
    user.create_mailbox("INBOX").unwrap();
    let mut committed = Vec::new();
    for round in 0..4u32 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "repair_after_kill_during_delivery", "--nocapture", "--test-threads=1"])
            .env("RM_KILL_PREFIX", &prefix)
            .env("RM_KILL_FIRST", (round * 2).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stalled = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            // libtest may put its own "test ... " before the child's first line.
            if let Some((_, uid)) = line.split_once("committed ") {
                committed.push((uid.trim().parse::<u32>().unwrap(), round * 2));
            } else if line.ends_with("stalled") {
                stalled = true;
                break;
            }
        }
        assert!(stalled, "round {round}: the child never got to its second mail");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    assert_eq!(committed.len(), 4);

    // The leftovers are found: four bodies written but never committed.
    let found = common::json(&prefix, &["check", "victim"], 1);
    let orphans = found["orphan_bodies"].as_array().unwrap();
    assert_eq!(orphans.len(), 4, "{found:#}");
    assert!(found["missing_bodies"].as_array().unwrap().is_empty(), "{found:#}");
    assert!(found["corrupt"].as_array().unwrap().is_empty(), "{found:#}");
    let before: Vec<String> =
        store.user("victim").unwrap().store().list_objects().unwrap().map(Result::unwrap).collect();

    // With the default grace they could be saves in flight: left alone.
    common::expect(&prefix, &["repair", "victim"], 0);
    assert_eq!(common::json(&prefix, &["check", "victim"], 1)["orphan_bodies"].as_array().unwrap().len(), 4);

    // Without a grace they go, and only they.
    let done = common::json(&prefix, &["repair", "victim", "--grace", "0s"], 0);
    let removed: Vec<&str> = done["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "removed_orphan")
        .map(|a| a["object"].as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 4, "{done:#}");
    let checked = common::json(&prefix, &["check", "victim"], 0);
    assert_eq!(checked["records"], 4, "{checked:#}");
    let after: Vec<String> =
        store.user("victim").unwrap().store().list_objects().unwrap().map(Result::unwrap).collect();
    let gone: Vec<&String> = before.iter().filter(|o| !after.contains(o)).collect();
    assert!(gone.iter().all(|o| removed.iter().any(|r| o.starts_with(r))), "only the orphans' objects went: {gone:?}");
    // Each orphan is its first object, plus its second when that write had landed before
    // the kill (chunks after the first are written in the background); a clean check
    // above says no chunk was left.
    assert!((4..=8).contains(&gone.len()), "{gone:?}");

    // Every committed mail is there, byte for byte.
    let inbox = store.user("victim").unwrap().open_mailbox("INBOX").unwrap();
    for (uid, n) in &committed {
        let mut got = Vec::new();
        inbox.open_body(*uid).unwrap().read_to_end(&mut got).unwrap();
        assert!(got == mail(*n), "UID {uid} changed");
    }
    common::cleanup(&store, &["victim"]);
}
