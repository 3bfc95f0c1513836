//! Damage cases (issue 12): a corrupt value in the pool stays confined to what it touches.
//!
//! The story: one bad record made every new session fail SELECT on the whole mailbox; a
//! bad head header or WAL entry locked everyone out of the mailbox and made deliveries
//! fail; a bad mailbox-list entry made the whole account unusable. Now a bad record makes
//! one mail unreadable (named in the error), a bad head is rebuilt from what is intact,
//! and a bad list entry is recovered from the GUID map and the head.

use std::sync::Arc;

use rados_mail::objstore::ObjectStore;
use rados_mail::{Error, Flags, MailStore, Mailbox, StoreMode};

use super::{body, mailbox, other_process};

/// Generates one `#[test]` per damage case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! damage_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in damage $make;
            damaged_record_is_confined_to_its_mail, damaged_header_is_rebuilt,
            damaged_wal_entry_is_rebuilt, damaged_marks_are_rebuilt, damaged_list_entry_is_confined,
            missing_body_is_damage_not_an_expunge, newer_format_is_never_rebuilt,
        );
    };
}

/// Flips the last byte of omap value `key` of `oid` (its crc32 no longer matches).
pub fn corrupt(ns: &Arc<dyn ObjectStore>, oid: &str, key: &str) {
    let mut value = ns.omap_get(oid, &[key]).unwrap().remove(key).unwrap_or_else(|| panic!("{oid} has no {key}"));
    let last = value.len() - 1;
    value[last] ^= 0xff;
    ns.omap_set(oid, &[(key, &value)]).unwrap();
}

fn deliver(m: &Mailbox, n: u32) -> Vec<u32> {
    (0..n).map(|i| m.append(format!("Subject: {i}\n\nmail {i}\n").as_bytes(), Default::default()).unwrap()).collect()
}

fn ns(store: &MailStore, user: &str) -> Arc<dyn ObjectStore> {
    store.user(user).unwrap().store().clone()
}

/// A corrupt record makes that one mail unreadable; the rest of the mailbox is usable.
pub fn damaged_record_is_confined_to_its_mail(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    deliver(&m, 5);
    m.apply_wal().unwrap();
    let shard = format!("mbox.{}.0000", m.info().guid);
    corrupt(&ns(store, user), &shard, "r/00000003");

    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(there.uids().unwrap(), vec![1, 2, 3, 4, 5], "the damaged mail is still a mail");
    match there.record(3) {
        Err(Error::Corrupted { object, key: Some(k), .. }) => {
            assert_eq!((object.as_str(), k.as_str()), (shard.as_str(), "r/00000003"))
        }
        other => panic!("expected Corrupted naming the shard and key, got {other:?}"),
    }
    assert!(matches!(there.open_body(3), Err(Error::Corrupted { .. })));
    assert_eq!(body(&there, 4), b"Subject: 3\n\nmail 3\n");
    let damaged: Vec<u32> = there.damaged().unwrap().into_iter().map(|(u, _)| u).collect();
    assert_eq!(damaged, vec![3]);
    // A mail server syncing from scratch gets the UID (no flags, no GUID).
    let changes = there.changes_since(0).unwrap();
    let uids: Vec<u32> = changes.changed.iter().map(|r| r.uid).collect();
    assert_eq!(uids, vec![1, 2, 3, 4, 5]);
    assert!(changes.changed[2].mail_guid.is_empty());
    // Changes and deliveries go on.
    there.store(&[1, 2], StoreMode::Add, Flags::SEEN, &[], None).unwrap();
    assert_eq!(there.append(&b"Subject: new\n\nnew\n"[..], Default::default()).unwrap(), 6);
    there.apply_wal().unwrap();
    assert_eq!(there.status().unwrap().messages, 6);
    assert_eq!(there.record(1).unwrap().unwrap().flags, Flags::SEEN.bits());
    assert!(matches!(there.record(3), Err(Error::Corrupted { .. })), "still damaged after the WAL was applied");
}

/// A corrupt header is rebuilt on the next read: UIDVALIDITY, UIDNEXT and the mails are
/// kept, and the next mail gets the next UID.
pub fn damaged_header_is_rebuilt(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    deliver(&m, 4);
    m.apply_wal().unwrap();
    deliver(&m, 2); // UIDs 5 and 6 only in the WAL
    m.expunge(&[6]).unwrap();
    let before = m.status().unwrap();
    corrupt(&ns(store, user), &format!("mbox.{}", m.info().guid), "hdr");

    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    let after = there.status().unwrap();
    assert_eq!(after.uidvalidity, before.uidvalidity);
    assert_eq!(after.uidnext, 7, "UID 6 was expunged, never to be given again");
    assert_eq!(after.messages, 5);
    assert!(after.highestmodseq > before.highestmodseq);
    assert_eq!(there.uids().unwrap(), vec![1, 2, 3, 4, 5]);
    assert_eq!(there.append(&b"Subject: x\n\nx\n"[..], Default::default()).unwrap(), 7);
    // The first process sees the rebuilt mailbox too (another incarnation: it reloads).
    m.sync().unwrap();
    assert_eq!(m.uids().unwrap(), vec![1, 2, 3, 4, 5, 7]);
    assert_eq!(body(&m, 5), b"Subject: 0\n\nmail 0\n");
}

