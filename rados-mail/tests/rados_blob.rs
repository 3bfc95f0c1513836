//! The blob conformance suite (`rados_mail::blob::conformance`) on a real Ceph cluster
//! (`CEPH_CONF`; see `ci/test.sh`): blobs in the data pool named by `RADOS_MAIL_DATA_POOL`
//! (CI: `mail-ec`, erasure-coded k=2 m=1), or in the index pool without it. Each case gets
//! a deployment of its own (a fresh namespace prefix). Without a reachable cluster these
//! fail; they never pass by skipping.

use std::sync::Arc;

use objstore::ObjectStore;
use rados_mail::blob::{BlobStore, Owner, conformance};
use rados_mail::{Config, MailStore};

mod common;
use common::data_pool;

/// A deployment of its own, bodies (and blobs) in the data pool.
fn store(case: &str) -> MailStore {
    common::own_deployment("bt", case, Config::default())
}

mod rados_blob_cluster {
    rados_mail::blob_conformance_tests!(|case: &str| super::store(case).blobs("conformance").unwrap());
}

/// The blobs are in the data pool (erasure-coded in CI), not in the index pool.
#[test]
fn rados_blob_cluster_data_pool() {
    let store = store("pool");
    let blobs = store.blobs("att").unwrap();
    let big = conformance::pattern(3 << 20, 1);
    let small = BlobStore::new(blobs.object_store().clone(), &Config { chunk_size: 1 << 20, ..Config::default() });
    let info = small.put(b"big", Owner::KEY, &big[..]).unwrap();
    assert_eq!(info.chunks, 3);
    assert_eq!(blobs.get(b"big", ..).unwrap().unwrap(), big);
    assert_eq!(blobs.get(b"big", (1 << 20) - 5..(2 << 20) + 5).unwrap().unwrap(), &big[(1 << 20) - 5..(2 << 20) + 5]);
    let ns = blobs.object_store().namespace().to_string();
    assert_eq!(store.data_pool().with_namespace(&ns).unwrap().list_objects().unwrap().count(), 3);
    if !data_pool().is_empty() {
        assert_eq!(store.pool().with_namespace(&ns).unwrap().list_objects().unwrap().count(), 0);
    }
    assert!(blobs.check(true).unwrap().is_clean());
    assert!(blobs.delete(b"big", Owner::KEY).unwrap());
    assert_eq!(store.data_pool().with_namespace(&ns).unwrap().list_objects().unwrap().count(), 0);
}

/// The crash story on the cluster: each write of a put and a delete failed in turn.
#[test]
fn rados_blob_cluster_fault_sweep() {
    let store = store("faults");
    let data: Arc<dyn ObjectStore> = store.data_pool().clone();
    let base = store.blobs("faults").unwrap().object_store().namespace().to_string();
    conformance::fault_sweep(
        &|case: &str| {
            let faulty = objstore::FaultyStore::new(data.with_namespace(&format!("{base}-{case}")).unwrap());
            (BlobStore::new(Arc::new(faulty.clone()), store.config()), faulty)
        },
        objstore::FaultMode::AppliedButUnavailable,
    );
}
