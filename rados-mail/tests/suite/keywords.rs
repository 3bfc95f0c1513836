//! Keyword cases: the cost of storing keywords stays the same batch after batch, and a
//! mailbox holds at most `max_keywords` distinct keywords.
//!
//! The bug (issue 14): 10,000 keywords stored on one mail in batches of 500 through
//! Dovecot were all accepted, and each batch took longer than the one before (0.64 s at
//! first, 8.3 s by the end). Dovecot's log counts one modseq per keyword, and the library
//! numbered a transaction the same way by writing one WAL entry per keyword, each with the
//! mail's whole record: a batch of 500 on a mail with N keywords wrote 500 records of up to
//! N + 500 keywords. The steps now keep their modseqs but share one WAL entry, and a
//! mailbox's distinct keywords are bounded.

use std::collections::BTreeSet;
use std::sync::Arc;

use rados_mail::objstore::{CountingStore, ObjectStore, OpCounts};
use rados_mail::{AppendOptions, Config, Error, Flags, MailStore, Mailbox, ModseqSteps, StoreMode, Transaction};

use super::txn::SlowHeads;
use super::{mailbox, store_pool};

/// Generates one `#[test]` per keyword case; `$make` is `fn(&str) -> (MailStore, String)`.
#[macro_export]
macro_rules! keyword_cases {
    ($make:expr) => {
        $crate::mail_cases!(@cases_in keywords $make;
            keyword_batches_cost_the_same, keyword_limit_per_mailbox, keyword_limit_in_a_group_commit,
        );
    };
}

/// The WAL entries in the head object `head`: key and encoded size.
fn wal(objects: &Arc<dyn ObjectStore>, head: &str) -> Vec<(String, usize)> {
    let page = objects.omap_range(head, "", "w/", 10_000).unwrap();
    assert!(!page.more);
    page.entries.into_iter().map(|(k, v)| (k, v.len())).collect()
}

fn names(from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("k{i:04}")).collect()
}

fn add_keywords(m: &Mailbox, uid: u32, names: &[String]) -> rados_mail::Committed {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut txn = Transaction::new(ModseqSteps::Dovecot);
    txn.update_keywords(&[uid], StoreMode::Add, &refs).unwrap();
    m.commit(txn).unwrap()
}

/// Batches of 100 keywords on one mail, numbered as Dovecot counts them (one modseq per
/// keyword): every batch costs the same RADOS operations and writes one WAL entry, which
/// grows by exactly the batch's names (the mail's record carries its keywords), where it
/// wrote one entry per keyword, each with the whole record.
pub fn keyword_batches_cost_the_same(store: &MailStore, user: &str) {
    const BATCH: usize = 100;
    const BATCHES: usize = 8;
    let counting = CountingStore::new(store_pool(store));
    // The WAL is not applied meanwhile (that would add operations to one batch).
    let config = Config { max_keywords: 10_000, wal_apply_threshold: 1_000, ..store.config().clone() };
    let here = MailStore::new(Arc::new(counting.clone()), config);
    let (u, m) = mailbox(&here, user, "INBOX");
    let uid = m.append(&b"Subject: k\n\nk\n"[..], AppendOptions::default()).unwrap();
    // The records are in the view from here on (the first batch reads no shard).
    m.store(&[uid], StoreMode::Add, Flags::SEEN, &[], None).unwrap();
    // Two batches first, so that every measured one has modseqs of the same encoded
    // length (protobuf varints: 2 bytes from 128 to 16,383).
    add_keywords(&m, uid, &names(9_000, 2 * BATCH));
    let head = format!("mbox.{}", m.info().guid);
    let mut rows: Vec<(OpCounts, usize, usize)> = Vec::new();
    for b in 0..BATCHES {
        let before_wal: BTreeSet<String> = wal(u.store(), &head).into_iter().map(|(k, _)| k).collect();
        let before = counting.counts();
        let done = add_keywords(&m, uid, &names(b * BATCH, BATCH));
        let ops = counting.counts() - before;
        assert_eq!(done.last_modseq - done.first_modseq + 1, BATCH as u64, "one modseq per keyword");
        let added: Vec<(String, usize)> =
            wal(u.store(), &head).into_iter().filter(|(k, _)| !before_wal.contains(k)).collect();
        rows.push((ops, added.len(), added.iter().map(|(_, n)| n).sum()));
    }
    for (b, (ops, entries, bytes)) in rows.iter().enumerate() {
        eprintln!("batch {b}: {ops:?}, {entries} WAL entries, {bytes} bytes");
    }
    for (b, row) in rows.iter().enumerate() {
        assert_eq!(row.0, rows[0].0, "operations of batch {b}");
        assert_eq!(row.1, 1, "WAL entries written by batch {b}");
        if b > 0 {
            // Each name is 5 bytes plus 2 of protobuf framing in the record.
            assert_eq!(row.2 - rows[b - 1].2, BATCH * 7, "WAL bytes of batch {b} over batch {}", b - 1);
        }
    }
    let rec = m.record(uid).unwrap().unwrap();
    let mut want = names(0, BATCH * BATCHES);
    want.extend(names(9_000, 2 * BATCH));
    assert_eq!(rec.keywords, want);
}

