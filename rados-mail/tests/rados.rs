//! The mail-store cases against a real Ceph cluster (`CEPH_CONF`; see `ci/test.sh`).
//! Without a reachable cluster these fail; they never pass by skipping.

mod fetch;
mod suite;

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use rados_mail::MailStore;

fn store(case: &str) -> (MailStore, String) {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    (common::cluster_store(), format!("mt-{case}-{}-{nanos}", std::process::id()))
}

mail_cases!(store);
bound_cases!(store);
txn_cases!(store);
keyword_cases!(store);
watch_cases!(store);
recent_cases!(store);
block_cases!(store);
damage_cases!(store);
ack_lost_cases!(store);
ack_lost_delivery_cases!(store);
repair_cases!(store);
fetch_cases!(store);

/// The async API on a multi-threaded tokio runtime: 8 tasks append and flag at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_api_concurrent_tasks() {
    use rados_mail::asynchronous::AsyncMailStore;
    use rados_mail::{Flags, StoreMode};
    let (store, user) = store("async");
    let store = AsyncMailStore::new(store);
    let u = store.user(&user).await.unwrap();
    u.create_mailbox("INBOX").await.unwrap();
    let inbox = u.open_mailbox("INBOX").await.unwrap();
    let tasks: Vec<_> = (0..8u32)
        .map(|t| {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                let mut uids = Vec::new();
                for i in 0..10u32 {
                    let uid =
                        inbox.append(format!("task {t} mail {i}").into_bytes(), Default::default()).await.unwrap();
                    inbox.store(vec![uid], StoreMode::Add, Flags::SEEN, vec![], None).await.unwrap();
                    uids.push(uid);
                }
                uids
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=80).collect::<Vec<u32>>());
    let status = inbox.status().await.unwrap();
    assert_eq!((status.messages, status.unseen), (80, 0));
    assert_eq!(inbox.body(17).await.unwrap().len(), inbox.record(17).unwrap().unwrap().psize as usize);
}

/// Two connections to the cluster (two processes, as far as RADOS can tell): deliveries
/// through one wake a `Watch` of the other within a bound; prints the median and the
/// slowest of 30 (commit returned → `wait` returned).
#[test]
fn watch_across_two_connections_latency() {
    use std::time::{Duration, Instant};
    let (a, user) = store("watch-latency");
    let cluster = librados::ClusterConfig::from_env();
    let b = MailStore::connect(&cluster, rados_mail::Config::default()).unwrap();
    let alice = a.user(&user).unwrap();
    alice.create_mailbox("INBOX").unwrap();
    let inbox = alice.open_mailbox("INBOX").unwrap();
    let watch = b.user(&user).unwrap().watch().unwrap();
    watch.add_mailbox_name("INBOX").unwrap();
    let mut took = Vec::new();
    for i in 0..30 {
        inbox.append(format!("Subject: {i}\n\n{i}\n").as_bytes(), Default::default()).unwrap();
        let committed = Instant::now();
        assert_eq!(watch.wait(Duration::from_secs(5)), rados_mail::Events::CHANGED, "delivery {i}");
        took.push(committed.elapsed());
    }
    took.sort();
    eprintln!("watch across connections: median {:?}, slowest {:?}", took[15], took[29]);
    assert!(took[15] < Duration::from_millis(100), "median {:?}", took[15]);
}
