//! The listings, `cat`, `df`, `dump` and `check` of the `rados-mail` binary, run against
//! the real cluster on mail put there with the library.

mod common;

use std::io::Read;

use common::{cleanup, expect, json, prefix, run, store, text};
use rados_mail::{Flags, MailStore, StoreMode};

const MAIL1: &[u8] = b"From: a@example.org\nSubject: one\n\nfirst\n";
const MAIL2: &[u8] = b"From: b@example.org\nSubject: two\n\nsecond \xff binary\r\n";
const MAIL3: &[u8] = b"Subject: three\n\nthird\n";

/// alice: INBOX (3 mails, flags, a keyword), Sent (\Sent, subscribed, a copy), a dict key;
/// bob: an empty INBOX.
fn populate(store: &MailStore) {
    let alice = store.user("alice").unwrap();
    alice.create_mailbox("INBOX").unwrap();
    alice.create_mailbox("Sent").unwrap();
    alice.set_special_use("Sent", &["\\Sent"]).unwrap();
    alice.subscribe("Sent").unwrap();
    let inbox = alice.open_mailbox("INBOX").unwrap();
    for m in [MAIL1, MAIL2, MAIL3] {
        inbox.append(m, Default::default()).unwrap();
    }
    inbox.store(&[2], StoreMode::Add, Flags::SEEN | Flags::FLAGGED, &["$Label1"], None).unwrap();
    inbox.copy_to(&[3], &alice.open_mailbox("Sent").unwrap()).unwrap();
    let mut txn = alice.dict().transaction();
    txn.set("priv/quota/messages", b"4").unwrap();
    txn.commit().unwrap();
    store.user("bob").unwrap().create_mailbox("INBOX").unwrap();
}

#[test]
fn listings_cat_and_df() {
    let p = prefix("list");
    let s = store(&p);
    populate(&s);

    // users: exactly the two, as text and JSON.
    let out = expect(&p, &["users"], 0);
    let names: Vec<&str> = out.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect();
    assert_eq!(names, ["alice", "bob"], "{out}");
    let users = json(&p, &["users"], 0);
    assert_eq!(users[0]["user"], "alice");
    assert_eq!(users[0]["namespace"], format!("{p}/alice"));
    let alice_objects = s.user("alice").unwrap().store().list_objects().unwrap().count();
    assert_eq!(users[0]["objects"], alice_objects as u64);

    // One walk of the pool, no listing per user; df reads the list and each mailbox's
    // header once (2 + 1 mailboxes here). (The pool format record's read is not counted.)
    let (_, _, err) = text(&run(&p, &["users", "--stats"]));
    assert!(err.contains("rados operations: 1 listings, 0 reads, 0 writes"), "{err}");
    let (_, _, err) = text(&run(&p, &["df", "--stats"]));
    assert!(err.contains("rados operations: 1 listings, 5 reads, 0 writes"), "{err}");

    // mailboxes.
    let boxes = json(&p, &["mailboxes", "alice"], 0);
    let inbox_info = s.user("alice").unwrap().mailbox_info("INBOX").unwrap();
    assert_eq!(boxes[0]["name"], "INBOX");
    assert_eq!(boxes[0]["guid"], inbox_info.guid.to_string());
    assert_eq!(boxes[0]["uidvalidity"], inbox_info.uidvalidity);
    assert_eq!(boxes[0]["uidnext"], 4);
    assert_eq!(boxes[0]["messages"], 3);
    assert_eq!(boxes[0]["psize"], (MAIL1.len() + MAIL2.len() + MAIL3.len()) as u64);
    assert_eq!(boxes[0]["subscribed"], false);
    assert_eq!(boxes[1]["name"], "Sent");
    assert_eq!(boxes[1]["special_use"][0], "\\Sent");
    assert_eq!(boxes[1]["subscribed"], true);
    assert_eq!(boxes[1]["messages"], 1);
    let status = s.user("alice").unwrap().open_mailbox("INBOX").unwrap().status().unwrap();
    assert_eq!(boxes[0]["highestmodseq"], status.highestmodseq);
    let text_out = expect(&p, &["mailboxes", "alice"], 0);
    assert!(text_out.starts_with("NAME"), "{text_out}");
    assert!(text_out.contains(&inbox_info.guid.to_string()), "{text_out}");
    assert_eq!(text(&run(&p, &["mailboxes", "nobody"])).0, 2, "no such user is an error");

    // mails, with and without --uid.
    let mails = json(&p, &["mails", "alice", "INBOX"], 0);
    let uids: Vec<u64> = mails.as_array().unwrap().iter().map(|m| m["uid"].as_u64().unwrap()).collect();
    assert_eq!(uids, [1, 2, 3]);
    assert_eq!(mails[1]["flags"], serde_json::json!(["\\Seen", "\\Flagged"]));
    assert_eq!(mails[1]["keywords"], serde_json::json!(["$Label1"]));
    assert_eq!(mails[1]["psize"], MAIL2.len() as u64);
    for (range, want) in [("2:*", vec![2, 3]), ("1,3", vec![1, 3]), ("2", vec![2]), ("*", vec![3])] {
        let got = json(&p, &["mails", "alice", "INBOX", "--uid", range], 0);
        let got: Vec<u64> = got.as_array().unwrap().iter().map(|m| m["uid"].as_u64().unwrap()).collect();
        assert_eq!(got, want, "--uid {range}");
    }
    assert_eq!(text(&run(&p, &["mails", "alice", "INBOX", "--uid", "x"])).0, 2);
    let listing = expect(&p, &["mails", "alice", "INBOX"], 0);
    assert!(listing.contains("\\Seen \\Flagged") && listing.contains("$Label1"), "{listing}");

    // cat: the bytes as stored.
    for (uid, mail) in [("1", MAIL1), ("2", MAIL2), ("3", MAIL3)] {
        assert_eq!(run(&p, &["cat", "alice", "INBOX", uid]).stdout, mail, "UID {uid}");
    }
    assert_eq!(run(&p, &["cat", "alice", "Sent", "1"]).stdout, MAIL3);
    assert_eq!(text(&run(&p, &["cat", "alice", "INBOX", "9"])).0, 2, "no such UID");

    // df: all users, then one with the bytes of its objects.
    let df = json(&p, &["df"], 0);
    assert_eq!(df.as_array().unwrap().len(), 2);
    assert_eq!(df[0]["user"], "alice");
    assert_eq!(df[0]["mailboxes"], 2);
    assert_eq!(df[0]["mails"], 4);
    assert_eq!(df[0]["bytes"], (MAIL1.len() + MAIL2.len() + 2 * MAIL3.len()) as u64);
    assert_eq!(df[0]["objects"], alice_objects as u64);
    assert!(df[0]["object_bytes"].is_null());
    let one = json(&p, &["df", "alice"], 0);
    assert_eq!(one[0]["objects"], alice_objects as u64);
    let bodies = (MAIL1.len() + MAIL2.len() + MAIL3.len()) as u64;
    assert_eq!(one[0]["object_bytes"], bodies, "only the bodies have data");
    cleanup(&s, &["alice", "bob"]);
}