fn refused(r: rados_mail::Result<impl std::fmt::Debug>) {
    match r {
        Err(Error::KeywordLimit { limit: 10, .. }) => {}
        other => panic!("expected KeywordLimit, got {other:?}"),
    }
}

/// At most `max_keywords` distinct names per mailbox: a change that needs more fails and
/// changes nothing, names in use stay usable, a new mail with a new name is refused, every
/// process sees the same limit, and removing names makes room.
pub fn keyword_limit_per_mailbox(store: &MailStore, user: &str) {
    let config = Config { max_keywords: 10, ..store.config().clone() };
    let here = MailStore::new(store_pool(store), config.clone());
    let (_u, m) = mailbox(&here, user, "INBOX");
    let kw = |names: &[&str]| AppendOptions {
        keywords: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let a = m.append(&b"a"[..], kw(&["k0000", "k0001"])).unwrap();
    let b = m.append(&b"b"[..], AppendOptions::default()).unwrap();
    add_keywords(&m, b, &names(2, 8));
    assert_eq!(m.changes_since(0).unwrap().keywords, 10);

    // One name too many, with a flag change in the same transaction: nothing is applied.
    let hms = m.status().unwrap().highestmodseq;
    let mut txn = Transaction::new(ModseqSteps::Dovecot);
    txn.update_flags(&[a], StoreMode::Add, Flags::SEEN);
    txn.update_keywords(&[a], StoreMode::Add, &["k0002", "new"]).unwrap();
    refused(m.commit(txn));
    let rec = m.record(a).unwrap().unwrap();
    assert_eq!((rec.flags, rec.keywords), (0, vec!["k0000".to_string(), "k0001".to_string()]));
    assert_eq!(m.status().unwrap().highestmodseq, hms);

    // Names in use are fine at the limit; a new mail with a new name is refused.
    m.store(&[a], StoreMode::Add, Flags::NONE, &["k0009"], None).unwrap();
    refused(m.append(&b"c"[..], kw(&["new"])));
    assert_eq!(m.status().unwrap().messages, 2);

    // Another process sees the same limit.
    let there = MailStore::new(store_pool(store), config).user(user).unwrap().open_mailbox("INBOX").unwrap();
    refused(there.store(&[b], StoreMode::Add, Flags::NONE, &["other"], None));

    // Removing names from every mail that had them makes room.
    m.store(&[b], StoreMode::Remove, Flags::NONE, &["k0002", "k0003"], None).unwrap();
    assert_eq!(m.changes_since(0).unwrap().keywords, 8);
    there.store(&[b], StoreMode::Add, Flags::NONE, &["other"], None).unwrap();
    assert_eq!(there.changes_since(0).unwrap().keywords, 9);
}

/// A group commit (threads of one process saving into one mailbox while a commit is in
/// flight, committed in one write) in which some new mails would take the mailbox past its
/// keyword limit: those fail alone, the others are stored.
pub fn keyword_limit_in_a_group_commit(store: &MailStore, user: &str) {
    let slow = Arc::new(SlowHeads(store_pool(store), Default::default()));
    let here = MailStore::new(slow, Config { max_keywords: 3, ..store.config().clone() });
    let (_u, m) = mailbox(&here, user, "INBOX");
    let barrier = std::sync::Barrier::new(8);
    let results: Vec<rados_mail::Result<rados_mail::Committed>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (m, barrier) = (&m, &barrier);
                s.spawn(move || {
                    let mut app = m.appender(None);
                    app.write(format!("Subject: {i}\n\nmail {i}\n").as_bytes()).unwrap();
                    let mail = app.finish().unwrap();
                    let mut txn = Transaction::new(ModseqSteps::Dovecot);
                    txn.save(mail, AppendOptions { keywords: vec![format!("$k{i}")], ..Default::default() }).unwrap();
                    barrier.wait();
                    if i > 0 {
                        // Thread 0's commit is in flight (150 ms) when the others commit.
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    m.commit(txn)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for r in &results {
        match r {
            Ok(_) | Err(Error::KeywordLimit { limit: 3, .. }) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    assert_eq!(m.status().unwrap().messages, 3);
    assert_eq!(m.changes_since(0).unwrap().keywords, 3);
}
