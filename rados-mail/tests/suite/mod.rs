//! Behaviour cases of the mail store, run against every backend (see `memory.rs` and
//! `rados.rs`). Each case gets a store and a user name nobody else uses.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::Read;

use rados_mail::{
    AppendOptions, CopyOptions, CreateOptions, Error, Flags, Guid, MailStore, Mailbox, MailboxInfo, MailboxUpdate,
    ModseqSteps, StoreMode, Transaction, User,
};

/// Generates one `#[test]` per case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! mail_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases $make;
            append_and_fetch_round_trip, sizes_and_header_length, flags_keywords_and_modseq,
            unchanged_since_reports_modified, expunge_and_changes_since, changes_since_after_trim,
            changes_since_brings_the_view_along,
            copy_shares_the_body, move_leaves_source_empty, reopen_sees_the_same_state,
            sharded_mailbox_stays_consistent, bad_input_is_refused,
            concurrent_writers_in_one_process, reopening_costs_one_read, chunk_boundaries_round_trip,
            multi_object_bodies, interrupted_save_is_invisible_and_found, check_is_clean_after_normal_use,
            cache_hits_cost_no_rados_ops, dicts_private_and_shared, append_keeps_wanted_uids_and_guids,
            copy_and_move_with_wanted_uids_and_flags, update_raises_header_values,
            create_with_given_guid_and_uidvalidity, recreated_guid_is_another_mailbox,
            change_guid_of_a_never_used_mailbox, transformed_mail_keeps_the_plain_figures,
            expunge_drops_a_reference_past_the_first_two,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (store, user) = ($make)(stringify!($case));
                suite::$case(&store, &user);
            }
        )*
    };
    (@cases_in $module:ident $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (store, user) = ($make)(stringify!($case));
                suite::$module::$case(&store, &user);
            }
        )*
    };
}

pub mod ack_lost;
pub mod ack_lost_delivery;
pub mod blocks;
pub mod bounds;
pub mod damage;
pub mod keywords;
pub mod recent;
pub mod repair;
pub mod txn;
pub mod watch;

fn mailbox(store: &MailStore, user: &str, name: &str) -> (User, Mailbox) {
    let u = store.user(user).unwrap();
    u.create_mailbox(name).unwrap();
    let m = u.open_mailbox(name).unwrap();
    (u, m)
}

/// Another process: a store over the same pool that shares no cached state with `store`.
fn other_process(store: &MailStore) -> MailStore {
    MailStore::new(store_pool(store), store.config().clone())
}

fn body(m: &Mailbox, uid: u32) -> Vec<u8> {
    let mut out = Vec::new();
    m.open_body(uid).unwrap().read_to_end(&mut out).unwrap();
    out
}

/// Mails of every shape come back byte for byte, with UIDs 1, 2, 3, ...
pub fn append_and_fetch_round_trip(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    let big: Vec<u8> = (0..(3 << 20) + 5).map(|i: u32| (i % 253) as u8).collect();
    let mails: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"x".to_vec(),
        b"Subject: lf\n\nbody\n".to_vec(),
        b"Subject: crlf\r\n\r\nbody\r\n".to_vec(),
        (0..=255u8).collect(),
        big,
    ];
    for (i, mail) in mails.iter().enumerate() {
        let uid = m.append(&mail[..], AppendOptions::default()).unwrap();
        assert_eq!(uid, i as u32 + 1);
    }
    for (i, mail) in mails.iter().enumerate() {
        let uid = i as u32 + 1;
        assert!(body(&m, uid) == *mail, "body of UID {uid} differs");
        let rec = m.record(uid).unwrap().unwrap();
        assert_eq!(rec.psize, mail.len() as u64);
    }
    assert_eq!(m.read_range(6, 1_000_000, 10).unwrap(), mails[5][1_000_000..1_000_010]);
    assert_eq!(m.read_range(3, 5, 1000).unwrap(), &mails[2][5..]);
    let st = m.status().unwrap();
    assert_eq!((st.messages, st.uidnext, st.unseen), (6, 7, 6));
    assert_eq!(st.psize_total, mails.iter().map(|m| m.len() as u64).sum::<u64>());
}

/// Physical and virtual sizes, and where the header ends.
pub fn sizes_and_header_length(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    let lf = m.append(&b"A: 1\nB: 2\n\nline\nline\n"[..], Default::default()).unwrap();
    let crlf = m.append(&b"A: 1\r\n\r\nline\r\n"[..], Default::default()).unwrap();
    let no_body = m.append(&b"A: 1\nB: 2\n"[..], Default::default()).unwrap();
    let r = m.record(lf).unwrap().unwrap();
    assert_eq!((r.psize, r.vsize, r.hdr_len), (21, 26, 11));
    assert_eq!(m.header(lf).unwrap(), b"A: 1\nB: 2\n\n");
    let r = m.record(crlf).unwrap().unwrap();
    assert_eq!((r.psize, r.vsize, r.hdr_len), (14, 14, 8));
    let r = m.record(no_body).unwrap().unwrap();
    assert_eq!(r.hdr_len, r.psize, "a mail without an empty line is all header");
}

/// STORE with +, - and replace, keywords, and a modseq per change.
pub fn flags_keywords_and_modseq(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    let uids: Vec<u32> = (0..3).map(|_| m.append(&b"x"[..], Default::default()).unwrap()).collect();
    let h0 = m.status().unwrap().highestmodseq;
    let r = m.store(&uids[..2], StoreMode::Add, Flags::SEEN | Flags::FLAGGED, &["$Label1"], None).unwrap();
    assert_eq!(r.changed, uids[..2]);
    assert_eq!(r.modseq, h0 + 1);
    let rec = m.record(uids[0]).unwrap().unwrap();
    assert_eq!(
        (rec.flags, rec.keywords.clone(), rec.modseq),
        ((Flags::SEEN | Flags::FLAGGED).bits(), vec!["$Label1".to_string()], h0 + 1)
    );
    assert_eq!(m.record(uids[2]).unwrap().unwrap().flags, 0);
    let r = m.store(&uids, StoreMode::Remove, Flags::FLAGGED, &["$Label1"], None).unwrap();
    assert_eq!(r.changed, uids[..2], "the third had nothing to remove");
    let r = m.store(&[uids[2]], StoreMode::Replace, Flags::ANSWERED, &["b", "a", "a"], None).unwrap();
    let rec = m.record(uids[2]).unwrap().unwrap();
    assert_eq!((rec.flags, rec.keywords.clone()), (Flags::ANSWERED.bits(), vec!["a".to_string(), "b".to_string()]));
    assert_eq!(rec.modseq, r.modseq);
    let noop = m.store(&uids[..1], StoreMode::Add, Flags::SEEN, &[], None).unwrap();
    assert_eq!((noop.modseq, noop.changed.len()), (0, 0), "no change, no modseq");
    assert_eq!(m.status().unwrap().highestmodseq, r.modseq);
    assert_eq!(m.status().unwrap().unseen, 1, "only the third lacks \\Seen");
}

