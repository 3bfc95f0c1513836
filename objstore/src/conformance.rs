//! The conformance suite: behaviour every [`ObjectStore`] backend must show.
//!
//! Each case is a plain public function taking a store bound to a fresh, empty namespace.
//! A backend's test module runs them all with [`conformance_tests!`](crate::conformance_tests),
//! which generates one `#[test]` per case so that one failure never hides another:
//!
//! ```no_run
//! objstore::conformance_tests!(|case: &str| -> std::sync::Arc<dyn objstore::ObjectStore> {
//!     std::sync::Arc::new(objstore::MemoryStore::new(case))
//! });
//! ```
//!
//! Error cases assert the exact [`Error`] variant, so that callers can rely on them whatever
//! the backend.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::executor::block_on;

use crate::{CmpOp, Error, ObjectStore, ReadOp, WriteOp};

mod watch;
pub use watch::*;

/// A store handle as the cases receive it.
pub type Store = Arc<dyn ObjectStore>;

/// Generates one `#[test]` per conformance case. The argument is an expression callable as
/// `fn(&str) -> Arc<dyn ObjectStore>`, given the case name, returning a store bound to a
/// namespace that no other test uses.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            write_full_read_stat, missing_object_errors, versions_increase,
            write_append_truncate, remove_removes_everything, xattrs_binary_roundtrip,
            omap_binary_roundtrip, omap_paging_over_10k_keys, omap_prefix_and_start_after,
            omap_remove_keys_range_clear, create_exclusive_guard, assert_exists_guard,
            assert_version_guard, omap_cmp_guard, cmp_xattr_guard, compound_read,
            concurrent_guarded_updates_lose_nothing, namespaces_are_isolated, list_objects,
            invalid_input_rejected, async_ops_in_flight, large_object_read_full,
            mutations_on_missing_object, comparison_byte_orderings, truncate_never_creates,
            watch_receives_notifies, watch_and_notify_missing_object, unwatch_stops_events,
            notifies_stay_in_their_namespace, fire_and_forget_notifies_arrive,
            removing_a_watched_object_breaks_the_watch,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let store: std::sync::Arc<dyn $crate::ObjectStore> = ($make)(stringify!($case));
                $crate::conformance::$case(&store);
            }
        )*
    };
}

/// The conformance run of a backend without omap (an erasure-coded RADOS pool, or
/// [`crate::MemoryStore::erasure_coded`]): the cases that use no omap, and
/// [`omap_refused_without_omap`], which expects [`Error::Unsupported`] from every omap
/// operation and every partial write where the other cases expect them to work.
#[macro_export]
macro_rules! conformance_tests_without_omap {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            write_full_read_stat, xattrs_binary_roundtrip,
            namespaces_are_isolated, list_objects, large_object_read_full,
            data_and_xattrs_without_omap, omap_refused_without_omap,
        );
    };
}

fn not_found(oid: &str) -> Error {
    Error::NotFound { object: oid.into() }
}

fn assert_conflict<T: std::fmt::Debug>(r: crate::Result<T>) {
    match r {
        Err(Error::Conflict { .. }) => {}
        other => panic!("expected Conflict, got {other:?}"),
    }
}

/// Every byte value, twice, with a NUL in the middle: not valid UTF-8.
fn binary_value() -> Vec<u8> {
    (0..=255u8).chain((0..=255u8).rev()).collect()
}

/// `write_full` then reads: whole, ranges, past the end; stat reports size and version.
pub fn write_full_read_stat(s: &Store) {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let v = s.write_full("obj", &data).unwrap();
    assert!(v > 0, "versions start above zero");
    let (got, rv) = s.read_full("obj").unwrap();
    assert_eq!(got, data);
    assert_eq!(rv, v, "a read reports the version of the last write");
    assert_eq!(s.read("obj", 100, 50).unwrap(), data[100..150]);
    assert_eq!(s.read("obj", 9_990, 50).unwrap(), data[9_990..], "short read at the end");
    assert_eq!(s.read("obj", 20_000, 10).unwrap(), Vec::<u8>::new(), "read past the end is empty");
    let (st, sv) = s.stat("obj").unwrap();
    assert_eq!(st.size, 10_000);
    assert_eq!(sv, v);
    let age = std::time::SystemTime::now().duration_since(st.mtime).unwrap_or_default();
    assert!(age.as_secs() < 300, "mtime is recent: {:?}", st.mtime);
    // Replacing shrinks.
    s.write_full("obj", b"short").unwrap();
    assert_eq!(s.read_full("obj").unwrap().0, b"short");
    // Zero-length objects exist.
    s.write_full("empty", b"").unwrap();
    assert_eq!(s.stat("empty").unwrap().0.size, 0);
    assert_eq!(s.read_full("empty").unwrap().0, Vec::<u8>::new());
}

