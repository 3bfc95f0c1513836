//! The blob conformance suite (`rados_mail::blob::conformance`) on memory: a plain pool,
//! bodies on an erasure-coded pool (no omap, no partial writes), and the crash story
//! under injected faults. `tests/rados_blob.rs` runs the same cases on the cluster.

use std::sync::Arc;

use objstore::{MemoryStore, ObjectStore};
use rados_mail::blob::{BlobStore, conformance};
use rados_mail::{Config, MailStore};

mod memory_blob {
    rados_mail::blob_conformance_tests!(|case: &str| {
        rados_mail::MailStore::in_memory(rados_mail::Config::default()).blobs(case).unwrap()
    });
}

/// Blobs in the data pool, which is erasure-coded: every case passes without omap.
mod erasure_blob {
    rados_mail::blob_conformance_tests!(|case: &str| super::erasure_store().blobs(case).unwrap());
}

fn erasure_store() -> MailStore {
    let index: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(""));
    let data: Arc<dyn ObjectStore> = Arc::new(MemoryStore::erasure_coded(""));
    let config = Config { data_pool: "ec".into(), ..Config::default() };
    MailStore::with_data_pool(index, data, config).unwrap()
}

/// The blob store goes to the data pool, in a namespace of its own, apart from users.
#[test]
fn blob_store_lives_in_the_data_pool() {
    let store = erasure_store();
    let blobs = store.blobs("att").unwrap();
    assert_eq!(blobs.object_store().namespace(), ".blobs.att");
    blobs.put(b"x", rados_mail::blob::Owner::KEY, &b"data"[..]).unwrap();
    assert_eq!(store.data_pool().with_namespace(".blobs.att").unwrap().list_objects().unwrap().count(), 1);
    assert_eq!(store.pool().with_namespace(".blobs.att").unwrap().list_objects().unwrap().count(), 0);
    let prefixed = MailStore::in_memory(Config { namespace_prefix: "p".into(), ..Config::default() });
    assert_eq!(prefixed.blobs("att").unwrap().object_store().namespace(), "p/.blobs.att");
    for bad in ["", "a.b", "a/b", &"x".repeat(65), "é"] {
        assert!(matches!(store.blobs(bad), Err(rados_mail::Error::InvalidInput(_))), "{bad:?}");
    }
}

#[test]
fn blob_fault_sweep_memory() {
    conformance::fault_sweep_all(Arc::new(MemoryStore::new("")));
}

#[test]
fn blob_fault_sweep_erasure() {
    conformance::fault_sweep_all(Arc::new(MemoryStore::erasure_coded("")));
}

/// A direct store (no `MailStore`) works the same.
#[test]
fn blob_store_without_mail_store() {
    let blobs = BlobStore::new(Arc::new(MemoryStore::new("b")), &Config::default());
    conformance::references_keep_the_blob(&blobs);
}
