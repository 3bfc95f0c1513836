//! Shared set-up of the tests that run against a real Ceph cluster.
//!
//! The cluster comes from `CEPH_CONF` (written by `ci/ceph-start.sh` into
//! `target/ceph/env.sh`). These tests never pass by skipping: without a reachable cluster
//! they fail, loudly, with the command that starts one.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use librados::{Cluster, ClusterConfig, RadosStore};
use objstore::ObjectStore;

/// The connection settings of the test cluster.
pub fn config() -> ClusterConfig {
    if std::env::var_os("CEPH_CONF").is_none() {
        panic!(
            "no Ceph cluster configured (CEPH_CONF is unset{}): run ./ci/test.sh, or \
             ./ci/ceph-start.sh && source target/ceph/env.sh",
            if std::env::var_os("CI").is_some() { ", and CI is set" } else { "" }
        );
    }
    let mut c = ClusterConfig::from_env();
    c.op_timeout = Some(Duration::from_secs(60));
    c
}

/// One connection shared by all tests of a test binary.
pub fn cluster() -> Arc<Cluster> {
    static CLUSTER: OnceLock<Arc<Cluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let c = config();
            Cluster::connect(&c).unwrap_or_else(|e| panic!("cannot reach the Ceph cluster of {:?}: {e}", c.conf_path))
        })
        .clone()
}

/// A store on a namespace no other test (or earlier run) uses.
pub fn fresh_store(case: &str) -> Arc<dyn ObjectStore> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let ns = format!("test-{case}-{}-{nanos}", std::process::id());
    let io = cluster().ioctx(&config().pool, &ns).unwrap();
    Arc::new(RadosStore::new(io))
}