/// Reads and removes of a missing object fail with `NotFound`.
pub fn missing_object_errors(s: &Store) {
    assert_eq!(s.read_full("nope").unwrap_err(), not_found("nope"));
    assert_eq!(s.stat("nope").unwrap_err(), not_found("nope"));
    assert_eq!(s.xattrs("nope").unwrap_err(), not_found("nope"));
    assert_eq!(s.omap_get("nope", &["k"]).unwrap_err(), not_found("nope"));
    assert_eq!(s.omap_range("nope", "", "", 10).unwrap_err(), not_found("nope"));
    assert_eq!(s.remove("nope").unwrap_err(), not_found("nope"));
    assert_eq!(s.read_op("nope", &ReadOp::new().assert_exists()).unwrap_err(), not_found("nope"));
}

/// Every write raises the version; a failed write leaves it alone.
pub fn versions_increase(s: &Store) {
    let mut last = 0;
    for i in 0..5u8 {
        let v = s.write_op("o", &WriteOp::new().omap_set([("k", vec![i])]).set_xattr("x", vec![i])).unwrap();
        assert!(v > last, "version {v} after {last}");
        last = v;
    }
    let failed = s.write_op("o", &WriteOp::new().assert_version(last + 1000).write_full(b"x".to_vec()));
    assert_conflict(failed);
    assert_eq!(s.stat("o").unwrap().1, last, "a failed write changes nothing");
    assert_eq!(s.read_op("o", &ReadOp::new().omap_get(["k"])).unwrap().version, last);
}

/// Partial writes, appends and truncation.
pub fn write_append_truncate(s: &Store) {
    s.write_op("o", &WriteOp::new().write(4, b"abcd".to_vec())).unwrap();
    assert_eq!(s.read_full("o").unwrap().0, b"\0\0\0\0abcd", "a hole reads as zeros");
    s.write_op("o", &WriteOp::new().append(b"ef".to_vec()).write(0, b"XY".to_vec())).unwrap();
    assert_eq!(s.read_full("o").unwrap().0, b"XY\0\0abcdef");
    s.write_op("o", &WriteOp::new().truncate(3)).unwrap();
    assert_eq!(s.read_full("o").unwrap().0, b"XY\0");
    s.write_op("o", &WriteOp::new().truncate(5)).unwrap();
    assert_eq!(s.read_full("o").unwrap().0, b"XY\0\0\0");
}

/// Removing an object removes its data, xattrs and omap; recreating starts empty.
pub fn remove_removes_everything(s: &Store) {
    let op = WriteOp::new().write_full(b"data".to_vec()).set_xattr("a", b"1".to_vec()).omap_set([("k", b"v")]);
    let v1 = s.write_op("o", &op).unwrap();
    s.remove("o").unwrap();
    assert_eq!(s.stat("o").unwrap_err(), not_found("o"));
    let v2 = s.omap_set("o", &[("k2", b"v2")]).unwrap();
    assert!(v2 > v1, "a recreated object's version is above the old one's");
    assert_eq!(s.read_full("o").unwrap().0, Vec::<u8>::new());
    assert!(s.xattrs("o").unwrap().is_empty());
    assert_eq!(s.omap_all("o", "").unwrap(), vec![("k2".to_string(), b"v2".to_vec())]);
}

