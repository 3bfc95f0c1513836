//! The conformance suite against the in-memory backend, and the fault-injecting wrapper.

use std::sync::Arc;

use std::sync::Mutex;

use futures::executor::block_on;
use objstore::{
    CountingStore, Error, FaultMode, FaultyStore, MemoryStore, ObjectStore, OpCounts, WatchCallback, WatchEvent,
    WriteOp,
};

mod memory_backend {
    use super::*;
    objstore::conformance_tests!(|case: &str| -> Arc<dyn ObjectStore> { Arc::new(MemoryStore::new(case)) });
}

mod erasure_coded_memory_backend {
    //! The memory backend as an erasure-coded pool: no omap.
    use super::*;
    objstore::conformance_tests_without_omap!(|case: &str| -> Arc<dyn ObjectStore> {
        Arc::new(MemoryStore::erasure_coded(case))
    });
}

mod through_fault_wrapper {
    //! The wrapper must be transparent while it injects nothing.
    use super::*;
    objstore::conformance_tests!(|case: &str| -> Arc<dyn ObjectStore> {
        Arc::new(FaultyStore::new(Arc::new(MemoryStore::new(case))))
    });
}

#[test]
fn fault_wrapper_fails_after_countdown_and_heals() {
    let faulty = FaultyStore::new(Arc::new(MemoryStore::new("f")));
    faulty.fail_after(2, FaultMode::Unavailable);
    faulty.write_full("a", b"1").unwrap();
    faulty.write_full("b", b"2").unwrap();
    let err = faulty.write_full("c", b"3").unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
    assert!(matches!(faulty.read_full("a"), Err(Error::Unavailable(_))));
    let other = faulty.with_namespace("g").unwrap();
    assert!(matches!(other.write_full("x", b""), Err(Error::Unavailable(_))), "namespaces share the fault");
    faulty.heal();
    assert_eq!(faulty.read_full("a").unwrap().0, b"1");
    assert_eq!(faulty.stat("c").unwrap_err(), Error::NotFound { object: "c".into() }, "failed write left nothing");
}

#[test]
fn fault_wrapper_writes_only_and_io_modes() {
    let faulty = FaultyStore::new(Arc::new(MemoryStore::new("f")));
    faulty.write_full("a", b"1").unwrap();
    faulty.fail_after(0, FaultMode::WritesUnavailable);
    assert_eq!(faulty.read_full("a").unwrap().0, b"1", "reads still pass");
    assert!(matches!(faulty.write_op("a", &WriteOp::new().append(b"2".to_vec())), Err(Error::Unavailable(_))));
    faulty.fail_after(0, FaultMode::Io);
    let err = faulty.read_full("a").unwrap_err();
    assert_eq!(err, Error::Rados { errno: 5, context: "injected fault".into() });
    assert!(!err.is_temporary());
}

mod through_counting_wrapper {
    //! The counting wrapper must be transparent.
    use super::*;
    objstore::conformance_tests!(|case: &str| -> Arc<dyn ObjectStore> {
        Arc::new(CountingStore::new(Arc::new(MemoryStore::new(case))))
    });
}

#[test]
fn counting_wrapper_counts_each_kind() {
    let counting = CountingStore::new(Arc::new(MemoryStore::new("c")));
    counting.write_full("a", b"1").unwrap();
    counting.read_full("a").unwrap();
    let other = counting.with_namespace("d").unwrap();
    other.omap_set("b", &[("k", b"v")]).unwrap();
    let _ = other.list_objects().unwrap().count();
    let w = counting.watch("a", Arc::new(|_| {})).unwrap();
    counting.notify("a", b"x", None);
    other.notify("b", b"y", None);
    assert_eq!(counting.counts(), OpCounts { reads: 1, writes: 2, lists: 1, notifies: 2, watches: 1 });
    assert_eq!(counting.counts().total(), 7);
    drop(w);
}

/// Records events; the callback and the log.
fn recorder() -> (WatchCallback, Arc<Mutex<Vec<WatchEvent>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    (Arc::new(move |e| l.lock().unwrap().push(e)), log)
}

/// Two handles on one memory pool are two clients: one hears the other's notifies, on
/// the notifier's thread, before `notify` returns.
#[test]
fn memory_watchers_of_two_handles_see_each_other() {
    let a = MemoryStore::new("ns");
    let b = a.with_namespace("ns").unwrap();
    a.write_full("o", b"").unwrap();
    let (cb, log) = recorder();
    let _w = b.watch("o", cb).unwrap();
    a.notify("o", b"hi", None);
    assert_eq!(*log.lock().unwrap(), [WatchEvent::Notify(b"hi".to_vec())]);
}

/// Injected faults: a broken watch gets one `Error` and nothing after; failing notifies
/// and failing watch registrations report `Unavailable`; a new watch works again.
#[test]
fn fault_wrapper_breaks_watches_and_fails_notifies() {
    let faulty = FaultyStore::new(Arc::new(MemoryStore::new("f")));
    faulty.write_full("o", b"").unwrap();
    let (cb, log) = recorder();
    let w = faulty.watch("o", cb.clone()).unwrap();
    block_on(faulty.notify_async("o", b"1")).unwrap();
    assert_eq!(faulty.break_watches(), 1);
    assert!(w.check().unwrap_err().is_temporary());
    block_on(faulty.notify_async("o", b"2")).unwrap();
    {
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        assert_eq!(log[0], WatchEvent::Notify(b"1".to_vec()));
        assert!(matches!(&log[1], WatchEvent::Error(e) if e.is_temporary()), "{log:?}");
    }
    assert_eq!(faulty.break_watches(), 0, "a broken watch breaks once");
    drop(w);
    faulty.fail_watches(2);
    assert!(faulty.watch("o", cb.clone()).unwrap_err().is_temporary());
    assert!(faulty.watch("o", cb.clone()).unwrap_err().is_temporary());
    let w = faulty.watch("o", cb).unwrap();
    faulty.fail_notifies(true);
    assert!(block_on(faulty.notify_async("o", b"3")).unwrap_err().is_temporary());
    faulty.fail_notifies(false);
    block_on(faulty.notify_async("o", b"4")).unwrap();
    assert_eq!(log.lock().unwrap().last(), Some(&WatchEvent::Notify(b"4".to_vec())), "3 reached nobody");
    assert_eq!(log.lock().unwrap().len(), 3);
    faulty.fail_after(0, FaultMode::Unavailable);
    assert!(block_on(faulty.notify_async("o", b"5")).unwrap_err().is_temporary(), "the cluster is gone");
    drop(w);
}

/// A lost reply: the write is applied, its caller hears `Unavailable`, later ops pass.
#[test]
fn fault_wrapper_applied_but_unavailable() {
    let faulty = FaultyStore::new(Arc::new(MemoryStore::new("f")));
    faulty.write_full("a", b"1").unwrap();
    faulty.fail_after(1, FaultMode::AppliedButUnavailable);
    assert_eq!(faulty.read_full("a").unwrap().0, b"1", "reads do not count");
    faulty.write_full("b", b"2").unwrap();
    assert!(matches!(faulty.write_full("c", b"3"), Err(Error::Unavailable(_))));
    assert_eq!(faulty.read_full("c").unwrap().0, b"3", "applied");
    let late = futures::executor::block_on(faulty.write_op_async("d", WriteOp::new().write_full(b"4".to_vec())));
    assert!(late.is_ok(), "healed after the one lost reply");
}
