//! The two-pool layout on a real Ceph cluster (`CEPH_CONF`; see `ci/test.sh`): bodies in the
//! data pool named by `RADOS_MAIL_DATA_POOL` (CI: `mail-ec`, erasure-coded k=2 m=1 over 3
//! OSDs), indexes in the index pool (`RADOS_MAIL_POOL`, default `mail`). Without
//! `RADOS_MAIL_DATA_POOL` the bodies share the index pool, still in layout v2 (xattr
//! references). Without a reachable cluster these fail; they never pass by skipping.

use std::collections::BTreeSet;
use std::io::Read;

use rados_mail::check::check_user;
use rados_mail::{AppendOptions, Config, MailStore, ModseqSteps, Transaction};

mod common;
use common::data_pool;

/// A store of a deployment of its own (a fresh prefix: format v2), bodies in the data pool.
fn store(case: &str) -> MailStore {
    common::own_deployment("mt", case, Config { chunk_size: 64 << 10, ..Config::default() })
}

fn bodies(store: &MailStore, user: &str) -> BTreeSet<String> {
    let ns = store.data_pool().with_namespace(&store.user_namespace(user).unwrap()).unwrap();
    ns.list_objects().unwrap().map(Result::unwrap).filter(|o| o.starts_with("mail.")).collect()
}

/// Saves (one large mail in chunks), reads, prefetches, copies, moves and expunges with the
/// bodies on the data pool; the index pool holds no body when the pools differ; check is
/// clean throughout; the last reference takes each body along.
#[test]
fn erasure_data_pool_copy_move_expunge_check() {
    let store = store("erasure");
    let layout = store.layout().unwrap();
    assert_eq!((layout.version, layout.data_pool.as_str()), (2, data_pool().as_str()));
    eprintln!("erasure: data pool {:?}", if data_pool().is_empty() { "(the index pool)" } else { &layout.data_pool });
    let u = store.user("alice").unwrap();
    u.create_mailbox("INBOX").unwrap();
    u.create_mailbox("Archive").unwrap();
    let (inbox, archive) = (u.open_mailbox("INBOX").unwrap(), u.open_mailbox("Archive").unwrap());
    let big: Vec<u8> = (0..(200u32 << 10)).map(|i| b'a' + (i % 26) as u8).collect();
    let mails = [b"Subject: 1\n\none\n".to_vec(), b"Subject: 2\n\ntwo\n".to_vec(), big.clone()];
    let uids: Vec<u32> = mails.iter().map(|m| inbox.append(&m[..], AppendOptions::default()).unwrap()).collect();
    assert_eq!(bodies(&store, "alice").len(), 2 + big.len().div_ceil(64 << 10));
    if !data_pool().is_empty() {
        let index: Vec<String> = u.store().list_objects().unwrap().map(Result::unwrap).collect();
        assert!(index.iter().all(|o| !o.starts_with("mail.")), "{index:?}");
    }
    for (uid, want) in uids.iter().zip(&mails) {
        let mut out = Vec::new();
        inbox.open_body(*uid).unwrap().read_to_end(&mut out).unwrap();
        assert_eq!(&out, want);
    }
    // Another process, with a cold cache, prefetches from the data pool.
    let cold = MailStore::connect(&librados::ClusterConfig::from_env(), store.config().clone()).unwrap();
    let cold_inbox = cold.user("alice").unwrap().open_mailbox("INBOX").unwrap();
    assert_eq!(cold_inbox.prefetch(&uids).unwrap(), 3, "one read per body object, reassembled");
    let mut txn = Transaction::new(ModseqSteps::One);
    for uid in &uids {
        assert!(txn.copy(&inbox, *uid, None, None).unwrap());
    }
    archive.commit(txn).unwrap();
    inbox.expunge(&uids).unwrap();
    let report = check_user(&u).unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!(report.bodies, 3);
    archive.expunge(&archive.uids().unwrap()).unwrap();
    assert!(bodies(&store, "alice").is_empty(), "the last references took the bodies along");
    u.delete_mailbox("INBOX").unwrap();
    u.delete_mailbox("Archive").unwrap();
    assert!(check_user(&u).unwrap().is_clean());
}