/// Binary (non-UTF-8) xattr values round-trip exactly; missing xattrs are distinct errors.
pub fn xattrs_binary_roundtrip(s: &Store) {
    let bin = binary_value();
    s.write_op(
        "o",
        &WriteOp::new().set_xattr("bin", bin.clone()).set_xattr("empty", Vec::new()).set_xattr("t", *b"text"),
    )
    .unwrap();
    assert_eq!(s.get_xattr("o", "bin").unwrap(), bin);
    let all = s.xattrs("o").unwrap();
    let want: BTreeMap<String, Vec<u8>> = [("bin", bin.clone()), ("empty", vec![]), ("t", b"text".to_vec())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(all, want);
    assert_eq!(s.get_xattr("o", "none").unwrap_err(), Error::XattrNotFound { object: "o".into(), name: "none".into() });
    s.write_op("o", &WriteOp::new().rm_xattr("t")).unwrap();
    assert!(!s.xattrs("o").unwrap().contains_key("t"));
}

/// Binary omap values and non-ASCII keys round-trip exactly; missing keys are omitted.
pub fn omap_binary_roundtrip(s: &Store) {
    let bin = binary_value();
    let entries = [("bin", bin.clone()), ("empty", vec![]), ("ключ/🦀", b"utf8 key".to_vec())];
    s.write_op("o", &WriteOp::new().omap_set(entries.clone())).unwrap();
    let got = s.omap_get("o", &["bin", "empty", "ключ/🦀", "missing"]).unwrap();
    let want: BTreeMap<String, Vec<u8>> = entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    assert_eq!(got, want);
    assert_eq!(s.omap_all("o", "").unwrap(), want.into_iter().collect::<Vec<_>>());
}

/// Paging through more than 10,000 omap keys returns each exactly once, in order.
pub fn omap_paging_over_10k_keys(s: &Store) {
    let n = 10_500;
    let keys: Vec<String> = (0..n).map(|i| format!("k{i:06}")).collect();
    for chunk in keys.chunks(1_000) {
        let op = WriteOp::new().omap_set(chunk.iter().map(|k| (k.clone(), k.as_bytes().to_vec())));
        s.write_op("big", &op).unwrap();
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let page = s.omap_range("big", &after, "k", 5_000).unwrap();
        pages += 1;
        assert!(page.entries.len() <= 5_000);
        for (k, v) in &page.entries {
            assert_eq!(v, k.as_bytes());
        }
        if let Some((k, _)) = page.entries.last() {
            after = k.clone();
        }
        seen.extend(page.entries.into_iter().map(|(k, _)| k));
        if !page.more {
            break;
        }
        assert!(pages < 1_000, "paging does not end");
    }
    assert!(pages >= 3, "10,500 keys cannot come in fewer than 3 pages of 5,000");
    assert_eq!(seen, keys);
    assert_eq!(s.omap_all("big", "k009").unwrap().len(), 1_000);
}

/// Prefix filters, `start_after` and `more` behave like RADOS' omap listing.
pub fn omap_prefix_and_start_after(s: &Store) {
    let keys = ["a/1", "a/2", "b", "b/1", "bb", "c"];
    s.write_op("o", &WriteOp::new().omap_set(keys.iter().map(|k| (*k, k.as_bytes().to_vec())))).unwrap();
    let names = |page: crate::OmapPage| page.entries.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(names(s.omap_range("o", "", "b", 100).unwrap()), ["b", "b/1", "bb"]);
    assert_eq!(names(s.omap_range("o", "a/1", "a/", 100).unwrap()), ["a/2"]);
    assert_eq!(names(s.omap_range("o", "a", "b/", 100).unwrap()), ["b/1"], "start_after before the prefix");
    assert_eq!(names(s.omap_range("o", "b/1", "", 100).unwrap()), ["bb", "c"]);
    assert!(names(s.omap_range("o", "c", "b", 100).unwrap()).is_empty(), "start_after past the prefix");
    let one = s.omap_range("o", "", "", 1).unwrap();
    assert!(one.more);
    assert_eq!(names(one), ["a/1"]);
    let last = s.omap_range("o", "bb", "", 1).unwrap();
    assert!(!last.more, "no more after the last key");
    assert_eq!(names(last), ["c"]);
    assert!(s.omap_range("o", "", "zzz", 10).unwrap().entries.is_empty());
}

/// Removing omap keys one by one, by range, and all at once.
pub fn omap_remove_keys_range_clear(s: &Store) {
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    s.write_op("o", &WriteOp::new().omap_set(keys.iter().map(|k| (k.clone(), b"v".to_vec())))).unwrap();
    s.omap_rm_keys("o", &["k0", "k9", "not-there"]).unwrap();
    s.write_op("o", &WriteOp::new().omap_rm_range("k2", "k5")).unwrap();
    let left: Vec<String> = s.omap_all("o", "").unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, ["k1", "k5", "k6", "k7", "k8"]);
    s.write_op("o", &WriteOp::new().omap_clear().set_xattr("still", b"here".to_vec())).unwrap();
    assert!(s.omap_all("o", "").unwrap().is_empty());
    assert_eq!(s.get_xattr("o", "still").unwrap(), b"here", "omap clear keeps the object");
}

