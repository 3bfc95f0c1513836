//! The conformance suite against the in-memory backend, and the fault-injecting wrapper.

use std::sync::Arc;

use objstore::{CountingStore, Error, FaultMode, FaultyStore, MemoryStore, ObjectStore, OpCounts, WriteOp};

mod memory_backend {
    use super::*;
    objstore::conformance_tests!(|case: &str| -> Arc<dyn ObjectStore> { Arc::new(MemoryStore::new(case)) });
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
    assert_eq!(counting.counts(), OpCounts { reads: 1, writes: 2, lists: 1 });
    assert_eq!(counting.counts().total(), 4);
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
