//! The erasure-coded data pool: what the store may rely on there, and what it may not.
//!
//! Issue 15 moves mail bodies to a data pool that may be erasure-coded, and their
//! references from omap keys to xattrs, because erasure-coded pools have no omap. These
//! tests run every kind of operation the body path uses against a real EC pool (CI: k=2,
//! m=1 over 3 OSDs, made by `ci/ceph-start.sh --osds 3` and named by
//! `RADOS_MAIL_DATA_POOL`), through both the blocking and the asynchronous (aio) calls, and
//! pin down the exact errors of what the pool refuses: every omap write, and partial
//! writes (offset writes, appends, truncates) to an existing object, fail with
//! `Error::Unsupported` (librados: EOPNOTSUPP) and change nothing; omap reads and omap comparisons
//! answer as if the omap were empty. The in-memory backend's EC mode copies these.
//!
//! Like every cluster test these never pass by skipping: without `CEPH_CONF` or without
//! `RADOS_MAIL_DATA_POOL` they fail, and they check that the pool really is erasure-coded.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures::executor::block_on;
use futures::future::join_all;
use librados::RadosStore;
use objstore::{CmpOp, Error, ObjectStore, ReadOp, WriteOp};

/// The erasure-coded pool under test, from `RADOS_MAIL_DATA_POOL`.
fn data_pool() -> String {
    let _ = common::config(); // no cluster, no pass
    match std::env::var("RADOS_MAIL_DATA_POOL") {
        Ok(pool) if !pool.is_empty() => pool,
        _ => panic!(
            "RADOS_MAIL_DATA_POOL is unset{}: the erasure tests need an erasure-coded pool; \
             run ./ci/ceph-start.sh --osds 3 && source target/ceph/env.sh",
            if std::env::var_os("CI").is_some() { ", and CI is set" } else { "" }
        ),
    }
}

/// A store on a fresh namespace of the erasure-coded pool.
fn ec_store(case: &str) -> Arc<dyn ObjectStore> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    let ns = format!("test-erasure-{case}-{}-{nanos}", std::process::id());
    Arc::new(RadosStore::new(common::cluster().ioctx(&data_pool(), &ns).unwrap()))
}