/// Exclusive create succeeds once; the losing op applies nothing.
pub fn create_exclusive_guard(s: &Store) {
    s.write_op("o", &WriteOp::new().create_exclusive().omap_set([("owner", b"first")])).unwrap();
    let second = s.write_op("o", &WriteOp::new().create_exclusive().omap_set([("owner", b"second")]));
    assert_eq!(second.unwrap_err(), Error::AlreadyExists { object: "o".into() });
    assert_eq!(s.omap_get("o", &["owner"]).unwrap()["owner"], b"first");
    // An exclusive create with no mutation makes an empty object.
    s.write_op("e", &WriteOp::new().create_exclusive()).unwrap();
    assert_eq!(s.stat("e").unwrap().0.size, 0);
}

/// `assert_exists` fails with `NotFound` and keeps a missing object missing.
pub fn assert_exists_guard(s: &Store) {
    let r = s.write_op("o", &WriteOp::new().assert_exists().omap_set([("k", b"v")]));
    assert_eq!(r.unwrap_err(), not_found("o"));
    assert_eq!(s.stat("o").unwrap_err(), not_found("o"), "nothing was created");
    s.write_full("o", b"x").unwrap();
    s.write_op("o", &WriteOp::new().assert_exists().omap_set([("k", b"v")])).unwrap();
    assert_eq!(s.omap_get("o", &["k"]).unwrap()["k"], b"v");
}

/// `assert_version` passes on the current version only.
pub fn assert_version_guard(s: &Store) {
    let v1 = s.write_full("o", b"one").unwrap();
    let v2 = s.write_op("o", &WriteOp::new().assert_version(v1).write_full(b"two".to_vec())).unwrap();
    assert_conflict(s.write_op("o", &WriteOp::new().assert_version(v1).write_full(b"three".to_vec())));
    assert_eq!(s.read_full("o").unwrap(), (b"two".to_vec(), v2));
    assert_conflict(s.read_op("o", &ReadOp::new().assert_version(v1).stat()));
    assert_eq!(s.read_op("o", &ReadOp::new().assert_version(v2).stat()).unwrap().version, v2);
}

/// Omap comparisons guard writes; a failed one applies nothing; a missing key is empty.
pub fn omap_cmp_guard(s: &Store) {
    s.omap_set("o", &[("k", b"b")]).unwrap();
    let swap = |expect: &[u8], new: &[u8]| {
        s.write_op("o", &WriteOp::new().omap_cmp("k", CmpOp::Eq, expect.to_vec()).omap_set([("k", new.to_vec())]))
    };
    swap(b"b", b"c").unwrap();
    assert_conflict(swap(b"b", b"d"));
    assert_eq!(s.omap_get("o", &["k"]).unwrap()["k"], b"c", "the failed swap applied nothing");
    // A missing key compares as the empty value.
    s.write_op("o", &WriteOp::new().omap_cmp("new", CmpOp::Eq, Vec::new()).omap_set([("new", b"1")])).unwrap();
    assert_conflict(s.write_op("o", &WriteOp::new().omap_cmp("new2", CmpOp::Eq, b"x".to_vec()).omap_set([("x", b"")])));
    // "stored OP operand", bytewise.
    s.write_op("o", &WriteOp::new().omap_cmp("k", CmpOp::Lt, b"d".to_vec()).omap_set([("lt", b"")])).unwrap();
    s.write_op("o", &WriteOp::new().omap_cmp("k", CmpOp::Gt, b"b".to_vec()).omap_set([("gt", b"")])).unwrap();
    assert_conflict(s.write_op("o", &WriteOp::new().omap_cmp("k", CmpOp::Lt, b"c".to_vec()).omap_set([("no", b"")])));
    assert_conflict(s.write_op("o", &WriteOp::new().omap_cmp("k", CmpOp::Gt, b"c".to_vec()).omap_set([("no", b"")])));
    assert!(s.omap_get("o", &["no", "x"]).unwrap().is_empty());
    // Binary operands compare exactly.
    let bin = binary_value();
    s.omap_set("o", &[("bin", &bin)]).unwrap();
    s.write_op("o", &WriteOp::new().omap_cmp("bin", CmpOp::Eq, bin.clone()).omap_set([("bin", b"done")])).unwrap();
    // Comparisons also guard reads.
    assert_conflict(s.read_op("o", &ReadOp::new().omap_cmp("k", CmpOp::Eq, b"zz".to_vec()).stat()));
    s.read_op("o", &ReadOp::new().omap_cmp("k", CmpOp::Eq, b"c".to_vec()).stat()).unwrap();
}

