//! The real cluster for the mail-store tests (`CEPH_CONF`; `ci/test.sh` starts one).
//! Without a reachable cluster these tests fail; they never pass by skipping.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use rados_mail::objstore::ObjectStore;

use rados_mail::{Config, MailStore};

/// One connection per test binary.
pub fn cluster_store() -> MailStore {
    static STORE: OnceLock<MailStore> = OnceLock::new();
    STORE
        .get_or_init(|| {
            if std::env::var_os("CEPH_CONF").is_none() {
                panic!(
                    "no Ceph cluster configured (CEPH_CONF is unset): run ./ci/test.sh, or \
                     ./ci/ceph-start.sh && source target/ceph/env.sh"
                );
            }
            let cluster = librados::ClusterConfig::from_env();
            MailStore::connect(&cluster, Config::default()).unwrap_or_else(|e| panic!("cannot reach the cluster: {e}"))
        })
        .clone()
}

/// The data pool the tests put bodies in: `RADOS_MAIL_DATA_POOL` (CI: `mail-ec`,
/// erasure-coded), empty for the index pool.
pub fn data_pool() -> String {
    std::env::var("RADOS_MAIL_DATA_POOL").unwrap_or_default()
}

/// A store of a deployment of its own on the cluster (a fresh namespace prefix
/// `<tag>-<case>-<pid>-<nanos>`, so format v2), bodies in [`data_pool`], other settings
/// from `config`.
pub fn own_deployment(tag: &str, case: &str, config: Config) -> MailStore {
    if std::env::var_os("CEPH_CONF").is_none() {
        panic!("no Ceph cluster configured (CEPH_CONF is unset): run ./ci/test.sh");
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let config = Config {
        namespace_prefix: format!("{tag}-{case}-{}-{nanos}", std::process::id()),
        data_pool: data_pool(),
        ..config
    };
    MailStore::connect(&librados::ClusterConfig::from_env(), config).expect("cannot reach the cluster")
}

/// Every object of a namespace: data, xattrs, omap.
pub type Snapshot = BTreeMap<String, (Vec<u8>, BTreeMap<String, Vec<u8>>, Vec<(String, Vec<u8>)>)>;

/// A copy of every object of the store's namespace (for "nothing else changed" checks).
pub fn snapshot(ns: &dyn ObjectStore) -> Snapshot {
    let mut out = Snapshot::new();
    for oid in ns.list_objects().unwrap() {
        let oid = oid.unwrap();
        let data = ns.read_full(&oid).unwrap().0;
        let xattrs = ns.xattrs(&oid).unwrap();
        let omap = ns.omap_all(&oid, "").unwrap();
        out.insert(oid, (data, xattrs, omap));
    }
    out
}
