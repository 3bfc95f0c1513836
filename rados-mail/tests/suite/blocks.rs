//! Records read by block through the record cache (issue 15, item 3), run against every
//! backend: a view no longer holds its mailbox's records, it reads the blocks of UIDs it
//! needs and lays its WAL changes over them. These cases check that a cached block never
//! serves a state older than the view: changes applied to the shards and trimmed from the
//! WAL by another process, blocks read from a shard newer than the view, and no cache at
//! all (`record_cache_records: 0`).

use rados_mail::{Config, Flags, MailStore, StoreMode};

use super::{mailbox, store_pool};

/// Generates one `#[test]` per block case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! block_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in blocks $make;
            blocks_follow_changes_trimmed_elsewhere, blocks_newer_than_the_view_serve_and_plan,
            blocks_without_a_record_cache,
        );
    };
}

/// Small shards and blocks (16 UIDs), the WAL applied and trimmed every 2 commits.
fn small(store: &MailStore, cache: usize) -> MailStore {
    let config =
        Config { shard_bits: 4, wal_apply_threshold: 2, record_cache_records: cache, ..store.config().clone() };
    MailStore::new(store_pool(store), config)
}

fn flags(m: &rados_mail::Mailbox, uid: u32) -> Option<u32> {
    m.record(uid).unwrap().map(|r| r.flags)
}

/// A process caches blocks; another changes mails in them, and the WAL is applied and
/// trimmed past the first process's view: after a sync, the first process reads the
/// blocks again and sees every change, in its records and in its changes since.
pub fn blocks_follow_changes_trimmed_elsewhere(store: &MailStore, user: &str) {
    let (here, there) = (small(store, 1000), small(store, 1000));
    let (_, a) = mailbox(&here, user, "INBOX");
    for i in 0..40 {
        a.append(format!("m{i}").as_bytes(), Default::default()).unwrap();
    }
    let synced = a.changes_since(0).unwrap().highestmodseq;
    assert_eq!((flags(&a, 5), flags(&a, 20), flags(&a, 33)), (Some(0), Some(0), Some(0)), "blocks 0, 1, 2 cached");
    let b = there.user(user).unwrap().open_mailbox("INBOX").unwrap();
    for round in 0..6u32 {
        b.store(&[5, 20], StoreMode::Replace, Flags::from_bits(round % 2 + 1), &[], None).unwrap();
    }
    b.expunge(&[33]).unwrap();
    b.store(&[6], StoreMode::Add, Flags::FLAGGED, &["$k"], None).unwrap();
    b.apply_wal().unwrap();
    let b_state = (flags(&b, 5), flags(&b, 20), flags(&b, 33), flags(&b, 6));
    assert_eq!(b_state, (Some(2), Some(2), None, Some(Flags::FLAGGED.bits())));
    assert!(a.sync().unwrap());
    assert_eq!((flags(&a, 5), flags(&a, 20), flags(&a, 33), flags(&a, 6)), b_state);
    assert_eq!(a.record(6).unwrap().unwrap().keywords, vec!["$k".to_string()]);
    let since = a.changes_since(synced).unwrap();
    assert_eq!(since.changed.iter().map(|r| r.uid).collect::<Vec<_>>(), vec![5, 6, 20]);
    assert_eq!(since.expunged, vec![33]);
    assert_eq!(a.uids().unwrap().len(), 39);
    assert_eq!(a.status().unwrap().unseen, 39, "none is \\Seen");
}

/// A block read from a shard applied past the view (another process applied its WAL) may
/// be newer than the view: reads show the newer record, and a plan made on it cannot
/// commit on the old header: it re-reads the head and plans again, keeping both changes.
pub fn blocks_newer_than_the_view_serve_and_plan(store: &MailStore, user: &str) {
    let (here, there) = (small(store, 1000), small(store, 1000));
    let (_, a) = mailbox(&here, user, "INBOX");
    for i in 0..20 {
        a.append(format!("m{i}").as_bytes(), Default::default()).unwrap();
    }
    a.apply_wal().unwrap();
    let b = there.user(user).unwrap().open_mailbox("INBOX").unwrap();
    b.store(&[3], StoreMode::Add, Flags::SEEN, &["$b"], None).unwrap();
    b.apply_wal().unwrap();
    // `a` did not sync: its view is older than the shard it reads now.
    let rec = a.record(3).unwrap().unwrap();
    assert_eq!((rec.flags, rec.keywords.clone()), (Flags::SEEN.bits(), vec!["$b".to_string()]), "newer is fine");
    let done = a.store(&[3, 4], StoreMode::Add, Flags::FLAGGED, &[], None).unwrap();
    assert_eq!(done.changed, vec![3, 4]);
    for m in [&a, &b] {
        m.sync().unwrap();
        let rec = m.record(3).unwrap().unwrap();
        assert_eq!(rec.flags, (Flags::SEEN | Flags::FLAGGED).bits());
        assert_eq!(rec.keywords, vec!["$b".to_string()]);
        assert_eq!(rec.modseq, done.modseq);
    }
}

/// With no record cache every read goes to RADOS, and the answers are the same.
pub fn blocks_without_a_record_cache(store: &MailStore, user: &str) {
    let none = small(store, 0);
    let (_, m) = mailbox(&none, user, "INBOX");
    for i in 0..40 {
        m.append(format!("m{i}").as_bytes(), Default::default()).unwrap();
    }
    let synced = m.changes_since(0).unwrap().highestmodseq;
    m.store(&[1, 17, 40], StoreMode::Add, Flags::DELETED, &["$x"], None).unwrap();
    assert_eq!(m.expunge_deleted().unwrap(), vec![1, 17, 40]);
    let since = m.changes_since(synced).unwrap();
    assert!(since.changed.is_empty());
    assert_eq!(since.expunged, vec![1, 17, 40]);
    assert_eq!(m.records(15..=18).unwrap().iter().map(|r| r.uid).collect::<Vec<_>>(), vec![15, 16, 18]);
    let before = none.stats().rados.reads;
    assert_eq!(flags(&m, 2), Some(0));
    assert_eq!(flags(&m, 3), Some(0));
    assert_eq!(none.stats().rados.reads - before, 2, "one read per record: nothing kept");
}