/// Xattr comparisons guard writes with the same semantics as omap comparisons.
pub fn cmp_xattr_guard(s: &Store) {
    s.set_xattr("o", "x", b"b").unwrap();
    let guarded = |op: CmpOp, operand: &[u8], tag: &str| {
        s.write_op("o", &WriteOp::new().cmp_xattr("x", op, operand.to_vec()).omap_set([(tag, b"")]))
    };
    guarded(CmpOp::Eq, b"b", "eq").unwrap();
    assert_conflict(guarded(CmpOp::Eq, b"c", "no1"));
    guarded(CmpOp::Lt, b"c", "lt").unwrap();
    guarded(CmpOp::Gt, b"a", "gt").unwrap();
    assert_conflict(guarded(CmpOp::Lt, b"a", "no2"));
    assert_conflict(guarded(CmpOp::Gt, b"c", "no3"));
    let keys: Vec<String> = s.omap_all("o", "").unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["eq", "gt", "lt"]);
    let bin = binary_value();
    s.set_xattr("o", "bin", &bin).unwrap();
    s.write_op("o", &WriteOp::new().cmp_xattr("bin", CmpOp::Eq, bin.clone()).set_xattr("bin", b"ok".to_vec())).unwrap();
    assert_eq!(s.get_xattr("o", "bin").unwrap(), b"ok");
}

/// One read op returns stat, data, xattrs, omap values and an omap page together.
pub fn compound_read(s: &Store) {
    let op = WriteOp::new().write_full(b"hello world".to_vec()).set_xattr("x", b"1".to_vec()).omap_set([
        ("h/a", b"1"),
        ("h/b", b"2"),
        ("i/a", b"3"),
    ]);
    let v = s.write_op("o", &op).unwrap();
    let read =
        ReadOp::new().assert_exists().stat().read(6, 5).xattrs().omap_get(["h/a", "zz"]).omap_range("", "h/", 10);
    let r = s.read_op("o", &read).unwrap();
    assert_eq!(r.version, v);
    assert_eq!(r.stat.unwrap().size, 11);
    assert_eq!(r.data.unwrap(), b"world");
    assert_eq!(r.xattrs.unwrap()["x"], b"1");
    assert_eq!(r.omap.unwrap().into_iter().collect::<Vec<_>>(), [("h/a".to_string(), b"1".to_vec())]);
    let page = r.omap_page.unwrap();
    assert!(!page.more);
    assert_eq!(page.entries, [("h/a".to_string(), b"1".to_vec()), ("h/b".to_string(), b"2".to_vec())]);
}