/// CONDSTORE UNCHANGEDSINCE: mails changed after the given modseq are reported, not changed.
pub fn unchanged_since_reports_modified(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    let a = m.append(&b"a"[..], Default::default()).unwrap();
    let b = m.append(&b"b"[..], Default::default()).unwrap();
    let seen_at = m.status().unwrap().highestmodseq;
    m.store(&[b], StoreMode::Add, Flags::FLAGGED, &[], None).unwrap();
    let r = m.store(&[a, b], StoreMode::Add, Flags::SEEN, &[], Some(seen_at)).unwrap();
    assert_eq!(r.changed, [a]);
    assert_eq!(r.modified, [b]);
    assert_eq!(m.record(b).unwrap().unwrap().flags, Flags::FLAGGED.bits());
}

/// Expunges leave tombstones: a client that synced at M learns exactly what changed.
pub fn expunge_and_changes_since(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    let uids: Vec<u32> = (0..5).map(|_| m.append(&b"x"[..], Default::default()).unwrap()).collect();
    let synced = m.status().unwrap().highestmodseq;
    m.store(&[uids[1]], StoreMode::Add, Flags::DELETED, &[], None).unwrap();
    m.store(&[uids[3]], StoreMode::Add, Flags::SEEN, &[], None).unwrap();
    assert_eq!(m.expunge_deleted().unwrap(), [uids[1]]);
    assert_eq!(m.expunge(&[uids[4], 999]).unwrap(), [uids[4]]);
    let c = m.changes_since(synced).unwrap();
    assert_eq!(c.changed.iter().map(|r| r.uid).collect::<Vec<_>>(), [uids[3]]);
    assert_eq!(c.expunged, [uids[1], uids[4]]);
    let st = m.status().unwrap();
    assert_eq!(c.highestmodseq, st.highestmodseq);
    // The header values come from the same read as the changes.
    assert_eq!((c.uidvalidity, c.uidnext, c.incarnation), (st.uidvalidity, uids[4] + 1, st.incarnation));
    assert_ne!(c.incarnation, 0);
    assert_eq!(m.uids().unwrap(), [uids[0], uids[2], uids[3]]);
    assert_eq!(m.status().unwrap().messages, 3);
    assert!(matches!(m.open_body(uids[1]), Err(Error::NotFound(_))));
}

/// The same answers once the WAL has been applied to the shards and trimmed.
pub fn changes_since_after_trim(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    let uids: Vec<u32> = (0..4).map(|_| m.append(&b"x"[..], Default::default()).unwrap()).collect();
    let synced = m.status().unwrap().highestmodseq;
    m.store(&[uids[0]], StoreMode::Add, Flags::SEEN, &[], None).unwrap();
    m.expunge(&[uids[2]]).unwrap();
    let before = m.changes_since(synced).unwrap();
    m.apply_wal().unwrap();
    let after = m.changes_since(synced).unwrap();
    assert_eq!(before, after);
    assert_eq!(after.expunged, [uids[2]]);
    assert_eq!(after.changed.iter().map(|r| r.uid).collect::<Vec<_>>(), [uids[0]]);
    assert_eq!(m.changes_since(after.highestmodseq).unwrap().changed.len(), 0);
}

/// Regression: the Dovecot plugin syncs with `changes_since` alone and then reads records;
/// when `changes_since` left the view behind, a flag removed through one Dovecot was still
/// set in the other after its NOOP (caught by the two-instance Dovecot test).
pub fn changes_since_brings_the_view_along(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    let uid = m.append(&b"x"[..], Default::default()).unwrap();
    let other = other_process(store);
    let o = other.user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(o.record(uid).unwrap().unwrap().flags, 0);
    m.store(&[uid], StoreMode::Add, Flags::SEEN, &["$Done"], None).unwrap();
    let c = o.changes_since(0).unwrap();
    assert_eq!(c.changed.len(), 1);
    let rec = o.record(uid).unwrap().unwrap();
    assert_eq!((rec.flags, rec.keywords), (Flags::SEEN.bits(), vec!["$Done".to_string()]));
}

/// A copy refers to the same body; the body goes only with its last reference.
pub fn copy_shares_the_body(store: &MailStore, user: &str) {
    let (u, src) = mailbox(store, user, "INBOX");
    u.create_mailbox("Archive").unwrap();
    let dst = u.open_mailbox("Archive").unwrap();
    let uid =
        src.append(&b"Subject: keep\n\nme\n"[..], AppendOptions { flags: Flags::SEEN, ..Default::default() }).unwrap();
    let pairs = src.copy_to(&[uid, 4242], &dst).unwrap();
    assert_eq!(pairs, [(uid, 1)]);
    let (a, b) = (src.record(uid).unwrap().unwrap(), dst.record(1).unwrap().unwrap());
    assert_eq!(a.mail_guid, b.mail_guid, "no byte copy");
    assert_eq!(b.flags, Flags::SEEN.bits(), "flags are copied");
    src.expunge(&[uid]).unwrap();
    assert_eq!(body(&dst, 1), b"Subject: keep\n\nme\n", "the copy keeps the body alive");
    dst.expunge(&[1]).unwrap();
    let again = store.user(user).unwrap().open_mailbox("Archive").unwrap();
    assert!(again.uids().unwrap().is_empty());
}

