//! Issue 16: the async API's appends, fetches and syncs use the object store's async
//! operations only, never tokio's blocking pool, also when a commit loses a race to
//! another process, when a commit's reply is lost, and when a commit makes the WAL long
//! enough to be applied. `rados_mail::asynchronous::blocking_pool_calls` counts what goes
//! to the blocking pool; it must not move while the appends and fetches run.
//!
//! One case per backend (memory and the cluster); they take turns, because the counter
//! is the process's.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rados_mail::asynchronous::{AsyncMailStore, blocking_pool_calls};
use rados_mail::check::check_user;
use rados_mail::objstore::{CountingStore, FaultMode, FaultyStore, ObjectStore};
use rados_mail::{AppendOptions, Config, MailStore};

static TURN: Mutex<()> = Mutex::new(());

fn mail(n: u32) -> Vec<u8> {
    format!("Subject: async {n}\r\n\r\n{}\r\n", "body ".repeat(n as usize % 50 + 1)).into_bytes()
}

// Held across awaits on purpose: each case has a runtime of its own, and the other case
// waits for its turn before its runtime does anything.
#[allow(clippy::await_holding_lock)]
async fn appends_and_fetches_use_no_blocking_pool(pool: Arc<dyn ObjectStore>, user: &str) {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let config = Config::default();
    // Process A's operations can fail on purpose and are counted; process B shares the pool.
    let faulty = FaultyStore::new(pool.clone());
    let counting = CountingStore::new(Arc::new(faulty.clone()));
    let a = MailStore::new(Arc::new(counting.clone()), config.clone());
    let b = MailStore::new(pool, config);
    // Setting up goes through the blocking pool (mailbox management).
    let ua = AsyncMailStore::new(a.clone()).user(user).await.unwrap();
    ua.create_mailbox("INBOX").await.unwrap();
    ua.create_mailbox("Lost").await.unwrap();
    let inbox = ua.open_mailbox("INBOX").await.unwrap();
    let lost = ua.open_mailbox("Lost").await.unwrap();
    let other = AsyncMailStore::new(b.clone()).user(user).await.unwrap().open_mailbox("INBOX").await.unwrap();
    let before = blocking_pool_calls();

    // Lost races: each process appends on a view the other one made stale.
    let mut stored = Vec::new();
    for i in 0..6 {
        stored.push((other.append(mail(i), AppendOptions::default()).await.unwrap(), mail(i)));
        stored.push((inbox.append(mail(100 + i), AppendOptions::default()).await.unwrap(), mail(100 + i)));
    }
    assert!(a.stats().retries.guard_failures >= 1, "A lost a race: {:?}", a.stats().retries);
    assert!(b.stats().retries.guard_failures >= 1, "B lost a race: {:?}", b.stats().retries);
    assert_eq!(a.stats().retries.exhausted + b.stats().retries.exhausted, 0);

    // 40 more commits from 8 tasks at once (they take turns on the mailbox): past the
    // WAL's apply threshold (32 commits), so the WAL is applied, asynchronously.
    let tasks: Vec<_> = (0..8u32)
        .map(|t| {
            let m = inbox.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..5 {
                    let body = mail(1000 + t * 10 + i);
                    got.push((m.append(body.clone(), AppendOptions::default()).await.unwrap(), body));
                }
                got
            })
        })
        .collect();
    for t in tasks {
        stored.extend(t.await.unwrap());
    }
    let uids: BTreeSet<u32> = stored.iter().map(|(u, _)| *u).collect();
    assert_eq!(uids, (1..=52).collect(), "every append got its own UID");

    // A commit whose reply is lost although it was applied: resolved by async reads.
    let writes = counting.counts().writes;
    let first = lost.append(mail(7), AppendOptions::default()).await.unwrap();
    let per_append = counting.counts().writes - writes;
    faulty.fail_after(per_append - 1, FaultMode::AppliedButUnavailable);
    let second = lost.append(mail(8), AppendOptions::default()).await.unwrap();
    faulty.heal();
    assert_eq!((first, second), (1, 2), "the commit whose reply was lost landed, once");

    // Fetches and syncs.
    other.sync().await.unwrap();
    for (uid, body) in &stored {
        assert_eq!(&inbox.body(*uid).await.unwrap(), body, "UID {uid} through A");
        assert_eq!(&other.body(*uid).await.unwrap(), body, "UID {uid} through B");
    }
    assert_eq!(lost.body(2).await.unwrap(), mail(8));
    // Whole bodies read so are kept in the body cache, as the blocking fetch keeps them:
    // read again, they come from memory, without a RADOS read.
    let (cache, reads) = (a.stats().cache, counting.counts().reads);
    assert!(cache.inserts >= stored.len() as u64, "{cache:?}");
    for (uid, body) in &stored {
        assert_eq!(&inbox.body(*uid).await.unwrap(), body, "UID {uid} through A, again");
    }
    assert_eq!(a.stats().cache.memory_hits - cache.memory_hits, stored.len() as u64);
    assert_eq!(counting.counts().reads, reads, "cached bodies and records: no read");

    let after = blocking_pool_calls();
    assert_eq!(after, before, "appends, fetches and syncs went to the blocking pool {} times", after - before);
    println!(
        "async without blocking pool: {} appends, lost races A {} B {}, a lost reply, {} fetches: 0 blocking calls",
        stored.len() + 2,
        a.stats().retries.guard_failures,
        b.stats().retries.guard_failures,
        stored.len() * 3 + 1
    );

    // The counter does count: a status goes to the blocking pool.
    inbox.status().await.unwrap();
    assert_eq!(blocking_pool_calls(), after + 1);

    // The WAL was applied: fewer entries left in the head than commits made.
    let ns = b.pool().with_namespace(&b.user_namespace(user).unwrap()).unwrap();
    let head = omap_index::names::mailbox_head(&inbox.blocking().info().guid);
    let wal = ns.omap_all(&head, "").unwrap().iter().filter(|(k, _)| k.starts_with(omap_index::keys::WAL)).count();
    assert!(wal < 32, "{wal} WAL entries left after 52 commits");
    let there = b.user(user).unwrap();
    let report = check_user(&there).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(there.open_mailbox("INBOX").unwrap().uids().unwrap().len(), 52);
    assert_eq!(there.open_mailbox("Lost").unwrap().uids().unwrap(), vec![1, 2]);

    // A damaged head: an async sync leaves its rebuild (several writes) to the blocking
    // read, once; the mailbox goes on.
    ns.omap_set(&head, &[(omap_index::keys::HDR, &b"not a header"[..])]).unwrap();
    let calls = blocking_pool_calls();
    inbox.sync().await.unwrap();
    assert_eq!(blocking_pool_calls(), calls + 1, "the rebuild went to the blocking pool");
    assert_eq!(inbox.append(mail(9), AppendOptions::default()).await.unwrap(), 53);
    assert_eq!(inbox.body(53).await.unwrap(), mail(9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_appends_and_fetches_use_no_blocking_pool() {
    let pool: Arc<dyn ObjectStore> = Arc::new(rados_mail::objstore::MemoryStore::new(""));
    appends_and_fetches_use_no_blocking_pool(pool, "alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_appends_and_fetches_use_no_blocking_pool() {
    let store = common::cluster_store();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let user = format!("anb-{}-{nanos}", std::process::id());
    appends_and_fetches_use_no_blocking_pool(store.pool().clone(), &user).await;
}