/// Eight threads increment one counter with compare-and-swap; no increment is lost and no
/// value is handed out twice.
pub fn concurrent_guarded_updates_lose_nothing(s: &Store) {
    const THREADS: u64 = 8;
    const PER_THREAD: u64 = 40;
    s.write_op("ctr", &WriteOp::new().create_exclusive().omap_set([("n", b"0")])).unwrap();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut won = Vec::new();
                let mut conflicts = 0u64;
                while (won.len() as u64) < PER_THREAD {
                    let cur = s.omap_get("ctr", &["n"]).unwrap()["n"].clone();
                    let n: u64 = String::from_utf8(cur.clone()).unwrap().parse().unwrap();
                    let next = (n + 1).to_string();
                    let op = WriteOp::new().omap_cmp("n", CmpOp::Eq, cur).omap_set([
                        ("n".to_string(), next.clone().into_bytes()),
                        (format!("by/{next}"), vec![t as u8]),
                    ]);
                    match s.write_op("ctr", &op) {
                        Ok(_) => won.push(n + 1),
                        Err(Error::Conflict { .. }) => conflicts += 1,
                        Err(e) => panic!("thread {t}: {e}"),
                    }
                }
                (won, conflicts)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        let (won, _conflicts) = h.join().unwrap();
        all.extend(won);
    }
    all.sort_unstable();
    let want: Vec<u64> = (1..=THREADS * PER_THREAD).collect();
    assert_eq!(all, want, "every value handed out exactly once");
    let n = s.omap_get("ctr", &["n"]).unwrap()["n"].clone();
    assert_eq!(n, (THREADS * PER_THREAD).to_string().into_bytes());
    assert_eq!(s.omap_all("ctr", "by/").unwrap().len() as u64, THREADS * PER_THREAD);
}

/// The same object name in two namespaces names two objects.
pub fn namespaces_are_isolated(s: &Store) {
    let other_ns = format!("{}-other", s.namespace());
    let other = s.with_namespace(&other_ns).unwrap();
    assert_eq!(other.namespace(), other_ns);
    s.write_full("same", b"mine").unwrap();
    assert_eq!(other.stat("same").unwrap_err(), not_found("same"));
    other.write_full("same", b"theirs").unwrap();
    assert_eq!(s.read_full("same").unwrap().0, b"mine");
    assert_eq!(other.read_full("same").unwrap().0, b"theirs");
    let names: Vec<String> = other.list_objects().unwrap().map(Result::unwrap).collect();
    assert_eq!(names, ["same"]);
    let spaces = s.list_namespaces().unwrap();
    assert!(spaces.contains(&s.namespace().to_string()), "{spaces:?}");
    assert!(spaces.contains(&other_ns), "{spaces:?}");
    assert_eq!(
        s.with_namespace("bad\0ns").unwrap_err(),
        Error::InvalidInput("namespace \"bad\\0ns\" contains a NUL byte".into())
    );
}

