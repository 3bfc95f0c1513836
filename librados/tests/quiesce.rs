//! `librados::quiesce` covers everything librados may still do for a dropped store.
//!
//! The story: an imap process exited right after a commit and crashed in librados' exit
//! handlers (`boost::bad_get`), once in about 16,000 tests, although `rm_store_free` waited
//! for notifies in flight. The count it waited on went to zero in the notify's `Drop`
//! body, before the notify's fields were dropped, and one of them held the last reference
//! of the I/O context: the cluster's `rados_shutdown` ran on the reaper thread *after* the
//! wait had ended, while the process was exiting. Now the count is released by a token
//! that is the last field of each owner, so it outlives that shutdown. This test runs in a
//! process of its own (its own test binary), so no other test's work is counted.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use librados::{Cluster, RadosStore};
use objstore::ObjectStore;

#[test]
fn quiesce_outlasts_the_shutdown_of_a_store_dropped_with_notifies_in_flight() {
    let config = common::config();
    assert_eq!(librados::busy(), 0, "nothing of this process in flight before the test");
    let done = Arc::new(AtomicUsize::new(0));
    {
        // A connection of its own: only the notifies hold it once the store is dropped.
        let cluster = Cluster::connect(&config).expect("connect");
        let io = cluster.ioctx(&config.pool, &format!("test-quiesce-{}", std::process::id())).unwrap();
        drop(cluster);
        let store = RadosStore::new(io);
        store.write_full("o", b"x").unwrap();
        for _ in 0..20 {
            let done = done.clone();
            store.notify(
                "o",
                b"ping",
                Some(Box::new(move |_| {
                    done.fetch_add(1, Ordering::SeqCst);
                })),
            );
        }
        store.remove("o").ok();
    }
    assert!(librados::quiesce(librados::QUIESCE_TIMEOUT), "the wait ran out");
    assert_eq!(done.load(Ordering::SeqCst), 20, "every notify completed before the wait ended");
    assert_eq!(librados::busy(), 0);
    assert_eq!(librados::quiesce_ran_out(), 0);
    // Nothing else of this process is waited for: a second wait returns at once.
    assert!(librados::quiesce(Duration::from_millis(1)));
}