/// `dump` of every kind of object, as text and as JSON.
#[test]
fn dump_every_kind() {
    let p = prefix("dump");
    let s = store(&p);
    populate(&s);
    let alice = s.user("alice").unwrap();
    let inbox = alice.open_mailbox("INBOX").unwrap();
    let guid = inbox.info().guid;
    let head = format!("mbox.{guid}");
    let rec = inbox.record(2).unwrap().unwrap();
    let body_guid = rados_mail::Guid::from_slice(&rec.mail_guid).unwrap();
    let body = format!("mail.{body_guid}");

    // The head, with its WAL entries still there.
    let d = json(&p, &["dump", &head, "--user", "alice"], 0);
    assert_eq!(d["kind"], "mailbox head");
    assert_eq!(d["hdr"]["uidnext"], 4);
    assert_eq!(d["hdr"]["guid"], guid.to_string());
    let wal = d["wal"].as_object().unwrap();
    assert!(!wal.is_empty(), "{d}");
    let changes: Vec<&serde_json::Value> = wal.values().flat_map(|w| w["changes"].as_array().unwrap()).collect();
    assert!(changes.iter().any(|c| c["record"]["keywords"][0] == "$Label1"), "{d}");
    let human = expect(&p, &["dump", &head, "--user", "alice"], 0);
    assert!(human.contains("hdr:") && human.contains("uidnext: 4") && human.contains("w/"), "{human}");

    // A shard, after the WAL is applied.
    inbox.apply_wal().unwrap();
    let shard = format!("mbox.{guid}.0000");
    let d = json(&p, &["dump", &shard, "--user", "alice"], 0);
    assert_eq!(d["kind"], "mailbox index shard");
    let records = d["records"].as_object().unwrap();
    assert_eq!(records.len(), 3, "{d}");
    assert_eq!(records["r/00000002"]["mail_guid"], body_guid.to_string());
    assert_eq!(records["r/00000002"]["flags"], 5);
    assert_eq!(records["r/00000002"]["flag_names"], serde_json::json!(["\\Seen", "\\Flagged"]));
    assert_eq!(d["modseq_index"].as_array().unwrap().len(), 3);
    assert!(d["applied"].as_u64().unwrap() > 0);
    let human = expect(&p, &["dump", &shard, "--user", "alice"], 0);
    assert!(human.contains("r/00000002:") && human.contains("applied:"), "{human}");

    // The mailbox list.
    let d = json(&p, &["dump", "mailboxes", "--user", "alice"], 0);
    assert_eq!(d["kind"], "mailbox list");
    assert_eq!(d["mailboxes"]["INBOX"]["guid"], guid.to_string());
    assert_eq!(d["guids"][guid.to_string()], "INBOX");
    assert_eq!(d["subscriptions"], serde_json::json!(["Sent"]));
    assert!(d["counters"]["last_uidvalidity"].as_u64().unwrap() > 0);
    assert!(expect(&p, &["dump", "mailboxes", "--user", "alice"], 0).contains("subscriptions:"));

    // The dict.
    let d = json(&p, &["dump", "dict", "--user", "alice"], 0);
    assert_eq!(d["entries"]["priv/quota/messages"], "4");
    let human = expect(&p, &["dump", "dict", "--user", "alice"], 0);
    assert!(human.contains("kind: dict") && human.contains("priv/quota/messages: 4"), "{human}");

    // A body: xattrs, references, size; --data.
    let d = json(&p, &["dump", &body, "--user", "alice"], 0);
    assert_eq!(d["kind"], "mail body");
    assert_eq!(d["size"], MAIL2.len() as u64);
    assert_eq!(d["xattrs"]["rm.guid"], body_guid.to_string());
    assert_eq!(d["xattrs"]["rm.psize"], MAIL2.len().to_string());
    assert_eq!(d["references"][0]["mailbox"], guid.to_string());
    assert_eq!(d["references"][0]["instance"], format!("{:016x}", rec.instance));
    let human = expect(&p, &["dump", &body, "--user", "alice"], 0);
    assert!(human.contains(&format!("rm.guid: {body_guid}")), "{human}");
    assert!(human.contains(&format!("mailbox: {guid}")) && human.contains("references:"), "{human}");
    let with_data = run(&p, &["dump", &body, "--user", "alice", "--data"]).stdout;
    assert!(with_data.ends_with(MAIL2), "--data ends with the bytes");
    let ns = format!("{p}/alice");
    assert_eq!(json(&p, &["dump", &body, "--namespace", &ns], 0)["size"], MAIL2.len() as u64);

    // A corrupt record: shown as CORRUPT, the rest still shown, exit 1.
    let mut bad = alice.store().omap_get(&shard, &["r/00000001"]).unwrap().remove("r/00000001").unwrap();
    bad[7] ^= 0xff;
    alice.store().omap_set(&shard, &[("r/00000001", &bad)]).unwrap();
    let d = json(&p, &["dump", &shard, "--user", "alice"], 1);
    assert!(d["records"]["r/00000001"]["corrupt"].as_str().unwrap().contains("checksum"), "{d}");
    assert_eq!(d["records"]["r/00000002"]["uid"], 2, "the rest is shown");
    let human = expect(&p, &["dump", &shard, "--user", "alice"], 1);
    assert!(human.contains("r/00000001: CORRUPT: record checksum mismatch"), "{human}");
    assert_eq!(text(&run(&p, &["dump", "mail.nothing", "--user", "alice"])).0, 2, "no such object");
    cleanup(&s, &["alice", "bob"]);
}

