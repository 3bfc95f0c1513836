//! The shared dict spread over shard objects at scale (issue 15, "no hot objects"): Dovecot's
//! last-login plugin writes one `shared/last-login/<user>` key per user, which used to make
//! one omap object of a million keys (Ceph warns at 200,000; the project's limit is 100,000
//! per object). On the in-memory store: a million keys over the default number of shards,
//! and re-sharding between layouts, failed at every write.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use rados_mail::dict::{DEFAULT_SHARED_SHARDS, Dict, ReshardReport, Scope, reshard, shard_object, shard_objects};
use rados_mail::objstore::{CountingStore, FaultMode, FaultyStore, MemoryStore, ObjectStore};
use rados_mail::{Config, Error};

/// The project's limit of omap keys per object.
const MAX_KEYS_PER_OBJECT: usize = 100_000;

fn shared(store: Arc<dyn ObjectStore>, shards: u32) -> Dict {
    Dict::with_shards(store, Arc::new(Config::default()), Scope::Shared, shards).unwrap()
}

fn last_login(user: usize) -> String {
    format!("shared/last-login/user{user:07}@example.org")
}

fn login_time(user: usize) -> Vec<u8> {
    (1_700_000_000 + user).to_string().into_bytes()
}

/// Omap keys per object of the namespace.
fn keys_per_object(ns: &dyn ObjectStore) -> BTreeMap<String, usize> {
    ns.list_objects().unwrap().map(Result::unwrap).map(|o| (o.clone(), ns.omap_all(&o, "").unwrap().len())).collect()
}

#[test]
fn shared_dict_shards() {
    const USERS: usize = 1_000_000;
    const BATCH: usize = 25_000;
    let ns: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(".shared"));
    let dict = shared(ns.clone(), DEFAULT_SHARED_SHARDS);

    let start = Instant::now();
    for first in (0..USERS).step_by(BATCH) {
        let mut t = dict.transaction();
        for user in first..first + BATCH {
            t.set(&last_login(user), &login_time(user)).unwrap();
        }
        t.commit().unwrap();
    }
    let written = start.elapsed();

    let counts = keys_per_object(&*ns);
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), shard_objects(DEFAULT_SHARED_SHARDS));
    assert_eq!(counts.values().sum::<usize>(), USERS);
    let (least, most) = (*counts.values().min().unwrap(), *counts.values().max().unwrap());
    assert!(most <= MAX_KEYS_PER_OBJECT, "a shard holds {most} keys");

    for user in (0..USERS).step_by(7_919) {
        assert_eq!(dict.lookup(&last_login(user)).unwrap(), Some(login_time(user)), "user {user}");
    }
    assert_eq!(dict.lookup(&last_login(USERS)).unwrap(), None);

    let start = Instant::now();
    let all = dict.iterate("shared/last-login", false).unwrap();
    let iterated = start.elapsed();
    assert_eq!(all.len(), USERS);
    // Zero-padded user numbers: key order is user order.
    for (user, (key, value)) in all.iter().enumerate() {
        assert!(*key == last_login(user) && *value == login_time(user), "entry {user}: {key}");
    }
    drop(all);

    // Pages from a cursor in the middle, over every shard.
    let mut after = last_login(499_999);
    for page in 0..3 {
        let (entries, more) = dict.iterate_page("shared/last-login", true, &after, 1_000).unwrap();
        let want: Vec<String> = (500_000 + page * 1_000..500_000 + (page + 1) * 1_000).map(last_login).collect();
        assert_eq!(entries.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), want);
        assert!(more);
        after = entries.last().unwrap().0.clone();
    }
    let (tail, more) = dict.iterate_page("shared/last-login", false, &last_login(USERS - 3), 1_000).unwrap();
    assert_eq!(tail.len(), 2);
    assert!(!more);

    eprintln!(
        "shared_dict_shards: {USERS} keys over {DEFAULT_SHARED_SHARDS} shards written in {written:.1?} ({} commits \
         of {BATCH}), {least}..{most} keys per shard (limit {MAX_KEYS_PER_OBJECT}), iterated in key order in \
         {iterated:.1?}",
        USERS / BATCH
    );
}

