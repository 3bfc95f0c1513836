//! The Dovecot-style dict (`rados_mail::dict`) on both backends and both layouts: every
//! case is a plain function over a [`Fixture`], run on the in-memory store and on the real
//! cluster (`CEPH_CONF`; without a reachable cluster the cluster cases fail, never skip),
//! each with the dicts as one object (0 shards) and spread over [`SHARDS`] objects. The
//! last test has 8 OS processes increment one counter at once on the cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rados_mail::dict::{Committed, Dict, MAX_KEY_LEN, Scope};
use rados_mail::objstore::{CountingStore, FaultMode, FaultyStore, ObjectStore, OpCounts};
use rados_mail::{Config, Error, MailStore};

mod common;

/// Shards of the sharded layout in these tests: enough that most transactions of the cases
/// touch several shards.
const SHARDS: u32 = 16;

/// A private and a shared dict in namespaces of their own, and the raw private namespace.
/// Both dicts have `shards` shards (in production only the shared one is sharded; the
/// cases are about the layout, and most use the private dict).
struct Fixture {
    private: Dict,
    shared: Dict,
    /// The namespace of the private dict, to look at what it stored.
    raw: Arc<dyn ObjectStore>,
    shards: u32,
}

impl Fixture {
    fn over(pool: &MailStore, namespace: &str, shards: u32) -> Fixture {
        let raw = pool.pool().with_namespace(namespace).unwrap();
        let shared_ns = pool.pool().with_namespace(&format!("{namespace}-shared")).unwrap();
        let (private, shared) = (dict(raw.clone(), Scope::Private, shards), dict(shared_ns, Scope::Shared, shards));
        Fixture { private, shared, raw, shards }
    }

    fn memory(shards: u32) -> Fixture {
        Fixture::over(&MailStore::in_memory(Config::default()), "alice", shards)
    }

    fn cluster(case: &str, shards: u32) -> Fixture {
        Fixture::over(&common::cluster_store(), &unique_namespace(&format!("{case}-{shards}")), shards)
    }

    /// Every omap entry of the private namespace, checking that each is in its key's object.
    fn stored(&self) -> Vec<(String, Vec<u8>)> {
        let mut all = Vec::new();
        for object in self.raw.list_objects().unwrap().map(Result::unwrap) {
            for (key, value) in self.raw.omap_all(&object, "").unwrap() {
                assert_eq!(self.private.object_of(&key), object, "{key:?} is in the wrong object");
                all.push((key, value));
            }
        }
        all.sort();
        all
    }

    /// The number of distinct objects holding these keys.
    fn objects_of(&self, keys: &[&str]) -> u64 {
        keys.iter().map(|k| self.private.object_of(k)).collect::<BTreeSet<_>>().len() as u64
    }
}

fn dict(store: Arc<dyn ObjectStore>, scope: Scope, shards: u32) -> Dict {
    Dict::with_shards(store, Arc::new(Config::default()), scope, shards).unwrap()
}

fn unique_namespace(case: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
    format!("mt-dict-{case}-{}-{nanos}", std::process::id())
}

fn commit(d: &Dict, ops: &[(&str, Option<&[u8]>)]) {
    let mut t = d.transaction();
    for (key, value) in ops {
        match value {
            Some(v) => t.set(key, v).unwrap(),
            None => t.unset(key).unwrap(),
        }
    }
    t.commit().unwrap();
}

fn get(d: &Dict, key: &str) -> Option<Vec<u8>> {
    d.lookup(key).unwrap()
}

/// A value as text, for readable assertion messages.
fn text(d: &Dict, key: &str) -> Option<String> {
    get(d, key).map(|v| String::from_utf8_lossy(&v).into_owned())
}

fn keys(entries: &[(String, Vec<u8>)]) -> Vec<&str> {
    entries.iter().map(|(k, _)| k.as_str()).collect()
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::InvalidInput(_)))
}

// ---- The cases. ----