/// `ceph ARGS...` against the test cluster; its stdout.
fn ceph(args: &[&str]) -> String {
    let conf = std::env::var("CEPH_CONF").unwrap();
    let out = Command::new("ceph")
        .args(["--conf", &conf, "--connect-timeout", "30"])
        .args(args)
        .output()
        .expect("running ceph");
    assert!(out.status.success(), "ceph {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A mail-like body of `len` bytes, no two positions alike within 251 bytes.
fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

/// What an erasure-coded pool answers to omap writes and partial writes: EOPNOTSUPP, which
/// librados maps to [`Error::Unsupported`].
fn assert_eopnotsupp<T: std::fmt::Debug>(what: &str, r: objstore::Result<T>) {
    match r {
        Err(Error::Unsupported { .. }) => {}
        other => panic!("{what} on the erasure-coded pool: expected Unsupported (EOPNOTSUPP), got {other:?}"),
    }
}

/// Data, xattrs and version of an object, to show that a refused operation changed nothing.
fn snapshot(s: &dyn ObjectStore, oid: &str) -> (Vec<u8>, BTreeMap<String, Vec<u8>>, u64) {
    let r = s.read_op(oid, &ReadOp::new().stat().read(0, 1 << 20).xattrs()).unwrap();
    (r.data.unwrap_or_default(), r.xattrs.unwrap(), r.version)
}

#[test]
fn erasure_pool_is_erasure_coded_k2_m1() {
    let pool = data_pool();
    let profile = ceph(&["osd", "pool", "get", &pool, "erasure_code_profile"]);
    let profile = profile
        .trim()
        .strip_prefix("erasure_code_profile: ")
        .unwrap_or_else(|| panic!("{pool} is not an erasure-coded pool: {profile:?}"));
    let settings = ceph(&["osd", "erasure-code-profile", "get", profile]);
    for want in ["k=2", "m=1", "crush-failure-domain=osd"] {
        assert!(settings.lines().any(|l| l == want), "profile {profile} lacks {want}: {settings}");
    }
    assert_eq!(ceph(&["osd", "pool", "get", &pool, "size"]).trim(), "size: 3");
    // Partial overwrites stay off: the store must not need them.
    assert_eq!(ceph(&["osd", "pool", "get", &pool, "allow_ec_overwrites"]).trim(), "allow_ec_overwrites: false");
}

#[test]
fn erasure_write_full_then_whole_and_ranged_reads() {
    let s = ec_store("data");
    // Sizes around the stripe width (k=2 chunks of 4 KiB) and a multi-MiB body.
    for (i, len) in [0usize, 1, 4095, 4096, 8191, 8192, 8193, 100_003, 3 << 20].into_iter().enumerate() {
        let oid = format!("body.{len}");
        let data = body(len, i as u8);
        let version = s.write_full(&oid, &data).unwrap();
        let (read, read_version) = s.read_full(&oid).unwrap();
        assert!(read == data, "{oid}: read back {} bytes, wrote {len}", read.len());
        assert_eq!(read_version, version);
        assert_eq!(s.stat(&oid).unwrap().0.size, len as u64);
        // Ranged reads: inside, across a chunk boundary, past the end.
        for (off, n) in [(0u64, 10u64), (4090, 12), (8190, 5000), (len as u64 / 2, 7), (len as u64, 10)] {
            let want = &data[(off as usize).min(len)..((off + n) as usize).min(len)];
            assert_eq!(s.read(&oid, off, n).unwrap(), want, "{oid}: {n} bytes at {off}");
        }
    }
    // write_full replaces the whole data, shorter too.
    let v1 = s.write_full("body.8193", b"short").unwrap();
    assert_eq!(s.read_full("body.8193").unwrap(), (b"short".to_vec(), v1));
    assert!(matches!(s.read_full("missing"), Err(Error::NotFound { .. })));
}

#[test]
fn erasure_xattrs_set_get_remove() {
    let s = ec_store("xattrs");
    s.write_full("b", &body(10_000, 3)).unwrap();
    let binary: Vec<u8> = (0..=255).collect();
    s.set_xattr("b", "rm.ref.0f1e2d3c4b5a69788796a5b4c3d2e1f0.1", b"").unwrap();
    s.set_xattr("b", "rm.bin", &binary).unwrap();
    let all = s.xattrs("b").unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all["rm.bin"], binary);
    assert_eq!(s.get_xattr("b", "rm.ref.0f1e2d3c4b5a69788796a5b4c3d2e1f0.1").unwrap(), b"");
    s.write_op("b", &WriteOp::new().rm_xattr("rm.bin")).unwrap();
    assert!(matches!(s.get_xattr("b", "rm.bin"), Err(Error::XattrNotFound { .. })));
    // Removing a missing xattr is not an error.
    s.write_op("b", &WriteOp::new().rm_xattr("rm.never")).unwrap();
    // The data is untouched by xattr changes; an xattr on a new object creates it empty.
    assert_eq!(s.read_full("b").unwrap().0, body(10_000, 3));
    s.set_xattr("fresh", "rm.x", b"1").unwrap();
    assert_eq!(s.stat("fresh").unwrap().0.size, 0);
    assert!(matches!(s.xattrs("missing"), Err(Error::NotFound { .. })));
}

#[test]
fn erasure_guards_exists_version_cmpxattr_exclusive() {
    let s = ec_store("guards");
    // assert_exists
    let r = s.write_op("b", &WriteOp::new().assert_exists().set_xattr("rm.a", b"1"));
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    assert!(matches!(s.stat("b"), Err(Error::NotFound { .. })), "a failed assert_exists created the object");
    // exclusive create
    let v = s.write_op("b", &WriteOp::new().create_exclusive().write_full(body(5000, 1))).unwrap();
    let r = s.write_op("b", &WriteOp::new().create_exclusive().write_full(b"other".to_vec()));
    assert!(matches!(r, Err(Error::AlreadyExists { .. })), "{r:?}");
    s.write_op("b", &WriteOp::new().assert_exists().set_xattr("rm.a", b"1")).unwrap();
    // assert_version (the version moved with the xattr write)
    let r = s.write_op("b", &WriteOp::new().assert_version(v).set_xattr("rm.a", b"2"));
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    let now = s.stat("b").unwrap().1;
    assert!(now > v);
    let after = s.write_op("b", &WriteOp::new().assert_version(now).set_xattr("rm.a", b"2")).unwrap();
    assert!(after > now);
    assert!(matches!(s.read_op("b", &ReadOp::new().assert_version(now).stat()), Err(Error::Conflict { .. })));
    assert_eq!(s.read_op("b", &ReadOp::new().assert_version(after).stat()).unwrap().version, after);
    // cmpxattr: a missing xattr compares as empty
    let r = s.write_op("b", &WriteOp::new().cmp_xattr("rm.a", CmpOp::Eq, b"1").set_xattr("rm.a", b"3"));
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    s.write_op("b", &WriteOp::new().cmp_xattr("rm.a", CmpOp::Eq, b"2").set_xattr("rm.a", b"3")).unwrap();
    s.write_op("b", &WriteOp::new().cmp_xattr("rm.a", CmpOp::Lt, b"4").cmp_xattr("rm.none", CmpOp::Eq, b""))
        .map(drop)
        .unwrap_or_else(|e| panic!("guards only: {e:?}"));
    assert!(matches!(
        s.read_op("b", &ReadOp::new().cmp_xattr("rm.a", CmpOp::Gt, b"3").stat()),
        Err(Error::Conflict { .. })
    ));
    assert_eq!(s.get_xattr("b", "rm.a").unwrap(), b"3");
    assert_eq!(s.read_full("b").unwrap().0, body(5000, 1));
}

#[test]
fn erasure_remove() {
    let s = ec_store("remove");
    s.write_op("b", &WriteOp::new().write_full(body(20_000, 5)).set_xattr("rm.ref.x", b"")).unwrap();
    s.remove("b").unwrap();
    assert!(matches!(s.stat("b"), Err(Error::NotFound { .. })));
    assert!(matches!(s.remove("b"), Err(Error::NotFound { .. })));
    // A guarded remove: the last reference goes, and the body with it.
    s.write_op("c", &WriteOp::new().write_full(b"x".to_vec()).set_xattr("rm.ref.y", b"")).unwrap();
    let r = s.write_op("c", &WriteOp::new().cmp_xattr("rm.ref.y", CmpOp::Eq, b"no").remove());
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    s.write_op("c", &WriteOp::new().cmp_xattr("rm.ref.y", CmpOp::Eq, b"").remove()).unwrap();
    assert!(matches!(s.stat("c"), Err(Error::NotFound { .. })));
    // The object can be written again after its removal.
    s.write_full("c", b"again").unwrap();
    assert_eq!(s.read_full("c").unwrap().0, b"again");
}

#[test]
fn erasure_compound_ops_mix_xattrs_and_data() {
    let s = ec_store("compound");
    let data = body(70_000, 9);
    // A body and its first reference in one exclusive create.
    let v = s
        .write_op(
            "b",
            &WriteOp::new()
                .create_exclusive()
                .write_full(data.clone())
                .set_xattr("rm.ref.m1.1", b"")
                .set_xattr("rm.hdr", b"v2"),
        )
        .unwrap();
    // One read: stat, a range and every xattr.
    let r = s.read_op("b", &ReadOp::new().assert_version(v).stat().read(1000, 100).xattrs()).unwrap();
    assert_eq!(r.version, v);
    assert_eq!(r.stat.unwrap().size, data.len() as u64);
    assert_eq!(r.data.unwrap(), &data[1000..1100]);
    assert_eq!(r.xattrs.unwrap().keys().collect::<Vec<_>>(), ["rm.hdr", "rm.ref.m1.1"]);
    // A copy adds a reference, an expunge drops one, in one guarded op.
    s.write_op(
        "b",
        &WriteOp::new()
            .assert_version(v)
            .cmp_xattr("rm.hdr", CmpOp::Eq, b"v2")
            .set_xattr("rm.ref.m2.7", b"")
            .rm_xattr("rm.ref.m1.1"),
    )
    .unwrap();
    assert_eq!(snapshot(&*s, "b").1.keys().collect::<Vec<_>>(), ["rm.hdr", "rm.ref.m2.7"]);
    // A failing guard applies none of the mutations, data or xattrs.
    let before = snapshot(&*s, "b");
    let r = s.write_op(
        "b",
        &WriteOp::new().cmp_xattr("rm.hdr", CmpOp::Eq, b"v3").write_full(b"gone".to_vec()).rm_xattr("rm.ref.m2.7"),
    );
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    assert_eq!(snapshot(&*s, "b"), before);
    // write_full and xattrs together replace the data and keep the other xattrs.
    s.write_op("b", &WriteOp::new().write_full(b"new body".to_vec()).set_xattr("rm.hdr", b"v3")).unwrap();
    let (d, x, _) = snapshot(&*s, "b");
    assert_eq!(d, b"new body");
    assert_eq!(x["rm.hdr"], b"v3");
    assert!(x.contains_key("rm.ref.m2.7"));
}

#[test]
fn erasure_omap_writes_fail_eopnotsupp_and_change_nothing() {
    let s = ec_store("omapw");
    s.write_op("b", &WriteOp::new().write_full(body(9000, 2)).set_xattr("rm.a", b"1")).unwrap();
    let before = snapshot(&*s, "b");
    assert_eopnotsupp("omap_set", s.omap_set("b", &[("k", b"v")]));
    assert_eopnotsupp("omap_rm_keys", s.omap_rm_keys("b", &["k"]));
    assert_eopnotsupp("omap_clear", s.write_op("b", &WriteOp::new().omap_clear()));
    assert_eopnotsupp("omap_rm_range", s.write_op("b", &WriteOp::new().omap_rm_range("a", "z")));
    // In a compound op the whole op fails: the xattr and data changes are not applied.
    assert_eopnotsupp(
        "xattr + data + omap",
        s.write_op("b", &WriteOp::new().set_xattr("rm.a", b"2").write_full(b"x".to_vec()).omap_set([("k", b"v")])),
    );
    assert_eq!(snapshot(&*s, "b"), before);
    // On a missing object nothing is created.
    assert_eopnotsupp("omap_set on a new object", s.omap_set("new", &[("k", b"v")]));
    assert_eopnotsupp(
        "create + omap_set",
        s.write_op("new", &WriteOp::new().create_exclusive().write_full(b"x".to_vec()).omap_set([("k", b"v")])),
    );
    assert!(matches!(s.stat("new"), Err(Error::NotFound { .. })));
}

#[test]
fn erasure_omap_reads_and_compares_see_an_empty_omap() {
    let s = ec_store("omapr");
    s.write_full("b", b"body").unwrap();
    assert_eq!(s.omap_get("b", &["k"]).unwrap(), BTreeMap::new());
    assert_eq!(s.omap_range("b", "", "", 100).unwrap(), objstore::OmapPage { entries: vec![], more: false });
    assert!(matches!(s.omap_get("missing", &["k"]), Err(Error::NotFound { .. })));
    // omap comparisons read the (empty) omap: a missing key compares as the empty value.
    let v = s.write_op("b", &WriteOp::new().omap_cmp("k", CmpOp::Eq, b"").set_xattr("rm.a", b"1")).unwrap();
    assert_eq!(s.get_xattr("b", "rm.a").unwrap(), b"1");
    let r = s.write_op("b", &WriteOp::new().omap_cmp("k", CmpOp::Eq, b"x").set_xattr("rm.a", b"2"));
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    assert!(matches!(
        s.read_op("b", &ReadOp::new().omap_cmp("k", CmpOp::Gt, b"a").stat()),
        Err(Error::Conflict { .. })
    ));
    assert_eq!(s.stat("b").unwrap().1, v);
}

#[test]
fn erasure_partial_writes_to_existing_objects_fail_eopnotsupp() {
    let s = ec_store("partial");
    // 8193 bytes: not a multiple of the stripe width (k=2 chunks of 4 KiB).
    let data = body(8193, 4);
    s.write_full("b", &data).unwrap();
    let before = snapshot(&*s, "b");
    assert_eopnotsupp("write at an offset", s.write_op("b", &WriteOp::new().write(2, b"xyz".to_vec())));
    assert_eopnotsupp("write at 0", s.write_op("b", &WriteOp::new().write(0, b"xyz".to_vec())));
    assert_eopnotsupp("append", s.write_op("b", &WriteOp::new().append(b"xyz".to_vec())));
    assert_eopnotsupp("truncate", s.write_op("b", &WriteOp::new().truncate(3)));
    assert_eopnotsupp(
        "write_full + append",
        s.write_op("b", &WriteOp::new().set_xattr("rm.a", b"1").append(b"x".to_vec())),
    );
    assert_eq!(snapshot(&*s, "b"), before);
    // Appending is only allowed where the object ends on a stripe boundary (the pool's
    // required alignment): the store must not rely on it.
    s.write_full("aligned", &body(8192, 5)).unwrap();
    s.write_op("aligned", &WriteOp::new().append(b"xyz".to_vec())).unwrap();
    let mut want = body(8192, 5);
    want.extend_from_slice(b"xyz");
    assert_eq!(s.read_full("aligned").unwrap().0, want);
}

#[test]
fn erasure_aio_writes_and_reads_in_flight() {
    let s = ec_store("aio");
    let n = 32;
    let writes = (0..n).map(|i| {
        let op = WriteOp::new()
            .create_exclusive()
            .write_full(body(3000 + 997 * i, i as u8))
            .set_xattr(format!("rm.ref.m.{i}"), b"");
        s.write_op_async(&format!("b{i}"), op)
    });
    let versions: Vec<u64> = block_on(join_all(writes)).into_iter().map(Result::unwrap).collect();
    let reads = (0..n).map(|i| s.read_op_async(&format!("b{i}"), ReadOp::new().stat().read(0, 1 << 20).xattrs()));
    for (i, r) in block_on(join_all(reads)).into_iter().enumerate() {
        let r = r.unwrap();
        assert_eq!(r.version, versions[i]);
        assert_eq!(r.data.unwrap(), body(3000 + 997 * i, i as u8), "b{i}");
        assert_eq!(r.xattrs.unwrap().keys().collect::<Vec<_>>(), [&format!("rm.ref.m.{i}")]);
    }
    // The refusals come the same way through aio.
    assert_eopnotsupp("aio omap_set", block_on(s.write_op_async("b0", WriteOp::new().omap_set([("k", b"v")]))));
    assert_eopnotsupp("aio append", block_on(s.write_op_async("b0", WriteOp::new().append(b"x".to_vec()))));
    let removes = (0..n).map(|i| {
        s.write_op_async(&format!("b{i}"), WriteOp::new().cmp_xattr(format!("rm.ref.m.{i}"), CmpOp::Eq, b"").remove())
    });
    for r in block_on(join_all(removes)) {
        r.unwrap();
    }
    assert!(s.list_objects().unwrap().next().is_none(), "objects left after the removes");
}