/// A corrupt WAL entry is dropped by the rebuild; the rest of the WAL is kept.
pub fn damaged_wal_entry_is_rebuilt(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    deliver(&m, 3);
    m.store(&[1], StoreMode::Add, Flags::FLAGGED, &[], None).unwrap();
    let head = format!("mbox.{}", m.info().guid);
    let ns = ns(store, user);
    let wal: Vec<String> = ns.omap_all(&head, "w/").unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(wal.len(), 4, "{wal:?}");
    // The entry of mail 2 is lost with its change (nothing applied it to a shard).
    corrupt(&ns, &head, &wal[1]);
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(there.uids().unwrap(), vec![1, 3]);
    assert_eq!(there.record(1).unwrap().unwrap().flags, Flags::FLAGGED.bits());
    assert_eq!(there.status().unwrap().uidnext, 4, "UID 2 is never given again");
    assert_eq!(there.append(&b"Subject: x\n\nx\n"[..], Default::default()).unwrap(), 4);
    // A corrupt entry that every shard has applied is simply dropped.
    there.apply_wal().unwrap();
    there.store(&[3], StoreMode::Add, Flags::SEEN, &[], None).unwrap();
    let last = ns.omap_all(&head, "w/").unwrap().pop().unwrap().0;
    let shard = format!("{head}.0000");
    ns.omap_set(&shard, &[("applied", format!("{:016x}", u64::from_str_radix(&last[2..], 16).unwrap()).as_bytes())])
        .unwrap();
    corrupt(&ns, &head, &last);
    let again = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(again.uids().unwrap(), vec![1, 3, 4]);
    assert_eq!(again.status().unwrap().messages, 3);
}

/// Corrupt trim and first-recent marks are rebuilt; no mail is handed out as recent twice.
pub fn damaged_marks_are_rebuilt(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    deliver(&m, 3);
    m.sync().unwrap();
    assert_eq!(m.take_recent(u32::MAX).unwrap(), 1..4);
    let head = format!("mbox.{}", m.info().guid);
    let ns = ns(store, user);
    ns.omap_set(&head, &[("trim", b"zz"), ("recent", b"not hex")]).unwrap();
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(there.uids().unwrap(), vec![1, 2, 3]);
    there.sync().unwrap();
    assert!(there.take_recent(u32::MAX).unwrap().is_empty(), "the recent mails were taken before");
    deliver(&there, 1);
    there.sync().unwrap();
    assert_eq!(there.take_recent(u32::MAX).unwrap(), 4..5);
}

/// A corrupt mailbox-list entry affects only that mailbox, which stays usable.
pub fn damaged_list_entry_is_confined(store: &MailStore, user: &str) {
    let (u, inbox) = mailbox(store, user, "INBOX");
    deliver(&inbox, 1);
    let work = u.create_mailbox("Work").unwrap();
    deliver(&u.open_mailbox("Work").unwrap(), 2);
    u.create_mailbox("Zeta").unwrap();
    corrupt(&ns(store, user), "mailboxes", "mbox/Work");
    corrupt(&ns(store, user), "mailboxes", "counters");

    let other = other_process(store).user(user).unwrap();
    let names: Vec<String> = other.list_mailboxes("*").unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["INBOX", "Work", "Zeta"]);
    let info = other.mailbox_info("Work").unwrap();
    assert_eq!((info.guid, info.uidvalidity), (work.guid, work.uidvalidity));
    assert_eq!(other.open_mailbox("Work").unwrap().uids().unwrap(), vec![1, 2]);
    let new = other.create_mailbox("New").unwrap();
    assert!(new.uidvalidity > work.uidvalidity);
    other.rename_mailbox("Work", "Work2").unwrap();
    assert_eq!(other.open_mailbox("Work2").unwrap().uids().unwrap(), vec![1, 2]);
}

/// A body that is gone while its record points to it is damage, never an expunge.
pub fn missing_body_is_damage_not_an_expunge(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    deliver(&m, 2);
    let guid = rados_mail::Guid::from_slice(&m.record(1).unwrap().unwrap().mail_guid).unwrap();
    ns(store, user).remove(&format!("mail.{guid}")).unwrap();
    let there = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    match there.open_body(1) {
        Err(Error::Corrupted { object, .. }) => assert_eq!(object, format!("mail.{guid}")),
        Err(e) => panic!("expected Corrupted, got {e:?}"),
        Ok(_) => panic!("a missing body read"),
    }
    assert_eq!(there.uids().unwrap(), vec![1, 2]);
    assert_eq!(body(&there, 2), b"Subject: 1\n\nmail 1\n");
}

/// A value written by a newer rados-mail (a frame version above ours, crc intact) is not
/// damage to rebuild or move away: the data path refuses it and `repair` leaves it alone.
pub fn newer_format_is_never_rebuilt(store: &MailStore, user: &str) {
    let (u, m) = mailbox(store, user, "INBOX");
    deliver(&m, 2);
    m.apply_wal().unwrap();
    let ns = ns(store, user);
    let head = format!("mbox.{}", m.info().guid);
    let mut hdr = ns.omap_get(&head, &["hdr"]).unwrap().remove("hdr").unwrap();
    hdr[0] = 2;
    ns.omap_set(&head, &[("hdr", &hdr)]).unwrap();
    let there = other_process(store).user(user).unwrap();
    assert!(matches!(there.open_mailbox("INBOX"), Err(Error::Corrupted { .. })));
    assert_eq!(ns.omap_get(&head, &["hdr"]).unwrap()["hdr"], hdr, "left as it is");
    let options = rados_mail::repair::RepairOptions { orphan_grace: std::time::Duration::ZERO, ..Default::default() };
    let report = rados_mail::repair::repair_user(&u, &options).unwrap();
    assert!(report.unrepaired.iter().any(|m| m.contains("newer")), "{report:#?}");
    assert_eq!(ns.omap_get(&head, &["hdr"]).unwrap()["hdr"], hdr, "left as it is");
    let shard = format!("{head}.0000");
    assert_eq!(ns.omap_all(&shard, "r/").unwrap().len(), 2, "no record moved");
}