fn lookup_set_unset(f: &Fixture) {
    let d = &f.private;
    assert_eq!(get(d, "priv/a"), None, "a dict that was never written is empty");
    assert_eq!(d.iterate("priv", true).unwrap(), []);
    commit(d, &[("priv/a", Some(b"1")), ("priv/b", Some(b"2")), ("priv/empty", Some(b""))]);
    assert_eq!(get(d, "priv/a").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(d, "priv/b").as_deref(), Some(&b"2"[..]));
    assert_eq!(get(d, "priv/empty").as_deref(), Some(&b""[..]), "empty is a value, not unset");
    commit(d, &[("priv/a", Some(b"one")), ("priv/b", None), ("priv/never-set", None)]);
    assert_eq!(get(d, "priv/a").as_deref(), Some(&b"one"[..]));
    assert_eq!(get(d, "priv/b"), None);

    // The layout of docs/FORMAT.md: one object (`dict`) or the keys' shards (`dict.<s>`,
    // crc32 of the key mod N), omap key = the full Dovecot key. Every object a commit
    // touched exists (an unset creates its object, as it always did).
    let objects: BTreeSet<String> = f.raw.list_objects().unwrap().map(Result::unwrap).collect();
    let touched = ["priv/a", "priv/b", "priv/empty", "priv/never-set"];
    assert_eq!(objects, touched.iter().map(|k| d.object_of(k)).collect());
    if f.shards == 0 {
        assert_eq!(objects, BTreeSet::from(["dict".to_string()]));
    } else {
        assert!(objects.iter().all(|o| o.len() == 9 && o.starts_with("dict.")), "{objects:?}");
    }
    assert_eq!(f.stored(), [("priv/a".into(), b"one".to_vec()), ("priv/empty".into(), Vec::new())]);
}

fn unset_only_on_a_missing_dict(f: &Fixture) {
    commit(&f.private, &[("priv/x", None)]);
    assert_eq!(get(&f.private, "priv/x"), None);
}

