//! The mail-store cases against the in-memory backend on a pool of format version 1 (bodies
//! with omap `ref/` references, as every pool written before the format record), so that
//! the v1 layout stays tested now that fresh pools are version 2; the fault sweeps of copy,
//! move and expunge included.

mod fetch;
mod suite;

use std::sync::Arc;

use omap_index::format::{self, FORMAT_KEY, FORMAT_OBJECT, PoolFormat};
use rados_mail::objstore::{MemoryStore, ObjectStore, WriteOp};

fn store(_case: &str) -> (rados_mail::MailStore, String) {
    let pool = MemoryStore::new("");
    let v1 = PoolFormat { version: format::V1, ..PoolFormat::default() };
    let record = WriteOp::new().create_exclusive().omap_set([(FORMAT_KEY, format::encode(&v1))]);
    pool.with_namespace(rados_mail::SHARED_NAMESPACE).unwrap().write_op(FORMAT_OBJECT, &record).unwrap();
    let store = rados_mail::MailStore::new(Arc::new(pool), rados_mail::Config::default());
    assert_eq!(store.layout().unwrap().version, format::V1);
    (store, "alice".to_string())
}

mail_cases!(store);
bound_cases!(store);
txn_cases!(store);
damage_cases!(store);
ack_lost_cases!(store);
ack_lost_sweep_cases!(store);
repair_cases!(store);
repair_sweep_cases!(store);
fetch_cases!(store);
