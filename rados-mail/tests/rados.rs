//! The mail-store cases against a real Ceph cluster (`CEPH_CONF`; see `ci/test.sh`).
//! Without a reachable cluster these fail; they never pass by skipping.

mod suite;

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use rados_mail::MailStore;

fn store(case: &str) -> (MailStore, String) {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    (common::cluster_store(), format!("mt-{case}-{}-{nanos}", std::process::id()))
}

mail_cases!(store);