/// Listing returns exactly the objects of the namespace.
pub fn list_objects(s: &Store) {
    assert_eq!(s.list_objects().unwrap().count(), 0, "a fresh namespace is empty");
    let mut want: Vec<String> = (0..25).map(|i| format!("obj.{i}")).collect();
    for name in &want {
        s.write_full(name, name.as_bytes()).unwrap();
    }
    s.remove("obj.7").unwrap();
    want.retain(|n| n != "obj.7");
    let mut got: Vec<String> = s.list_objects().unwrap().map(Result::unwrap).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// Names the store cannot hold are refused with `InvalidInput`, before any I/O.
pub fn invalid_input_rejected(s: &Store) {
    let invalid = |r: crate::Result<u64>| match r {
        Err(Error::InvalidInput(_)) => {}
        other => panic!("expected InvalidInput, got {other:?}"),
    };
    invalid(s.write_full("", b"x"));
    invalid(s.write_full("nul\0name", b"x"));
    invalid(s.write_full(&"x".repeat(crate::MAX_OID_LEN + 1), b"x"));
    invalid(s.set_xattr("o", "bad\0name", b"x"));
    invalid(s.set_xattr("o", "", b"x"));
    invalid(s.omap_set("o", &[("k\0", b"x")]));
    invalid(s.write_op("o", &WriteOp::new()));
    invalid(s.write_op("o", &WriteOp::new().remove().create().remove()));
    assert!(matches!(s.read_op("o", &ReadOp::new().omap_get(["a\0b"])), Err(Error::InvalidInput(_))));
    assert!(matches!(s.read("o", 0, crate::MAX_READ + 1), Err(Error::InvalidInput(_) | Error::TooLarge(_))));
    let too_big = vec![0u8; crate::MAX_WRITE as usize + 1];
    assert!(matches!(s.write_full("o", &too_big), Err(Error::TooLarge(_))));
    assert_eq!(s.stat("o").unwrap_err(), not_found("o"), "nothing was written");
}

/// Many asynchronous operations in flight at once all complete correctly.
pub fn async_ops_in_flight(s: &Store) {
    let writes = (0..64u32).map(|i| {
        let op = WriteOp::new().write_full(i.to_le_bytes().to_vec()).omap_set([("i", i.to_string().into_bytes())]);
        s.write_op_async(&format!("a{i}"), op)
    });
    let versions = block_on(futures::future::join_all(writes));
    assert!(versions.iter().all(|v| matches!(v, Ok(n) if *n > 0)), "{versions:?}");
    let reads = (0..64u32).map(|i| s.read_op_async(&format!("a{i}"), ReadOp::new().read(0, 16).omap_get(["i"])));
    for (i, r) in block_on(futures::future::join_all(reads)).into_iter().enumerate() {
        let r = r.unwrap();
        assert_eq!(r.data.unwrap(), (i as u32).to_le_bytes());
        assert_eq!(r.omap.unwrap()["i"], i.to_string().into_bytes());
    }
    let missing = block_on(s.read_op_async("missing", ReadOp::new().stat()));
    assert_eq!(missing.unwrap_err(), not_found("missing"));
    let guarded = block_on(s.write_op_async("a0", WriteOp::new().create_exclusive()));
    assert_eq!(guarded.unwrap_err(), Error::AlreadyExists { object: "a0".into() });
}

/// Objects larger than one read round-trip through `read_full`.
pub fn large_object_read_full(s: &Store) {
    let data: Vec<u8> = (0..(3u32 << 20) + 17).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    s.write_full("big", &data).unwrap();
    let (got, _) = s.read_full("big").unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "3 MiB + 17 bytes read back exactly");
}

/// Mutations that need an object fail with `NotFound` on a missing one and create nothing.
pub fn mutations_on_missing_object(s: &Store) {
    assert_eq!(s.omap_rm_keys("m", &["k"]).unwrap_err(), not_found("m"));
    assert_eq!(s.write_op("m", &WriteOp::new().omap_clear()).unwrap_err(), not_found("m"));
    assert_eq!(s.stat("m").unwrap_err(), not_found("m"));
    // Setting omap or xattrs creates the object.
    s.omap_set("m", &[("k", b"v")]).unwrap();
    assert_eq!(s.stat("m").unwrap().0.size, 0);
}

/// Ordering comparisons follow RADOS byte for byte: unsigned for xattrs, signed chars for
/// omap values (0xff sorts before 'x' there).
pub fn comparison_byte_orderings(s: &Store) {
    s.write_op("o", &WriteOp::new().omap_set([("k", b"x")]).set_xattr("k", b"x".to_vec())).unwrap();
    let omap =
        |op: CmpOp, operand: &[u8]| s.write_op("o", &WriteOp::new().omap_cmp("k", op, operand.to_vec()).create());
    let xattr =
        |op: CmpOp, operand: &[u8]| s.write_op("o", &WriteOp::new().cmp_xattr("k", op, operand.to_vec()).create());
    xattr(CmpOp::Lt, b"\xff").unwrap();
    assert_conflict(xattr(CmpOp::Gt, b"\xff"));
    omap(CmpOp::Gt, b"\xff").unwrap();
    assert_conflict(omap(CmpOp::Lt, b"\xff"));
    // ASCII orders the same way in both.
    omap(CmpOp::Lt, b"y").unwrap();
    xattr(CmpOp::Lt, b"y").unwrap();
    // A missing value is the empty one, smaller than anything.
    s.write_op("o", &WriteOp::new().omap_cmp("none", CmpOp::Lt, b"\x00".to_vec()).create()).unwrap();
    s.write_op("o", &WriteOp::new().cmp_xattr("none", CmpOp::Lt, b"\x00".to_vec()).create()).unwrap();
    // Guards on a missing object report the object missing.
    assert_eq!(
        s.write_op("m", &WriteOp::new().omap_cmp("k", CmpOp::Eq, Vec::new()).create()).unwrap_err(),
        not_found("m")
    );
    assert_eq!(
        s.write_op("m", &WriteOp::new().cmp_xattr("k", CmpOp::Eq, Vec::new()).create()).unwrap_err(),
        not_found("m")
    );
}