fn binary_values(f: &Fixture) {
    let d = &f.private;
    let all_bytes: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let values: [(&str, Vec<u8>); 5] = [
        ("priv/bin/all", all_bytes),
        ("priv/bin/nul", b"\0".to_vec()),
        ("priv/bin/nuls", b"a\0b\0\0".to_vec()),
        ("priv/bin/not-utf8", b"\xff\xfe\x80\xc3(".to_vec()),
        ("priv/bin/large", (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect()),
    ];
    let mut t = d.transaction();
    for (k, v) in &values {
        t.set(k, v).unwrap();
    }
    t.commit().unwrap();
    for (k, v) in &values {
        assert_eq!(get(d, k).as_ref(), Some(v), "{k}");
    }
    let listed = d.iterate("priv/bin", false).unwrap();
    let mut want: Vec<(String, Vec<u8>)> = values.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    want.sort();
    assert_eq!(listed, want);
}

fn iterate_recursive_or_not(f: &Fixture) {
    let d = &f.private;
    let all = [
        "priv/a",
        "priv/a/b",
        "priv/a/c",
        "priv/a/c/d",
        "priv/a/c/e/f",
        "priv/a/ü",
        "priv/a0",
        "priv/ab",
        "priv/b",
        "priv/b/x",
    ];
    let mut t = d.transaction();
    for k in all {
        t.set(k, k.as_bytes()).unwrap();
    }
    t.commit().unwrap();

    let cases: [(&str, bool, &[&str]); 10] = [
        ("priv/a", false, &["priv/a/b", "priv/a/c", "priv/a/ü"]),
        ("priv/a/", false, &["priv/a/b", "priv/a/c", "priv/a/ü"]),
        ("priv/a", true, &["priv/a/b", "priv/a/c", "priv/a/c/d", "priv/a/c/e/f", "priv/a/ü"]),
        ("priv/a/c", false, &["priv/a/c/d"]),
        ("priv/a/c", true, &["priv/a/c/d", "priv/a/c/e/f"]),
        ("priv", false, &["priv/a", "priv/a0", "priv/ab", "priv/b"]),
        ("priv/", false, &["priv/a", "priv/a0", "priv/ab", "priv/b"]),
        ("priv", true, &all),
        ("priv/a/b", true, &[]),
        ("priv/nothing", false, &[]),
    ];
    for (prefix, recursive, want) in cases {
        let got = d.iterate(prefix, recursive).unwrap();
        assert_eq!(keys(&got), want, "iterate({prefix:?}, {recursive})");
        assert!(got.iter().all(|(k, v)| k.as_bytes() == v.as_slice()));
    }
}

fn paging_over_many_keys(f: &Fixture) {
    const N: usize = 2_500;
    let d = &f.private;
    let mut t = d.transaction();
    for i in 0..N {
        t.set(&format!("priv/p/k{i:05}"), i.to_string().as_bytes()).unwrap();
        t.set(&format!("priv/p/k{i:05}/sub"), b"deep").unwrap();
    }
    t.set("priv/p0", b"next to it").unwrap();
    t.commit().unwrap();

    let flat = d.iterate("priv/p", false).unwrap();
    assert_eq!(flat.len(), N);
    assert!(
        flat.iter().enumerate().all(|(i, (k, v))| *k == format!("priv/p/k{i:05}") && *v == i.to_string().as_bytes())
    );
    let deep = d.iterate("priv/p", true).unwrap();
    assert_eq!(deep.len(), 2 * N);
    assert!(deep.windows(2).all(|w| w[0].0 < w[1].0), "in key order");

    for (recursive, want) in [(false, &flat), (true, &deep)] {
        for max in [1_000, 333, 5_000] {
            let mut paged = Vec::new();
            let mut after = String::new();
            let mut pages = 0;
            loop {
                let (page, more) = d.iterate_page("priv/p", recursive, &after, max).unwrap();
                assert!(page.len() <= max);
                pages += 1;
                paged.extend(page);
                if !more {
                    break;
                }
                after = paged.last().unwrap().0.clone();
            }
            assert_eq!(&paged, want, "recursive {recursive}, pages of {max}");
            assert!(pages <= want.len() / max + 2, "{pages} pages of {max}");
        }
    }
    let (tail, more) = d.iterate_page("priv/p", false, "priv/p/k02497", 10).unwrap();
    assert_eq!(keys(&tail), ["priv/p/k02498", "priv/p/k02499"]);
    assert!(!more);
    assert!(is_invalid(d.iterate_page("priv/p", false, "", 0)));
}

fn invalid_keys(f: &Fixture) {
    let d = &f.private;
    let longest = format!("priv/{}", "x".repeat(MAX_KEY_LEN - 5));
    let too_long = format!("priv/{}", "x".repeat(MAX_KEY_LEN - 4));
    let bad: [&str; 14] = [
        "",
        "priv",
        "priv/",
        "Priv/x",
        "private/x",
        "x/priv/y",
        "shared/x",
        "priv/a\0b",
        "priv/a\nb",
        "priv/\t",
        "priv/a\u{7f}",
        "priv/\u{9b}c1",
        "\u{1b}priv/x",
        &too_long,
    ];
    for key in bad {
        assert!(is_invalid(d.lookup(key)), "lookup {key:?}");
        let mut t = d.transaction();
        assert!(is_invalid(t.set(key, b"v")), "set {key:?}");
        assert!(is_invalid(t.unset(key)), "unset {key:?}");
        assert!(is_invalid(t.atomic_inc(key, 1)), "atomic_inc {key:?}");
        assert!(t.is_empty());
        t.set("priv/fine", b"v").unwrap();
        // A transaction that had an operation refused never applies the rest.
        assert!(is_invalid(t.commit()), "commit after {key:?}");
    }
    for prefix in ["", "shared", "shared/x", "private", "priv/a\nb", &too_long] {
        assert!(is_invalid(d.iterate(prefix, true)), "iterate {prefix:?}");
        assert!(is_invalid(d.iterate_page(prefix, false, "", 10)), "iterate_page {prefix:?}");
    }
    assert_eq!(get(d, "priv/fine"), None);
    assert!(f.raw.list_objects().unwrap().next().is_none(), "nothing was written");

    let good = [longest.as_str(), "priv/ä/ünïcödé ✓", "priv/a/", "priv/with space", "priv/\u{10ffff}"];
    for key in good {
        commit(d, &[(key, Some(key.as_bytes()))]);
        assert_eq!(get(d, key).as_deref(), Some(key.as_bytes()), "{key:?}");
    }
}

fn scopes_are_separate(f: &Fixture) {
    let (p, s) = (&f.private, &f.shared);
    assert_eq!((p.scope(), s.scope()), (Scope::Private, Scope::Shared));
    commit(p, &[("priv/motd", Some(b"mine"))]);
    commit(s, &[("shared/motd", Some(b"everyone's"))]);
    let Err(Error::InvalidInput(why)) = p.lookup("shared/motd") else { panic!("a private dict read a shared key") };
    assert!(why.contains("shared"), "{why}");
    assert!(is_invalid(s.lookup("priv/motd")));
    assert!(is_invalid(s.transaction().set("priv/x", b"1")));
    assert!(is_invalid(p.transaction().atomic_inc("shared/n", 1)));
    assert!(is_invalid(p.iterate("shared", true)));
    assert!(is_invalid(s.iterate("priv", true)));
    assert_eq!(get(s, "shared/motd").as_deref(), Some(&b"everyone's"[..]));
    assert_eq!(keys(&s.iterate("shared", true).unwrap()), ["shared/motd"]);
    assert_eq!(keys(&p.iterate("priv", true).unwrap()), ["priv/motd"]);
    assert_eq!(keys(&f.stored()), ["priv/motd"]);
}

fn counters(f: &Fixture) {
    let d = &f.private;
    let inc = |ops: &[(&str, i64)]| {
        let mut t = d.transaction();
        for (k, delta) in ops {
            t.atomic_inc(k, *delta).unwrap();
        }
        assert_eq!(t.commit().unwrap(), Committed::Applied);
    };
    // As in Dovecot's dict API, an increment changes only a key that exists.
    let mut t = d.transaction();
    t.atomic_inc("priv/n", 5).unwrap();
    t.set("priv/other", b"applied").unwrap();
    assert_eq!(t.commit().unwrap(), Committed::CounterNotFound);
    assert_eq!(get(d, "priv/n"), None, "an unset counter stays unset");
    assert_eq!(get(d, "priv/other").as_deref(), Some(&b"applied"[..]), "the rest is applied");
    commit(d, &[("priv/n", Some(b"0")), ("priv/m", Some(b""))]);
    inc(&[("priv/n", 5)]);
    assert_eq!(get(d, "priv/n").as_deref(), Some(&b"5"[..]));
    inc(&[("priv/n", -7)]);
    let object = d.object_of("priv/n");
    assert_eq!(f.raw.omap_get(&object, &["priv/n"]).unwrap()["priv/n"], b"-2", "stored as ASCII decimal");
    inc(&[("priv/n", 2), ("priv/n", 3), ("priv/m", 0)]);
    assert_eq!(get(d, "priv/n").as_deref(), Some(&b"3"[..]));
    assert_eq!(get(d, "priv/m").as_deref(), Some(&b"0"[..]));

    let mut t = d.transaction();
    t.set("priv/s", b"10").unwrap();
    t.atomic_inc("priv/s", 5).unwrap();
    t.atomic_inc("priv/later-set", 1).unwrap();
    t.set("priv/later-set", b"not a number").unwrap();
    t.unset("priv/n").unwrap();
    t.atomic_inc("priv/n", 4).unwrap();
    t.set("priv/e", b"").unwrap();
    t.atomic_inc("priv/e", -1).unwrap();
    assert_eq!(t.commit().unwrap(), Committed::CounterNotFound, "the increment after the unset");
    assert_eq!(get(d, "priv/s").as_deref(), Some(&b"15"[..]), "atomic_inc after set adds to it");
    assert_eq!(get(d, "priv/later-set").as_deref(), Some(&b"not a number"[..]), "the later set wins");
    assert_eq!(get(d, "priv/n"), None, "atomic_inc after unset finds no key");
    assert_eq!(get(d, "priv/e").as_deref(), Some(&b"-1"[..]), "an empty value counts as 0");

    commit(d, &[("priv/max", Some(i64::MAX.to_string().as_bytes())), ("priv/big", Some(b"+41"))]);
    inc(&[("priv/big", 1), ("priv/max", -1)]);
    assert_eq!(get(d, "priv/big").as_deref(), Some(&b"42"[..]));
    assert_eq!(get(d, "priv/max"), Some((i64::MAX - 1).to_string().into_bytes()));
}

fn failing_increment_applies_nothing(f: &Fixture) {
    let d = &f.private;
    commit(
        d,
        &[("priv/text", Some(b"hello")), ("priv/keep", Some(b"kept")), ("priv/max", Some(b"9223372036854775807"))],
    );
    let before = d.iterate("priv", true).unwrap();

    let mut t = d.transaction();
    t.set("priv/a", b"1").unwrap();
    t.set("priv/b", b"2").unwrap();
    t.unset("priv/keep").unwrap();
    t.atomic_inc("priv/n", 1).unwrap();
    t.atomic_inc("priv/text", 1).unwrap();
    let Err(Error::InvalidInput(why)) = t.commit() else { panic!("incrementing a non-number committed") };
    assert!(why.contains("priv/text"), "{why}");

    let mut t = d.transaction();
    t.set("priv/a", b"1").unwrap();
    t.atomic_inc("priv/max", 1).unwrap();
    assert!(is_invalid(t.commit()), "overflow");

    let mut t = d.transaction();
    t.set("priv/a", b"1").unwrap();
    t.set("priv/c", b"three").unwrap();
    t.atomic_inc("priv/c", 1).unwrap();
    assert!(is_invalid(t.commit()), "a non-number set in the same transaction");

    assert_eq!(d.iterate("priv", true).unwrap(), before, "nothing of the failed transactions was applied");
}

fn rollback_applies_nothing(f: &Fixture) {
    let d = &f.private;
    commit(d, &[("priv/keep", Some(b"1"))]);
    let mut t = d.transaction();
    t.set("priv/new", b"x").unwrap();
    t.unset("priv/keep").unwrap();
    t.atomic_inc("priv/n", 1).unwrap();
    t.rollback();
    let mut t = d.transaction();
    t.set("priv/dropped", b"x").unwrap();
    drop(t);
    assert!(d.transaction().is_empty());
    d.transaction().commit().unwrap();
    assert_eq!(keys(&d.iterate("priv", true).unwrap()), ["priv/keep"]);
}

fn one_write_per_commit(f: &Fixture) {
    let counting = CountingStore::new(f.raw.clone());
    let d = dict(Arc::new(counting.clone()), Scope::Private, f.shards);
    let cost = |run: &dyn Fn()| {
        let before = counting.counts();
        run();
        counting.counts() - before
    };
    // Dict writes notify nobody: no watcher follows dicts.
    let ops = |reads, writes| OpCounts { reads, writes, lists: 0, notifies: 0, watches: 0 };
    commit(&d, &[("priv/n", Some(b"0")), ("priv/m", Some(b"0"))]);
    assert_eq!(
        cost(&|| assert_eq!(d.transaction().commit().unwrap(), Committed::Applied)),
        ops(0, 0),
        "an empty commit does no I/O"
    );
    let plain = || commit(&d, &[("priv/a", Some(b"1")), ("priv/b", Some(b"2")), ("priv/c", None)]);
    let objects = f.objects_of(&["priv/a", "priv/b", "priv/c"]);
    assert_eq!(cost(&plain), ops(0, objects), "sets and unsets: one write per object, no read");
    let mixed = || {
        let mut t = d.transaction();
        t.set("priv/d", b"4").unwrap();
        t.unset("priv/a").unwrap();
        t.atomic_inc("priv/n", 1).unwrap();
        t.atomic_inc("priv/m", -1).unwrap();
        t.commit().unwrap();
    };
    let (read, written) =
        (f.objects_of(&["priv/n", "priv/m"]), f.objects_of(&["priv/d", "priv/a", "priv/n", "priv/m"]));
    assert_eq!(cost(&mixed), ops(read, written), "with counters: one read of them per object, one write per object");
    if f.shards == 0 {
        assert_eq!((read, written), (1, 1));
    }
    assert_eq!(cost(&|| drop(d.lookup("priv/n").unwrap())), ops(1, 0));
    assert_eq!(get(&d, "priv/m").as_deref(), Some(&b"-1"[..]));
}

fn commit_failures_are_returned(f: &Fixture) {
    let faulty = FaultyStore::new(f.raw.clone());
    let d = dict(Arc::new(faulty.clone()), Scope::Private, f.shards);
    commit(&d, &[("priv/a", Some(b"1"))]);
    faulty.fail_after(0, FaultMode::WritesUnavailable);
    let mut t = d.transaction();
    t.set("priv/a", b"2").unwrap();
    t.atomic_inc("priv/n", 1).unwrap();
    assert!(matches!(t.commit(), Err(Error::Unavailable(_))));
    assert_eq!(get(&d, "priv/a").as_deref(), Some(&b"1"[..]), "reads still work");
    faulty.fail_after(0, FaultMode::Unavailable);
    assert!(matches!(d.lookup("priv/a"), Err(Error::Unavailable(_))));
    assert!(matches!(d.iterate("priv", true), Err(Error::Unavailable(_))));
    faulty.heal();
    assert_eq!(get(&d, "priv/n"), None);
}

/// 8 threads, each committing 200 transactions of "counter += 1, set my key".
fn concurrent_threads(f: &Fixture) {
    const THREADS: usize = 8;
    const INCREMENTS: usize = 200;
    commit(&f.private, &[("priv/counter", Some(b"0"))]);
    let start = Instant::now();
    std::thread::scope(|s| {
        for me in 0..THREADS {
            let d = f.private.clone();
            s.spawn(move || {
                for i in 0..INCREMENTS {
                    let mut t = d.transaction();
                    t.atomic_inc("priv/counter", 1).unwrap();
                    t.set(&format!("priv/by/{me}/{i:03}"), b"").unwrap();
                    t.commit().unwrap();
                }
            });
        }
    });
    eprintln!("dict: {} contended commits from {THREADS} threads in {:.1?}", THREADS * INCREMENTS, start.elapsed());
    let total = (THREADS * INCREMENTS).to_string();
    assert_eq!(text(&f.private, "priv/counter"), Some(total), "an increment was lost");
    assert_eq!(f.private.iterate("priv/by", true).unwrap().len(), THREADS * INCREMENTS);
}

macro_rules! dict_cases {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(#[test] fn $case() { super::$case(&super::Fixture::memory(0)); })*
        }
        mod cluster {
            $(#[test] fn $case() { super::$case(&super::Fixture::cluster(stringify!($case), 0)); })*
        }
        mod memory_sharded {
            $(#[test] fn $case() { super::$case(&super::Fixture::memory(super::SHARDS)); })*
        }
        mod cluster_sharded {
            $(#[test] fn $case() {
                super::$case(&super::Fixture::cluster(stringify!($case), super::SHARDS));
            })*
        }
    };
}

dict_cases!(
    lookup_set_unset,
    unset_only_on_a_missing_dict,
    binary_values,
    iterate_recursive_or_not,
    paging_over_many_keys,
    invalid_keys,
    scopes_are_separate,
    counters,
    failing_increment_applies_nothing,
    rollback_applies_nothing,
    one_write_per_commit,
    commit_failures_are_returned,
    concurrent_threads,
);

// ---- A commit over several shards, failed at each step. ----

/// A transaction over several shards is one write per shard. Failed at each of its
/// operations in turn (the write refused, applied with its reply lost, the whole cluster
/// gone, a permanent error), it must leave every shard all old or all new (never torn),
/// every key old or new, and say how far it got: without "partly applied" in the error at
/// most the failed write itself happened, and with "W of its T" exactly W shards (or W + 1,
/// when the failed write was applied) hold the new values.
#[test]
fn sharded_commit_fault_sweep() {
    let counters: Vec<String> = (0..4).map(|i| format!("priv/c{i}")).collect();
    let plain: Vec<String> = (0..10).map(|i| format!("priv/k{i}")).collect();
    let old = |key: &str| -> Option<Vec<u8>> {
        match key {
            "priv/fresh" => None,
            k if k.starts_with("priv/c") => Some(b"10".to_vec()),
            _ => Some(b"old".to_vec()),
        }
    };
    let new = |key: &str| -> Option<Vec<u8>> {
        match key {
            "priv/fresh" => Some(b"x".to_vec()),
            k if k.starts_with("priv/c") => Some((10 + k[6..].parse::<u64>().unwrap() + 1).to_string().into_bytes()),
            k if k[6..].parse::<u32>().unwrap() < 6 => Some(b"new".to_vec()),
            _ => None,
        }
    };
    let all: Vec<String> = counters.iter().chain(&plain).cloned().chain(["priv/fresh".to_string()]).collect();
    let modes = [FaultMode::WritesUnavailable, FaultMode::AppliedButUnavailable, FaultMode::Unavailable, FaultMode::Io];
    for mode in modes {
        for at in 0.. {
            let f = Fixture::memory(SHARDS);
            let mut t = f.private.transaction();
            for k in &all {
                if let Some(v) = old(k) {
                    t.set(k, &v).unwrap();
                }
            }
            t.commit().unwrap();
            let faulty = FaultyStore::new(f.raw.clone());
            let d = dict(Arc::new(faulty.clone()), Scope::Private, SHARDS);
            let mut t = d.transaction();
            for (i, k) in counters.iter().enumerate() {
                t.atomic_inc(k, i as i64 + 1).unwrap();
            }
            for (i, k) in plain.iter().enumerate() {
                if i < 6 { t.set(k, b"new").unwrap() } else { t.unset(k).unwrap() }
            }
            t.set("priv/fresh", b"x").unwrap();
            faulty.fail_after(at, mode);
            let result = t.commit();
            faulty.heal_all();

            // Per object: all old or all new.
            let mut objects: BTreeMap<String, BTreeSet<bool>> = BTreeMap::new();
            for k in &all {
                let got = get(&f.private, k);
                let is_new = got == new(k);
                assert!(is_new || got == old(k), "{mode:?} at {at}: {k} is neither old nor new: {got:?}");
                if new(k) != old(k) {
                    objects.entry(f.private.object_of(k)).or_default().insert(is_new);
                }
            }
            assert!(objects.values().all(|s| s.len() == 1), "{mode:?} at {at}: a shard was torn: {objects:?}");
            let new_objects = objects.values().filter(|s| s.contains(&true)).count();
            match result {
                Ok(committed) => {
                    assert_eq!(committed, Committed::Applied);
                    assert_eq!(new_objects, objects.len(), "{mode:?} at {at}: committed but not applied");
                    assert!(objects.len() > 2, "the transaction spans several shards");
                    eprintln!("{mode:?}: swept {at} faults");
                    break;
                }
                Err(e) => {
                    let text = e.to_string();
                    let applied_too = usize::from(mode == FaultMode::AppliedButUnavailable);
                    match text.split_once("partly applied: ") {
                        None if mode == FaultMode::Io => {}
                        None => assert!(new_objects <= applied_too, "{mode:?} at {at}: {new_objects} shards new: {e}"),
                        Some((_, rest)) => {
                            let written: usize = rest.split(' ').next().unwrap().parse().unwrap();
                            assert!(
                                new_objects == written || new_objects == written + applied_too,
                                "{mode:?} at {at}: {new_objects} shards new: {e}"
                            );
                        }
                    }
                }
            }
            assert!(at < 100, "{mode:?}: the commit never succeeded");
        }
    }
}

// ---- 8 OS processes on the real cluster. ----

const PROCESSES: usize = 8;
const PROCESS_INCREMENTS: usize = 200;

/// One child: 200 transactions of "counter += 1, set a key of my own", on the cluster.
fn child(namespace: &str, me: usize) {
    let d = dict(common::cluster_store().pool().with_namespace(namespace).unwrap(), Scope::Private, 0);
    for i in 0..PROCESS_INCREMENTS {
        let mut t = d.transaction();
        t.atomic_inc("priv/counter", 1).unwrap();
        t.set(&format!("priv/by/{me}/{i:03}"), format!("{me} {i}").as_bytes()).unwrap();
        t.commit().unwrap();
    }
    println!("CHILD {me} DONE");
}

/// The counter must end at exactly 8 × 200 and every child's keys must be there: no lost
/// increment, no transaction applied in part.
#[test]
fn eight_processes_increment_one_counter() {
    const TEST: &str = "eight_processes_increment_one_counter";
    if let (Ok(namespace), Ok(me)) = (std::env::var("RADOS_MAIL_DICT_NS"), std::env::var("RADOS_MAIL_CHILD")) {
        child(&namespace, me.parse().unwrap());
        return;
    }
    let namespace = unique_namespace("processes");
    let d = dict(common::cluster_store().pool().with_namespace(&namespace).unwrap(), Scope::Private, 0);
    commit(&d, &[("priv/counter", Some(b"0")), ("priv/alone", Some(b"0"))]);
    // The same transactions from one process alone, for the ratio printed at the end.
    let alone = Instant::now();
    for i in 0..PROCESS_INCREMENTS {
        let mut t = d.transaction();
        t.atomic_inc("priv/alone", 1).unwrap();
        t.set(&format!("priv/alone-{i:03}"), b"").unwrap();
        t.commit().unwrap();
    }
    let alone = PROCESS_INCREMENTS as f64 / alone.elapsed().as_secs_f64();
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let children: Vec<_> = (0..PROCESSES)
        .map(|me| {
            Command::new(&exe)
                .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
                .env("RADOS_MAIL_DICT_NS", &namespace)
                .env("RADOS_MAIL_CHILD", me.to_string())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut done = BTreeSet::new();
    for mut c in children {
        let mut out = String::new();
        c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        assert!(c.wait().unwrap().success(), "a child failed:\n{out}");
        for line in out.lines().filter_map(|l| l.find("CHILD ").map(|i| &l[i + 6..])) {
            done.insert(line.split(' ').next().unwrap().parse::<usize>().unwrap());
        }
    }
    let took = start.elapsed();
    assert_eq!(done, (0..PROCESSES).collect());
    let total = PROCESSES * PROCESS_INCREMENTS;
    assert_eq!(text(&d, "priv/counter"), Some(total.to_string()), "an increment was lost");
    let by = d.iterate("priv/by", true).unwrap();
    let want: BTreeSet<String> =
        (0..PROCESSES).flat_map(|me| (0..PROCESS_INCREMENTS).map(move |i| format!("priv/by/{me}/{i:03}"))).collect();
    assert_eq!(by.iter().map(|(k, _)| k.clone()).collect::<BTreeSet<_>>(), want);
    assert_eq!(d.iterate("priv/by", false).unwrap(), [], "nothing directly below priv/by");
    let together = total as f64 / took.as_secs_f64();
    eprintln!(
        "dict: {total} commits on one counter from {PROCESSES} processes in {took:.1?}: {together:.0} commits/s \
         (process start included) vs {alone:.0}/s from one process alone ({:.2}x)",
        together / alone
    );
}
