//! The mail-store cases against a real Ceph cluster (`CEPH_CONF`; see `ci/test.sh`).
//! Without a reachable cluster these fail; they never pass by skipping.

mod suite;

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use rados_mail::{Config, MailStore};

fn cluster_store() -> MailStore {
    static STORE: OnceLock<MailStore> = OnceLock::new();
    STORE
        .get_or_init(|| {
            if std::env::var_os("CEPH_CONF").is_none() {
                panic!("no Ceph cluster configured (CEPH_CONF is unset): run ./ci/test.sh, or ./ci/ceph-start.sh && source target/ceph/env.sh");
            }
            let cluster = librados::ClusterConfig::from_env();
            MailStore::connect(&cluster, Config::default()).unwrap_or_else(|e| panic!("cannot reach the cluster: {e}"))
        })
        .clone()
}

fn store(case: &str) -> (MailStore, String) {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    (cluster_store(), format!("mt-{case}-{}-{nanos}", std::process::id()))
}

mail_cases!(store);