/// `check`: clean is exit 0; a body removed behind the library's back is found (exit 1),
/// by name, for one user and with `--all`.
#[test]
fn check_clean_then_missing_body() {
    let p = prefix("check");
    let s = store(&p);
    populate(&s);
    let out = expect(&p, &["check", "alice"], 0);
    assert!(out.starts_with("alice: clean (2 mailboxes, 4 records, 3 bodies)"), "{out}");
    assert_eq!(text(&run(&p, &["check", "nobody"])).0, 2, "a user without objects is an error, not clean");
    let report = json(&p, &["check", "alice"], 0);
    assert_eq!(report["records"], 4);
    assert_eq!(report["missing_bodies"], serde_json::json!([]));
    let all = expect(&p, &["check", "--all"], 0);
    assert!(all.contains("alice: clean") && all.contains("bob: clean"), "{all}");
    assert!(all.contains("2 users checked: 2 clean, 0 with findings, 0 failed"), "{all}");
    let (code, _, err) = text(&run(&p, &["check", "--all", "--stats"]));
    assert_eq!(code, 0);
    assert!(err.contains("rados operations: 1 listings,") && err.contains(" 0 writes"), "{err}");

    // Remove the body of INBOX UID 2 with the raw store.
    let alice = s.user("alice").unwrap();
    let rec = alice.open_mailbox("INBOX").unwrap().record(2).unwrap().unwrap();
    let body = format!("mail.{}", rados_mail::Guid::from_slice(&rec.mail_guid).unwrap());
    alice.store().remove(&body).unwrap();
    let out = expect(&p, &["check", "alice"], 1);
    assert!(out.contains("alice: DAMAGE"), "{out}");
    assert!(out.contains("missing bodies: 1") && out.contains("mailbox \"INBOX\" UID 2"), "{out}");
    let report = json(&p, &["check", "alice"], 1);
    assert_eq!(report["missing_bodies"], serde_json::json!([["INBOX", 2]]));
    let all = json(&p, &["check", "--all"], 1);
    assert_eq!(all["users"]["alice"]["missing_bodies"][0][1], 2);
    assert_eq!(all["users"]["bob"]["records"], 0);
    assert_eq!(all["errors"], serde_json::json!({}));
    // The library still reads the other mails.
    let mut got = Vec::new();
    alice.open_mailbox("INBOX").unwrap().open_body(1).unwrap().read_to_end(&mut got).unwrap();
    assert_eq!(got, MAIL1);
    cleanup(&s, &["alice", "bob"]);
}
