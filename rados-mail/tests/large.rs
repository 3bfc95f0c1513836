//! A mailbox of 1,000,000 mails: the index is sharded so that no omap object passes
//! 100,000 keys, and the mailbox opens, syncs and answers like a small one.
//!
//! Runs on the in-memory backend, which has RADOS' semantics and lets the test count the
//! keys of every object; the same sharding code runs against the real cluster in the mail
//! cases (`sharded_mailbox_stays_consistent`, with 16-UID shards).

use std::sync::Arc;
use std::time::Instant;

use rados_mail::objstore::{MemoryStore, ObjectStore};
use rados_mail::{AppendOptions, Config, Flags, MailStore, StoreMode};

fn mails() -> u32 {
    std::env::var("RADOS_MAIL_LARGE_MAILS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000)
}

#[test]
fn million_mail_mailbox() {
    let n = mails();
    let pool: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(""));
    let store = MailStore::new(pool.clone(), Config::default());
    let user = store.user("big").unwrap();
    user.create_mailbox("INBOX").unwrap();
    let inbox = user.open_mailbox("INBOX").unwrap();
    let start = Instant::now();
    let batch = 1_000u32;
    for b in 0..n.div_ceil(batch) {
        let count = batch.min(n - b * batch);
        let mails: Vec<(Box<dyn std::io::Read>, AppendOptions)> = (0..count)
            .map(|i| {
                let body = format!("Subject: {}\n\n.\n", b * batch + i).into_bytes();
                (Box::new(std::io::Cursor::new(body)) as Box<dyn std::io::Read>, AppendOptions::default())
            })
            .collect();
        let uids = inbox.append_many(mails).unwrap();
        assert_eq!(uids[0], b * batch + 1);
    }
    let appended = start.elapsed();
    inbox.store(&[1, n / 2, n], StoreMode::Add, Flags::SEEN, &[], None).unwrap();
    inbox.expunge(&[2]).unwrap();
    inbox.apply_wal().unwrap();

    // No omap object above 100,000 keys.
    let ns = user.store();
    let mut shards = 0;
    let mut largest = 0;
    for oid in ns.list_objects().unwrap().map(Result::unwrap).filter(|o| o.starts_with("mbox.")) {
        let keys = ns.omap_all(&oid, "").unwrap().len();
        largest = largest.max(keys);
        assert!(keys <= 100_000, "{oid} has {keys} omap keys");
        shards += usize::from(oid.matches('.').count() == 2);
    }
    assert_eq!(shards, (n as usize - 1) / 32_768 + 1);

    // Another process opens it whole; an unchanged re-sync is one read.
    let start = Instant::now();
    let other = MailStore::new(pool, Config::default()).user("big").unwrap().open_mailbox("INBOX").unwrap();
    let opened = start.elapsed();
    let status = other.status().unwrap();
    assert_eq!(status.messages, n - 1);
    assert_eq!(status.uidnext, n + 1);
    assert_eq!(status.unseen, n - 1 - 3);
    assert_eq!(other.record(n).unwrap().unwrap().flags, Flags::SEEN.bits());
    assert!(other.record(2).unwrap().is_none());
    let c = other.changes_since(status.highestmodseq - 2).unwrap();
    assert_eq!((c.changed.len(), c.expunged.clone()), (3, vec![2]));
    eprintln!(
        "large: {n} mails appended in {appended:.1?}, {shards} shards, largest omap {largest} keys, opened by another process in {opened:.1?}"
    );
}