/// MOVE: in the destination, gone from the source.
pub fn move_leaves_source_empty(store: &MailStore, user: &str) {
    let (u, src) = mailbox(store, user, "INBOX");
    u.create_mailbox("Trash").unwrap();
    let dst = u.open_mailbox("Trash").unwrap();
    let uids: Vec<u32> =
        (0..3).map(|i| src.append(format!("mail {i}").as_bytes(), Default::default()).unwrap()).collect();
    let pairs = src.move_to(&uids[..2], &dst).unwrap();
    assert_eq!(pairs.len(), 2);
    assert_eq!(src.uids().unwrap(), [uids[2]]);
    assert_eq!(dst.uids().unwrap(), [1, 2]);
    assert_eq!(body(&dst, 2), b"mail 1");
}

/// A second handle (another process, another host) sees exactly the same state, before and
/// after the WAL is applied.
pub fn reopen_sees_the_same_state(store: &MailStore, user: &str) {
    let (_, m) = mailbox(store, user, "INBOX");
    for i in 0..10u32 {
        let uid = m.append(format!("m{i}").as_bytes(), Default::default()).unwrap();
        if i % 3 == 0 {
            m.store(&[uid], StoreMode::Add, Flags::SEEN, &[&format!("k{i}")], None).unwrap();
        }
    }
    m.expunge(&[2, 5]).unwrap();
    let snapshot = |m: &Mailbox| (m.records(1..=u32::MAX).unwrap(), m.status().unwrap());
    let other = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(snapshot(&other), snapshot(&m));
    m.apply_wal().unwrap();
    let third = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(snapshot(&third), snapshot(&m));
    // An existing handle catches up incrementally.
    m.store(&[1], StoreMode::Add, Flags::DRAFT, &[], None).unwrap();
    assert!(other.sync().unwrap());
    assert_eq!(snapshot(&other), snapshot(&m));
    assert!(!other.sync().unwrap(), "nothing new");
}

/// Many shards (16 UIDs each here), the WAL applied often: the index stays exact.
pub fn sharded_mailbox_stays_consistent(store: &MailStore, user: &str) {
    let config = rados_mail::Config { shard_bits: 4, wal_apply_threshold: 3, ..store.config().clone() };
    let small = MailStore::new(store_pool(store), config);
    let (_, m) = mailbox(&small, user, "INBOX");
    let mut alive = BTreeSet::new();
    for i in 0..100u32 {
        let uid = m.append(format!("m{i}").as_bytes(), Default::default()).unwrap();
        alive.insert(uid);
        if i % 7 == 0 {
            m.expunge(&[uid - 1]).unwrap();
            alive.remove(&(uid - 1));
        }
        if i % 5 == 0 {
            m.store(&[uid], StoreMode::Add, Flags::FLAGGED, &[], None).unwrap();
        }
    }
    assert_eq!(m.uids().unwrap().into_iter().collect::<BTreeSet<_>>(), alive);
    let fresh = other_process(&small).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(fresh.records(1..=u32::MAX).unwrap(), m.records(1..=u32::MAX).unwrap());
    assert_eq!(fresh.status().unwrap(), m.status().unwrap());
    for uid in [1u32, 50, 100].into_iter().filter(|u| alive.contains(u)) {
        assert_eq!(body(&fresh, uid), format!("m{}", uid - 1).into_bytes());
    }
}

/// The pool under a store, to build another store with other settings.
fn store_pool(store: &MailStore) -> std::sync::Arc<dyn rados_mail::objstore::ObjectStore> {
    store.pool().clone()
}

/// Oversize mails and bad keywords are refused, and leave nothing behind.
pub fn bad_input_is_refused(store: &MailStore, user: &str) {
    let config = rados_mail::Config { max_mail_size: 1000, chunk_size: 300, ..store.config().clone() };
    let small = MailStore::new(store_pool(store), config);
    let (u, m) = mailbox(&small, user, "INBOX");
    assert!(matches!(m.append(&[b'x'; 1001][..], Default::default()), Err(Error::TooLarge(_))));
    m.append(&[b'x'; 1000][..], Default::default()).unwrap();
    let bad_kw = AppendOptions { keywords: vec!["has space".into()], ..Default::default() };
    assert!(matches!(m.append(&b"x"[..], bad_kw), Err(Error::InvalidInput(_))));
    assert!(matches!(m.store(&[1], StoreMode::Add, Flags::NONE, &["\\Seen"], None), Err(Error::InvalidInput(_))));
    let mails: Vec<String> =
        u.store().list_objects().unwrap().map(Result::unwrap).filter(|o| o.starts_with("mail.")).collect();
    let bodies: BTreeSet<&str> = mails.iter().map(|o| &o[..37]).collect();
    assert_eq!(bodies.len(), 1, "only the accepted mail has body objects: {mails:?}");
    assert_eq!(mails.len(), 4, "1,000 bytes in 300-byte chunks: {mails:?}");
}

