//! Stores one object with data, xattrs and omap in a RADOS pool and reads it back.
//!
//! Run against the local test cluster: `./ci/demo.sh`, or by hand:
//! `source target/ceph/env.sh && cargo run -p rados-mail-librados --example roundtrip`.

use librados::{ClusterConfig, RadosStore};
use objstore::{CmpOp, ObjectStore, ReadOp, WriteOp};

fn main() -> Result<(), objstore::Error> {
    let mut config = ClusterConfig::from_env();
    if config.namespace.is_empty() {
        config.namespace = "example".into();
    }
    let store = RadosStore::connect(&config)?;
    let body = b"From: alice@example.org\nSubject: hello\n\nStored in RADOS.\n";
    let op = WriteOp::new()
        .write_full(body.to_vec())
        .set_xattr("rm.guid", b"0123456789abcdef".to_vec())
        .omap_set([("uidnext", b"2".to_vec()), ("uid/1", b"flags=\\Seen".to_vec())]);
    let version = store.write_op("example-mail", &op)?;
    // Compare-and-swap on the omap: allocate the next UID only if nobody else did.
    let version = store
        .write_op(
            "example-mail",
            &WriteOp::new().omap_cmp("uidnext", CmpOp::Eq, b"2".to_vec()).omap_set([("uidnext", b"3")]),
        )
        .map(|v| v.max(version))?;
    let r = store.read_op("example-mail", &ReadOp::new().stat().read(0, 4096).xattrs().omap_range("", "", 100))?;
    println!("pool {:?}, namespace {:?}, object example-mail, version {version}", config.pool, config.namespace);
    println!("size {} bytes; body read back identical: {}", r.stat.unwrap().size, r.data.as_deref() == Some(&body[..]));
    for (k, v) in r.xattrs.unwrap_or_default() {
        println!("xattr {k} = {}", String::from_utf8_lossy(&v));
    }
    for (k, v) in r.omap_page.unwrap_or_default().entries {
        println!("omap  {k} = {}", String::from_utf8_lossy(&v));
    }
    assert_eq!(r.data.as_deref(), Some(&body[..]), "read-back differs");
    Ok(())
}