/// Truncating a missing object succeeds without creating it, even after a remove in the
/// same operation.
pub fn truncate_never_creates(s: &Store) {
    s.write_op("t", &WriteOp::new().truncate(3)).unwrap();
    assert_eq!(s.stat("t").unwrap_err(), not_found("t"));
    s.write_full("t", b"abcdef").unwrap();
    s.write_op("t", &WriteOp::new().remove().truncate(2)).unwrap();
    assert_eq!(s.stat("t").unwrap_err(), not_found("t"));
}

/// Without omap, the data path still has everything it needs: exclusive create with data
/// and xattrs in one operation, xattr comparison guards, version guards, remove.
pub fn data_and_xattrs_without_omap(s: &Store) {
    let v = s
        .write_op("b", &WriteOp::new().create_exclusive().write_full(*b"body").set_xattr("rm.ref.x", Vec::new()))
        .unwrap();
    let r = s.read_op("b", &ReadOp::new().stat().read(0, 10).xattrs()).unwrap();
    assert_eq!(r.data.unwrap(), b"body");
    assert!(r.xattrs.unwrap().contains_key("rm.ref.x"));
    let v2 = s.write_op("b", &WriteOp::new().assert_exists().set_xattr("rm.ref.y", Vec::new())).unwrap();
    assert!(v2 > v);
    assert_conflict(s.write_op("b", &WriteOp::new().assert_version(v).rm_xattr("rm.ref.x")));
    s.write_op("b", &WriteOp::new().assert_version(v2).rm_xattr("rm.ref.x")).unwrap();
    assert_conflict(s.write_op("b", &WriteOp::new().cmp_xattr("rm.ref.y", CmpOp::Eq, *b"z").remove()));
    s.write_op("b", &WriteOp::new().cmp_xattr("rm.ref.y", CmpOp::Eq, Vec::new()).remove()).unwrap();
    assert_eq!(s.stat("b").unwrap_err(), not_found("b"));
}

/// Every omap operation, read or write, alone or next to data, and every partial write (at
/// an offset, append, truncate: an erasure-coded pool without `allow_ec_overwrites` writes
/// whole objects only) fails with [`Error::Unsupported`] and changes nothing.
pub fn omap_refused_without_omap(s: &Store) {
    let unsupported = |r: crate::Result<()>, what: &str| match r {
        Err(Error::Unsupported { .. }) => {}
        other => panic!("{what}: expected Unsupported, got {other:?}"),
    };
    s.write_full("o", b"data").unwrap();
    let writes = [
        ("omap_set", WriteOp::new().omap_set([("k", b"v")])),
        ("omap_set with data", WriteOp::new().write_full(*b"new").omap_set([("k", b"v")])),
        ("omap_rm_keys", WriteOp::new().omap_rm_keys(["k"])),
        ("omap_rm_range", WriteOp::new().omap_rm_range("a", "z")),
        ("omap_clear", WriteOp::new().omap_clear()),
        ("omap_cmp", WriteOp::new().omap_cmp("k", CmpOp::Eq, Vec::new()).write_full(*b"new")),
        ("write at an offset", WriteOp::new().write(2, *b"xy")),
        ("append", WriteOp::new().append(*b"more")),
        ("truncate", WriteOp::new().truncate(1)),
        ("append with an xattr", WriteOp::new().set_xattr("a", b"1").append(*b"more")),
    ];
    for (what, op) in writes {
        unsupported(s.write_op("o", &op).map(drop), what);
    }
    unsupported(s.read_op("o", &ReadOp::new().omap_get(["k"])).map(drop), "omap_get");
    unsupported(s.read_op("o", &ReadOp::new().omap_range("", "", 10)).map(drop), "omap_range");
    unsupported(s.read_op("o", &ReadOp::new().read(0, 4).omap_range("", "", 10)).map(drop), "read with omap");
    assert_eq!(s.read_full("o").unwrap().0, b"data", "nothing changed");
}