/// What every key of the re-shard tests holds: some keys, a few large values.
fn content() -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = (0..3_000).map(|u| (last_login(u), login_time(u))).collect();
    all.extend((0..5).map(|i| (format!("shared/big/{i}"), vec![i as u8; 100_000])));
    all.push(("shared/counter".into(), b"42".to_vec()));
    all.sort();
    all
}

fn fill(ns: &Arc<dyn ObjectStore>, shards: u32) {
    let dict = shared(ns.clone(), shards);
    let mut t = dict.transaction();
    for (k, v) in content() {
        t.set(&k, &v).unwrap();
    }
    t.commit().unwrap();
}

/// A re-shard moves every key to its object of the new layout and removes the objects the
/// new layout does not use; readers of the new layout then see everything.
#[test]
fn reshard_moves_every_key() {
    for (from, to) in [(0, 64), (64, 128), (128, 64), (16, 0), (7, 12), (64, 64)] {
        let ns: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(".shared"));
        fill(&ns, from);
        let counting = CountingStore::new(ns.clone());
        let report = reshard(&(Arc::new(counting.clone()) as Arc<dyn ObjectStore>), from, to).unwrap();
        let stayed = content().iter().filter(|(k, _)| shard_object(from, k) == shard_object(to, k)).count();
        assert_eq!(report.moved as usize, content().len() - stayed, "{from} -> {to}");
        let unused: Vec<String> = shard_objects(from).into_iter().filter(|o| !shard_objects(to).contains(o)).collect();
        assert_eq!(report.removed, unused, "{from} -> {to}");
        assert_eq!(shared(ns.clone(), to).iterate("shared", true).unwrap(), content(), "{from} -> {to}");
        for (object, _) in keys_per_object(&*ns) {
            assert!(shard_objects(to).contains(&object), "{from} -> {to}: {object} left");
        }
        for (key, _) in content() {
            let object = shard_object(to, &key);
            assert!(ns.omap_get(&object, &[key.as_str()]).unwrap().contains_key(&key), "{key} not in {object}");
        }
        // Done: running it again moves nothing and reads every old object once.
        let before = counting.counts();
        assert_eq!(reshard(&ns, from, to).unwrap(), ReshardReport::default());
        if from == to {
            assert_eq!(counting.counts() - before, Default::default(), "the same layout: no I/O");
        }
    }
    assert!(matches!(
        reshard(&(Arc::new(MemoryStore::new("x")) as Arc<dyn ObjectStore>), 0, 5000),
        Err(Error::InvalidInput(_))
    ));
}

/// Re-sharding is resumable: failed at each of its operations in turn (the write refused,
/// or applied with its reply lost), every key is at that moment in its old object or its
/// new one with its value, and running it again finishes it.
#[test]
fn reshard_fault_sweep() {
    for (from, to) in [(0, 16), (16, 24)] {
        for mode in [FaultMode::WritesUnavailable, FaultMode::AppliedButUnavailable, FaultMode::Unavailable] {
            for at in 0.. {
                let ns: Arc<dyn ObjectStore> = Arc::new(MemoryStore::new(".shared"));
                fill(&ns, from);
                let faulty = FaultyStore::new(ns.clone());
                faulty.fail_after(at, mode);
                let result = reshard(&(Arc::new(faulty.clone()) as Arc<dyn ObjectStore>), from, to);
                faulty.heal_all();
                for (key, value) in content() {
                    let found: BTreeSet<Option<Vec<u8>>> = [shard_object(from, &key), shard_object(to, &key)]
                        .iter()
                        .map(|o| ns.omap_get(o, &[key.as_str()]).ok().and_then(|mut m| m.remove(&key)))
                        .filter(Option::is_some)
                        .collect();
                    assert_eq!(found, BTreeSet::from([Some(value)]), "{from} -> {to}, {mode:?} at {at}: {key}");
                }
                if result.is_ok() {
                    eprintln!("reshard {from} -> {to}, {mode:?}: swept {at} faults");
                    break;
                }
                assert!(matches!(result, Err(Error::Unavailable(_))), "{result:?}");
                reshard(&ns, from, to).unwrap();
                assert_eq!(shared(ns.clone(), to).iterate("shared", true).unwrap(), content());
                assert!(keys_per_object(&*ns).keys().all(|o| shard_objects(to).contains(o)));
                assert!(at < 500, "never finished");
            }
        }
    }
}