/// Threads with their own handles append and flag at once: no UID twice, none lost.
pub fn concurrent_writers_in_one_process(store: &MailStore, user: &str) {
    const THREADS: u32 = 4;
    const EACH: u32 = 25;
    let (_, _m) = mailbox(store, user, "INBOX");
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let user = user.to_string();
            std::thread::spawn(move || {
                let m = store.user(&user).unwrap().open_mailbox("INBOX").unwrap();
                let mut mine = Vec::new();
                for i in 0..EACH {
                    let uid = m.append(format!("t{t} m{i}").as_bytes(), Default::default()).unwrap();
                    m.store(&[uid], StoreMode::Add, Flags::SEEN, &[&format!("t{t}")], None).unwrap();
                    mine.push(uid);
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<u32> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    all.sort_unstable();
    let expected: Vec<u32> = (1..=THREADS * EACH).collect();
    assert_eq!(all, expected, "UIDs unique and without gaps");
    let m = store.user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(m.status().unwrap().messages, THREADS * EACH);
    assert!(m.records(1..=u32::MAX).unwrap().iter().all(|r| r.flags == Flags::SEEN.bits() && r.keywords.len() == 1));
}

/// Reopening a mailbox that did not change costs one read of its head object, and one that
/// changed elsewhere costs the same one read while the WAL covers the change.
pub fn reopening_costs_one_read(store: &MailStore, user: &str) {
    use rados_mail::objstore::CountingStore;
    let counting = CountingStore::new(store_pool(store));
    let here = MailStore::new(std::sync::Arc::new(counting.clone()), store.config().clone());
    let elsewhere = MailStore::new(store_pool(store), store.config().clone()); // another process
    let (u, m) = mailbox(&here, user, "INBOX");
    for i in 0..5u32 {
        m.append(format!("m{i}").as_bytes(), Default::default()).unwrap();
    }
    drop(m);
    let before = counting.counts();
    let again = u.open_mailbox("INBOX").unwrap();
    let cost = counting.counts() - before;
    // One read of the mailbox list entry, one of the head.
    assert_eq!((cost.reads, cost.writes), (2, 0), "reopen: {cost:?}");
    // Known from a listing: one read, the head.
    let info = again.info().clone();
    let before = counting.counts();
    let by_info = u.open_mailbox_info(&info).unwrap();
    assert_eq!(counting.counts() - before, rados_mail::objstore::OpCounts { reads: 1, ..Default::default() });
    assert_eq!(by_info.uids().unwrap(), again.uids().unwrap());
    let before = counting.counts();
    assert!(!again.sync().unwrap());
    assert_eq!(counting.counts() - before, rados_mail::objstore::OpCounts { reads: 1, ..Default::default() });
    // A change made by another process arrives with that same single read.
    let there = elsewhere.user(user).unwrap().open_mailbox("INBOX").unwrap();
    there.store(&[3], StoreMode::Add, Flags::FLAGGED, &[], None).unwrap();
    let before = counting.counts();
    assert!(again.sync().unwrap());
    assert_eq!((counting.counts() - before).total(), 1);
    assert_eq!(again.record(3).unwrap().unwrap().flags, Flags::FLAGGED.bits());
}

/// Bodies written and read in chunks of 64 bytes: sizes around the chunk size come back
/// exactly, with the right sizes and crc.
pub fn chunk_boundaries_round_trip(store: &MailStore, user: &str) {
    let config = rados_mail::Config { chunk_size: 64, read_chunk: 64, ..store.config().clone() };
    let small = MailStore::new(store_pool(store), config);
    let (_, m) = mailbox(&small, user, "INBOX");
    for len in [0usize, 1, 63, 64, 65, 128, 129, 1000] {
        let mail: Vec<u8> = (0..len).map(|i| if i % 10 == 9 { b'\n' } else { b'a' + (i % 26) as u8 }).collect();
        let uid = m.append(&mail[..], Default::default()).unwrap();
        assert!(body(&m, uid) == mail, "{len} bytes");
        let rec = m.record(uid).unwrap().unwrap();
        assert_eq!(rec.psize, len as u64);
        assert_eq!(rec.vsize, (len + len / 10) as u64, "every LF counts one more byte");
        assert_eq!(rec.crc32, crc32fast::hash(&mail));
        assert_eq!(m.read_range(uid, 60, 10).unwrap(), mail[len.min(60)..len.min(70)]);
    }
}

/// A mail larger than one chunk spans several objects, reads back as one stream, and all of
/// its objects go when its last reference does.
pub fn multi_object_bodies(store: &MailStore, user: &str) {
    let config = rados_mail::Config { chunk_size: 1000, read_chunk: 300, write_in_flight: 2, ..store.config().clone() };
    let small = MailStore::new(store_pool(store), config);
    let (u, m) = mailbox(&small, user, "INBOX");
    let ns = u.store().clone();
    let mail_objects = || -> Vec<String> {
        let mut v: Vec<String> =
            ns.list_objects().unwrap().map(Result::unwrap).filter(|o| o.starts_with("mail.")).collect();
        v.sort();
        v
    };
    for len in [999usize, 1000, 1001, 2000, 2001, 10_500] {
        let mail: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let uid = m.append(&mail[..], Default::default()).unwrap();
        assert!(body(&m, uid) == mail, "{len} bytes");
        assert_eq!(m.read_range(uid, 990, 20).unwrap(), mail[990.min(len)..1010.min(len)], "across a chunk edge");
    }
    // 1 + 1 + 2 + 2 + 3 + 11 objects.
    assert_eq!(mail_objects().len(), 20);
    let big = m.record(6).unwrap().unwrap();
    let guid = rados_mail::Guid::from_slice(&big.mail_guid).unwrap();
    assert!(mail_objects().contains(&format!("mail.{guid}.000a")));
    m.expunge(&[1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(mail_objects(), Vec::<String>::new(), "every chunk object went with its mail");
}

/// A save cut short by an outage (after some of its chunks were written) is never visible;
/// what it left behind is reported by `check` as orphans, not as damage.
pub fn interrupted_save_is_invisible_and_found(store: &MailStore, user: &str) {
    use rados_mail::objstore::{FaultMode, FaultyStore};
    let faulty = FaultyStore::new(store_pool(store));
    let config = rados_mail::Config { chunk_size: 100, write_in_flight: 2, ..store.config().clone() };
    let flaky = MailStore::new(std::sync::Arc::new(faulty.clone()), config);
    let (u, m) = mailbox(&flaky, user, "INBOX");
    m.append(&b"Subject: ok\n\nfine\n"[..], Default::default()).unwrap();
    faulty.fail_after(4, FaultMode::Unavailable);
    let err = m.append(&[b'y'; 1000][..], Default::default()).unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
    faulty.heal();
    assert_eq!(m.uids().unwrap(), [1]);
    let elsewhere = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(elsewhere.uids().unwrap(), [1], "the partial mail is not visible anywhere");
    let report = rados_mail::check::check_user(&u).unwrap();
    assert_eq!((report.records, report.bodies), (1, 2), "{report:?}");
    assert_eq!(report.orphan_bodies.len(), 1, "{report:?}");
    assert!(!report.has_damage(), "{report:?}");
    assert_eq!(m.append(&b"again"[..], Default::default()).unwrap(), 2);
}

/// Appends, copies, moves and expunges leave nothing behind.
pub fn check_is_clean_after_normal_use(store: &MailStore, user: &str) {
    let config = rados_mail::Config { chunk_size: 50, ..store.config().clone() };
    let small = MailStore::new(store_pool(store), config);
    let (u, inbox) = mailbox(&small, user, "INBOX");
    u.create_mailbox("Other").unwrap();
    let other = u.open_mailbox("Other").unwrap();
    for i in 0..6u32 {
        inbox.append(format!("mail {i} {}", "z".repeat(i as usize * 40)).as_bytes(), Default::default()).unwrap();
    }
    inbox.copy_to(&[1, 2, 3], &other).unwrap();
    inbox.move_to(&[4], &other).unwrap();
    inbox.expunge(&[1, 5]).unwrap();
    other.expunge(&[2]).unwrap();
    let report = rados_mail::check::check_user(&u).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!((report.mailboxes, report.records), (2, 6));
    u.delete_mailbox("Other").unwrap();
    let report = rados_mail::check::check_user(&u).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.records, 3);
}

/// Bodies are immutable, so they are cached: a hit costs zero RADOS operations, in memory
/// and, after a restart, from the disk tier.
pub fn cache_hits_cost_no_rados_ops(store: &MailStore, user: &str) {
    let dir = std::env::temp_dir().join(format!("rm-cache-{user}"));
    let cache = rados_mail::cache::CacheConfig { disk_dir: Some(dir.clone()), ..Default::default() };
    let config = rados_mail::Config { cache, ..store.config().clone() };
    let mine = MailStore::new(store_pool(store), config.clone()); // private counters
    let (_, m) = mailbox(&mine, user, "INBOX");
    let mail = b"Subject: cache me\n\nbody\n";
    let uid = m.append(&mail[..], Default::default()).unwrap();
    assert_eq!(body(&m, uid), mail, "first read: a miss, from RADOS");
    let before = mine.stats();
    assert_eq!(body(&m, uid), mail);
    assert_eq!(m.read_range(uid, 9, 8).unwrap(), b"cache me");
    assert_eq!(m.header(uid).unwrap(), b"Subject: cache me\n\n");
    let after = mine.stats();
    assert_eq!(after.rados, before.rados, "cache hits cost no RADOS operation");
    assert_eq!(after.cache.memory_hits - before.cache.memory_hits, 3);
    // A "restarted" process: the disk tier answers, still without RADOS.
    let restarted = MailStore::new(store_pool(store), config);
    let m2 = restarted.user(user).unwrap().open_mailbox("INBOX").unwrap();
    m2.record(uid).unwrap(); // the records are read on first use
    let before = restarted.stats();
    assert_eq!(body(&m2, uid), mail);
    let after = restarted.stats();
    assert_eq!(after.rados, before.rados, "disk hit: no RADOS operation");
    assert_eq!(after.cache.disk_hits, 1);
    std::fs::remove_dir_all(&dir).ok();
}

/// A user's private dict lives in the user's namespace; the shared one is the same for all.
pub fn dicts_private_and_shared(store: &MailStore, user: &str) {
    let alice = store.user(user).unwrap().dict();
    let mut t = alice.transaction();
    t.set("priv/quota/messages", b"0").unwrap();
    t.commit().unwrap();
    let mut t = alice.transaction();
    t.atomic_inc("priv/quota/messages", 3).unwrap();
    assert_eq!(t.commit().unwrap(), rados_mail::dict::Committed::Applied);
    assert_eq!(alice.lookup("priv/quota/messages").unwrap().as_deref(), Some(&b"3"[..]));
    let other = store.user(&format!("{user}-other")).unwrap().dict();
    assert_eq!(other.lookup("priv/quota/messages").unwrap(), None, "private dicts are per user");
    let shared = store.shared_dict().unwrap();
    let key = format!("shared/test/{user}");
    let mut t = shared.transaction();
    t.set(&key, b"seen by all").unwrap();
    t.commit().unwrap();
    assert_eq!(other_process(store).shared_dict().unwrap().lookup(&key).unwrap().as_deref(), Some(&b"seen by all"[..]));
    assert!(matches!(alice.lookup(&key), Err(Error::InvalidInput(_))), "a shared key in a private dict");
}

fn wanting(uid: u32) -> AppendOptions {
    AppendOptions { uid: Some(uid), ..Default::default() }
}

/// Migrations (Dovecot's dsync) keep UIDs and GUIDs: a wanted UID is given when it is not
/// below UIDNEXT, else the next free one (never a UID below UIDNEXT, never one twice); a
/// given GUID is what the record shows, and copies keep it.
pub fn append_keeps_wanted_uids_and_guids(store: &MailStore, user: &str) {
    let (u, m) = mailbox(store, user, "INBOX");
    assert_eq!(m.append(&b"a"[..], wanting(5)).unwrap(), 5);
    assert_eq!(m.status().unwrap().uidnext, 6);
    assert_eq!(m.append(&b"b"[..], wanting(3)).unwrap(), 6, "below UIDNEXT: the next free UID");
    assert_eq!(m.append(&b"c"[..], wanting(6)).unwrap(), 7, "taken: the next free UID");
    assert_eq!(m.append(&b"d"[..], Default::default()).unwrap(), 8);
    let mails: Vec<(Box<dyn Read>, AppendOptions)> = vec![
        (Box::new(&b"e"[..]), wanting(20)),
        (Box::new(&b"f"[..]), wanting(20)),
        (Box::new(&b"g"[..]), wanting(30)),
        (Box::new(&b"h"[..]), Default::default()),
    ];
    assert_eq!(m.append_many(mails).unwrap(), [20, 21, 30, 31]);
    assert_eq!(m.uids().unwrap(), [5, 6, 7, 8, 20, 21, 30, 31]);
    assert!(matches!(m.append(&b"x"[..], wanting(0)), Err(Error::InvalidInput(_))));
    assert!(matches!(m.append(&b"x"[..], wanting(u32::MAX)), Err(Error::TooLarge(_))));
    assert_eq!(m.uids().unwrap().len(), 8, "refused before anything was written");

    let given = Guid([0x5a; 16]);
    let uid = m.append(&b"Subject: g\n\ng\n"[..], AppendOptions { guid: Some(given), ..Default::default() }).unwrap();
    let rec = m.record(uid).unwrap().unwrap();
    assert_eq!(rec.guid(), given.0, "the given GUID is the mail's");
    assert_ne!(rec.mail_guid, given.0.to_vec(), "the body has its own");
    assert_eq!(body(&m, uid), b"Subject: g\n\ng\n");
    let plain = m.record(5).unwrap().unwrap();
    assert_eq!((plain.guid(), plain.given_guid.len()), (&plain.mail_guid[..], 0));
    u.create_mailbox("Copy").unwrap();
    let c = u.open_mailbox("Copy").unwrap();
    let pairs = m.copy_to(&[uid], &c).unwrap();
    assert_eq!(c.record(pairs[0].1).unwrap().unwrap().guid(), given.0, "copies keep it");
    let other = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(other.records(1..=u32::MAX).unwrap(), m.records(1..=u32::MAX).unwrap());
}

/// Copies and moves with wanted UIDs (dsync renumbers mails with a move inside one
/// mailbox) and with flags of their own.
pub fn copy_and_move_with_wanted_uids_and_flags(store: &MailStore, user: &str) {
    let (u, src) = mailbox(store, user, "INBOX");
    u.create_mailbox("Dest").unwrap();
    let dst = u.open_mailbox("Dest").unwrap();
    let uids: Vec<u32> = (0..3)
        .map(|i| {
            let options = AppendOptions { flags: Flags::FLAGGED, keywords: vec!["old".into()], ..Default::default() };
            src.append(format!("m{i}").as_bytes(), options).unwrap()
        })
        .collect();
    let options = CopyOptions { uids: vec![7, 5, 9], flags: Some((Flags::SEEN, vec!["$new".into(), "a".into()])) };
    let pairs = src.copy_to_with(&[uids[2], uids[0], uids[2]], &dst, &options).unwrap();
    assert_eq!(pairs, [(uids[0], 5), (uids[2], 7)], "a repeated UID is copied once, with its first wanted UID");
    let rec = dst.record(5).unwrap().unwrap();
    assert_eq!((rec.flags, rec.keywords.clone()), (Flags::SEEN.bits(), vec!["$new".to_string(), "a".to_string()]));
    assert_eq!(body(&dst, 7), b"m2");
    assert_eq!(src.record(uids[0]).unwrap().unwrap().flags, Flags::FLAGGED.bits(), "the source is unchanged");
    let pairs = src.copy_to_with(&[uids[1]], &dst, &CopyOptions { uids: vec![6], flags: None }).unwrap();
    assert_eq!(pairs, [(uids[1], 8)], "below UIDNEXT: the next free UID");
    assert_eq!(dst.record(8).unwrap().unwrap().keywords, ["old"], "without flags, the source's");
    let bad = CopyOptions { uids: vec![1, 2], flags: None };
    assert!(matches!(src.copy_to_with(&[uids[0]], &dst, &bad), Err(Error::InvalidInput(_))));

    // A move inside one mailbox renumbers a mail.
    let pairs = src.move_to_with(&[uids[1]], &src, &CopyOptions { uids: vec![10], flags: None }).unwrap();
    assert_eq!(pairs, [(uids[1], 10)]);
    assert_eq!(src.uids().unwrap(), [uids[0], uids[2], 10]);
    assert_eq!(body(&src, 10), b"m1");
    assert_eq!(src.status().unwrap().uidnext, 11);
}

/// UIDNEXT and HIGHESTMODSEQ only go up; UIDVALIDITY is set in the header and the list;
/// every such change is a change set of its own that other handles see.
pub fn update_raises_header_values(store: &MailStore, user: &str) {
    let (u, m) = mailbox(store, user, "INBOX");
    m.append(&b"a"[..], Default::default()).unwrap();
    let before = m.status().unwrap();
    let other = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert!(m.update(&MailboxUpdate { min_uidnext: Some(40), ..Default::default() }).unwrap());
    let st = m.status().unwrap();
    assert_eq!((st.uidnext, st.highestmodseq, st.messages), (40, before.highestmodseq + 1, 1));
    assert!(!m.update(&MailboxUpdate { min_uidnext: Some(10), ..Default::default() }).unwrap(), "never lower");
    assert!(m.update(&MailboxUpdate { min_highestmodseq: Some(100), ..Default::default() }).unwrap());
    assert_eq!(m.status().unwrap().highestmodseq, 100);
    assert!(!m.update(&MailboxUpdate { min_highestmodseq: Some(50), ..Default::default() }).unwrap());
    assert_eq!(m.append(&b"b"[..], wanting(2)).unwrap(), 40, "UIDs below the raised UIDNEXT are never given");
    assert_eq!(m.record(40).unwrap().unwrap().modseq, 101);
    let changes = m.changes_since(before.highestmodseq).unwrap();
    assert_eq!(changes.changed.iter().map(|r| r.uid).collect::<Vec<_>>(), [40]);
    assert!(other.sync().unwrap());
    assert_eq!(other.status().unwrap(), m.status().unwrap());

    let uv = before.uidvalidity + 1000;
    assert!(u.update_mailbox(&m, &MailboxUpdate { uidvalidity: Some(uv), ..Default::default() }).unwrap());
    assert_eq!(m.status().unwrap().uidvalidity, uv);
    assert_eq!(u.mailbox_info("INBOX").unwrap().uidvalidity, uv, "the list's copy follows");
    assert_eq!(m.uids().unwrap(), [1, 40], "mails and UIDs stay");
    assert!(u.create_mailbox("Later").unwrap().uidvalidity > uv, "later mailboxes get larger ones");
    assert!(matches!(
        m.update(&MailboxUpdate { uidvalidity: Some(0), ..Default::default() }),
        Err(Error::InvalidInput(_))
    ));

    // UIDNEXT raised into another shard: everything still loads.
    m.update(&MailboxUpdate { min_uidnext: Some((1 << 15) + 3), ..Default::default() }).unwrap();
    let far = m.append(&b"far"[..], Default::default()).unwrap();
    assert_eq!(far, (1 << 15) + 3);
    m.apply_wal().unwrap();
    let fresh = other_process(store).user(user).unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(fresh.records(1..=u32::MAX).unwrap(), m.records(1..=u32::MAX).unwrap());
    assert_eq!(fresh.status().unwrap(), m.status().unwrap());
    assert_eq!(body(&fresh, far), b"far");
}

/// A migration creates mailboxes with the GUID and UIDVALIDITY they had elsewhere.
pub fn create_with_given_guid_and_uidvalidity(store: &MailStore, user: &str) {
    let u = store.user(user).unwrap();
    let guid = Guid([0xc3; 16]);
    let info = u.create_mailbox_with("Moved", &CreateOptions { guid: Some(guid), uidvalidity: Some(1234) }).unwrap();
    assert_eq!((info.guid, info.uidvalidity), (guid, 1234));
    let m = u.open_mailbox("Moved").unwrap();
    assert_eq!(m.status().unwrap().uidvalidity, 1234);
    assert_eq!(u.mailbox_by_guid(&guid).unwrap().name, "Moved");
    let again = u.create_mailbox_with("Other", &CreateOptions { guid: Some(guid), uidvalidity: None });
    assert!(matches!(again, Err(Error::AlreadyExists(_))), "{again:?}");
    assert!(matches!(u.mailbox_info("Other"), Err(Error::NotFound(_))));
    let zero = u.create_mailbox_with("Zero", &CreateOptions { guid: None, uidvalidity: Some(0) });
    assert!(matches!(zero, Err(Error::InvalidInput(_))));
    let only_uv =
        u.create_mailbox_with("High", &CreateOptions { guid: None, uidvalidity: Some(u32::MAX - 5) }).unwrap();
    assert_eq!(only_uv.uidvalidity, u32::MAX - 5);
    assert_eq!(u.create_mailbox("Next").unwrap().uidvalidity, u32::MAX - 4, "the counter moved up");
    assert!(check_user_clean(&u));
}

fn check_user_clean(u: &User) -> bool {
    rados_mail::check::check_user(u).unwrap().is_clean()
}

/// A mailbox deleted and created again with the same GUID (a migration restoring it) is
/// another mailbox: handles and cached views of the old one must not show its mails.
pub fn recreated_guid_is_another_mailbox(store: &MailStore, user: &str) {
    let u = store.user(user).unwrap();
    let guid = Guid([0x7e; 16]);
    let options = CreateOptions { guid: Some(guid), uidvalidity: Some(777) };
    u.create_mailbox_with("Box", &options).unwrap();
    let old = u.open_mailbox("Box").unwrap();
    for i in 0..3 {
        old.append(format!("old {i}").as_bytes(), Default::default()).unwrap();
    }
    old.store(&[1], StoreMode::Add, Flags::SEEN, &[], None).unwrap();
    let first = old.status().unwrap();
    let remote = other_process(store).user(user).unwrap().open_mailbox("Box").unwrap();
    assert_eq!(remote.uids().unwrap(), [1, 2, 3]);
    u.delete_mailbox("Box").unwrap();
    u.create_mailbox_with("Box", &options).unwrap();
    let new = u.open_mailbox("Box").unwrap();
    assert_eq!(new.uids().unwrap(), Vec::<u32>::new(), "this process's cached view is not reused");
    assert_ne!(new.status().unwrap().incarnation, first.incarnation);
    assert_eq!(old.status().unwrap().messages, 0, "an old handle sees the new mailbox");
    assert_eq!(old.uids().unwrap(), Vec::<u32>::new());
    assert_eq!(new.append(&b"new"[..], Default::default()).unwrap(), 1);
    for _ in 0..4 {
        new.store(&[1], StoreMode::Add, Flags::FLAGGED, &[], None).unwrap();
        new.store(&[1], StoreMode::Remove, Flags::FLAGGED, &[], None).unwrap();
    }
    assert!(new.status().unwrap().highestmodseq > first.highestmodseq, "past the old modseqs");
    // Another process's view of the old mailbox, now behind a newer one of the same GUID.
    assert!(remote.sync().unwrap());
    assert_eq!(remote.records(1..=u32::MAX).unwrap(), new.records(1..=u32::MAX).unwrap());
    assert_eq!(remote.status().unwrap(), new.status().unwrap());
    assert_eq!(body(&remote, 1), b"new");
    assert!(check_user_clean(&u));
}

/// A mailbox that never had a mail can take another GUID (Dovecot creates INBOX on first
/// use; dsync then adopts the GUID of the INBOX it syncs with). Its UIDVALIDITY and
/// HIGHESTMODSEQ stay; handles of the old GUID fail; a mailbox with mails refuses.
pub fn change_guid_of_a_never_used_mailbox(store: &MailStore, user: &str) {
    let (u, old) = mailbox(store, user, "INBOX");
    u.subscribe("INBOX").unwrap();
    u.set_special_use("INBOX", &["\\Sent"]).unwrap();
    for _ in 0..3 {
        old.update(&MailboxUpdate {
            min_highestmodseq: Some(old.status().unwrap().highestmodseq + 1),
            ..Default::default()
        })
        .unwrap();
    }
    let before = u.mailbox_info("INBOX").unwrap();
    let st = old.status().unwrap();
    let guid = Guid([0x42; 16]);
    let info = u.change_mailbox_guid("inbox", &guid).unwrap();
    assert_eq!(info, MailboxInfo { guid, ..before.clone() });
    assert_eq!(u.mailbox_info("INBOX").unwrap(), info);
    assert_eq!(u.mailbox_by_guid(&guid).unwrap().name, "INBOX");
    assert!(matches!(u.mailbox_by_guid(&before.guid), Err(Error::NotFound(_))));
    assert_eq!(u.subscriptions("*").unwrap(), ["INBOX"]);
    let new = u.open_mailbox("INBOX").unwrap();
    let now = new.status().unwrap();
    assert_eq!((now.uidvalidity, now.highestmodseq, now.uidnext), (st.uidvalidity, st.highestmodseq, 1));
    assert!(matches!(old.append(&b"late"[..], Default::default()), Err(Error::NotFound(_))), "the old one is gone");
    assert_eq!(u.change_mailbox_guid("INBOX", &guid).unwrap(), info, "already so: nothing to do");

    assert_eq!(new.append(&b"a mail"[..], Default::default()).unwrap(), 1);
    let used = u.change_mailbox_guid("INBOX", &Guid([0x43; 16]));
    assert!(matches!(used, Err(Error::InvalidInput(_))), "{used:?}");
    u.create_mailbox("Other").unwrap();
    let taken = u.change_mailbox_guid("Other", &guid);
    assert!(matches!(taken, Err(Error::AlreadyExists(_))), "{taken:?}");
    assert!(matches!(u.change_mailbox_guid("Nope", &Guid([1; 16])), Err(Error::NotFound(_))));
    assert_eq!(body(&new, 1), b"a mail");
    assert!(check_user_clean(&u), "no head left behind");
}

/// A mail a mail plugin transforms (Dovecot's mail_crypt, zlib; issue 14): the stored bytes
/// are the plugin's output, and the sizes, header length and delivery key are the plain
/// mail's. An encryption differs on every attempt, so a redelivery is recognised by the
/// plain mail: stored once. Copies keep the figures; the header is no byte range.
pub fn transformed_mail_keeps_the_plain_figures(store: &MailStore, user: &str) {
    let (u, m) = mailbox(store, user, "INBOX");
    let plain = b"Return-Path: <a@example.org>\nFrom: a@example.org\nSubject: x\n\nsecret\n".to_vec();
    // A stand-in for encryption: a header that differs per attempt, then the bytes xored.
    let transform = |attempt: u8| -> Vec<u8> {
        let mut out = b"XFORM".to_vec();
        out.push(attempt);
        out.extend(plain.iter().map(|b| b ^ 0x5a));
        out
    };
    let deliver = |attempt: u8| {
        let mut app = m.appender(None);
        app.deliver(None).unwrap();
        app.transformed().unwrap();
        for piece in plain.chunks(5) {
            app.write_plain(piece).unwrap();
        }
        app.write(&transform(attempt)).unwrap();
        assert_eq!((app.mail_len(), app.len()), (plain.len() as u64, plain.len() as u64 + 6));
        let mut txn = Transaction::new(ModseqSteps::Dovecot);
        txn.save(app.finish().unwrap(), AppendOptions::default()).unwrap();
        m.commit(txn).unwrap()
    };
    let first = deliver(1);
    let uid = first.saved[0];
    let again = deliver(2);
    assert_eq!((again.saved[0], again.delivered_before.clone()), (uid, vec![0]), "stored once");
    assert_eq!(m.uids().unwrap(), vec![uid]);

    let rec = m.record(uid).unwrap().unwrap();
    let hdr_len = plain.windows(2).position(|w| w == b"\n\n").unwrap() as u64 + 2;
    assert_eq!(rec.psize, plain.len() as u64 + 6, "psize counts the stored bytes");
    assert_eq!(rec.plain_psize, Some(plain.len() as u64));
    assert_eq!(rec.mail_psize(), plain.len() as u64);
    assert_eq!(rec.vsize, plain.len() as u64 + plain.iter().filter(|&&b| b == b'\n').count() as u64);
    assert_eq!(rec.hdr_len, hdr_len);
    assert_eq!(body(&m, uid), transform(1), "the body is what was stored");
    assert!(matches!(m.header(uid), Err(Error::InvalidInput(_))), "no header range of a transformed body");

    u.create_mailbox("Archive").unwrap();
    let dst = u.open_mailbox("Archive").unwrap();
    assert_eq!(m.copy_to(&[uid], &dst).unwrap(), [(uid, 1)]);
    assert_eq!(dst.record(1).unwrap().unwrap().plain_psize, Some(plain.len() as u64));

    // Plain bytes only after transformed(), and transformed() only before any write.
    let mut app = m.appender(None);
    assert!(matches!(app.write_plain(b"x"), Err(Error::InvalidInput(_))));
    let mut app2 = m.appender(None);
    app2.write(b"x").unwrap();
    assert!(matches!(app2.transformed(), Err(Error::InvalidInput(_))));
    app = m.appender(None);
    app.write(b"Subject: plain\n\n").unwrap();
    let mut txn = Transaction::new(ModseqSteps::Dovecot);
    txn.save(app.finish().unwrap(), AppendOptions::default()).unwrap();
    let plain_uid = m.commit(txn).unwrap().saved[0];
    assert_eq!(m.record(plain_uid).unwrap().unwrap().plain_psize, None);
}

/// Regression (found by the Dovecot test of mail_crypt copies, issue 14): dropping a
/// reference read only the body's first two `ref/` keys and took "ours is not among them"
/// for "dropped before". With three references or more, a mailbox whose key sorted after
/// the first two (its GUID is larger) left its reference behind on every expunge or MOVE:
/// a stale reference for `check`, and a body that could never be deleted.
pub fn expunge_drops_a_reference_past_the_first_two(store: &MailStore, user: &str) {
    let u = store.user(user).unwrap();
    let boxes: Vec<Mailbox> = [("A", 0x11u8), ("B", 0x22), ("C", 0x33)]
        .iter()
        .map(|(name, g)| {
            u.create_mailbox_with(name, &CreateOptions { guid: Some(Guid([*g; 16])), uidvalidity: None }).unwrap();
            u.open_mailbox(name).unwrap()
        })
        .collect();
    // Saved into the last mailbox: its key sorts after the two others.
    let uid = boxes[2].append(&b"Subject: shared\n\nthrice\n"[..], Default::default()).unwrap();
    boxes[2].copy_to(&[uid], &boxes[0]).unwrap();
    boxes[2].copy_to(&[uid], &boxes[1]).unwrap();
    boxes[2].expunge(&[uid]).unwrap();
    let report = rados_mail::check::check_user(&u).unwrap();
    assert!(report.is_clean(), "{report:?}");
    boxes[0].expunge(&[1]).unwrap();
    boxes[1].expunge(&[1]).unwrap();
    let report = rados_mail::check::check_user(&u).unwrap();
    assert!(report.is_clean(), "the body went with its last reference: {report:?}");
}
