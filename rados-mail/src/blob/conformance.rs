//! The blob conformance suite: behaviour every [`BlobStore`] must show, whatever the
//! object store underneath (memory, an erasure-coded pool, the cluster, a faulty store).
//!
//! Each case is a plain public function taking a blob store on a fresh, empty namespace;
//! [`blob_conformance_tests!`](crate::blob_conformance_tests) makes one `#[test]` per
//! case, so that one failure never hides another:
//!
//! ```no_run
//! rados_mail::blob_conformance_tests!(|case: &str| {
//!     rados_mail::MailStore::in_memory(rados_mail::Config::default()).blobs(case).unwrap()
//! });
//! ```
//!
//! Cases make stores of their own on the same namespace with a small chunk size
//! ([`small`]), so that every blob of a few kilobytes spans several objects. Error cases
//! assert the exact [`Error`] variant. [`fault_sweep`] is the crash story: it fails each
//! write in turn and checks that no torn blob is ever readable.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::executor::block_on;
use objstore::{FaultMode, FaultyStore, ObjectStore, WriteOp};
use omap_index::names::Guid;

use super::{BlobStore, Owner, RepairOptions};
use crate::{Config, Error};

/// Chunk size of the stores [`small`] makes.
pub const SMALL_CHUNK: usize = 1000;

/// Generates one `#[test]` per blob conformance case. The argument is callable as
/// `fn(&str) -> BlobStore`, given the case name, returning a blob store on a namespace no
/// other test uses.
#[macro_export]
macro_rules! blob_conformance_tests {
    ($make:expr) => {
        $crate::blob_conformance_tests!(@cases $make;
            put_get_whole_and_ranges, chunked_blob_spans_objects, empty_blob, missing_blob,
            existing_key_refused, invalid_keys_refused, too_large_refused,
            content_keys_store_equal_contents_once, references_keep_the_blob,
            concurrent_references_and_deletes, streams_and_async, keys_lists_every_blob,
            torn_blobs_are_never_read, orphans_of_a_crashed_put_are_repaired, streamed_reads,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let blobs: $crate::blob::BlobStore = ($make)(stringify!($case));
                $crate::blob::conformance::$case(&blobs);
            }
        )*
    };
}

/// A blob store on `blobs`' namespace with [`SMALL_CHUNK`]-byte chunks and blobs of at
/// most 100 KiB.
pub fn small(blobs: &BlobStore) -> BlobStore {
    let config = Config { chunk_size: SMALL_CHUNK, max_mail_size: 100 << 10, ..Config::default() };
    BlobStore::new(blobs.object_store().clone(), &config)
}

/// `n` bytes of a pattern that differs between chunks.
pub fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(seed as u32 % 32) as u8 ^ seed).collect()
}

/// The owner `n` of the cases.
pub fn owner(n: u8) -> Owner {
    Owner::new(Guid([n; 16]), u64::from(n))
}

/// Every object of the namespace.
pub fn objects(blobs: &BlobStore) -> BTreeSet<String> {
    blobs.object_store().list_objects().unwrap().map(Result::unwrap).collect()
}

/// A blob read back whole, and in ranges within and across objects.
pub fn put_get_whole_and_ranges(blobs: &BlobStore) {
    let b = small(blobs);
    let data = pattern(2500, 1);
    let info = b.put(b"k", Owner::KEY, &data[..]).unwrap();
    assert_eq!((info.size, info.chunks, info.key.as_slice()), (2500, 3, &b"k"[..]));
    assert_eq!(b.get(b"k", ..).unwrap().unwrap(), data);
    for (lo, hi) in [(0, 1), (10, 20), (999, 1001), (500, 2500), (1000, 2000), (1999, 2001), (2499, 2500)] {
        assert_eq!(b.get(b"k", lo..hi).unwrap().unwrap(), &data[lo as usize..hi as usize], "{lo}..{hi}");
    }
    assert_eq!(b.get(b"k", 2000..=2001).unwrap().unwrap(), &data[2000..2002]);
    assert_eq!(b.get(b"k", 2400..9999).unwrap().unwrap(), &data[2400..], "clipped to the end");
    assert_eq!(b.get(b"k", 3000..4000).unwrap().unwrap(), b"", "past the end");
    let stat = b.stat(b"k").unwrap().unwrap();
    assert_eq!((stat.size, stat.crc32, stat.references.clone()), (2500, crc32fast::hash(&data), vec![Owner::KEY]));
    // The store's own chunk size (not the small one) reads it just as well.
    assert_eq!(blobs.get(b"k", ..).unwrap().unwrap(), data);
}

/// A blob of several chunks is one first object plus a chunk object per further chunk.
pub fn chunked_blob_spans_objects(blobs: &BlobStore) {
    let b = small(blobs);
    let data = pattern(3 * SMALL_CHUNK + 1, 2);
    let info = b.put(b"big", owner(1), &data[..]).unwrap();
    assert_eq!(info.chunks, 4);
    assert_eq!(objects(&b).len(), 4, "{:?}", objects(&b));
    let exact = pattern(2 * SMALL_CHUNK, 3);
    assert_eq!(b.put(b"exact", owner(1), &exact[..]).unwrap().chunks, 2);
    assert_eq!(objects(&b).len(), 6);
    assert_eq!(b.get(b"big", ..).unwrap().unwrap(), data);
    assert_eq!(b.get(b"exact", ..).unwrap().unwrap(), exact);
}

/// An empty blob exists, with no data.
pub fn empty_blob(blobs: &BlobStore) {
    let info = blobs.put(b"empty", Owner::KEY, &b""[..]).unwrap();
    assert_eq!((info.size, info.chunks), (0, 1));
    assert_eq!(blobs.get(b"empty", ..).unwrap(), Some(Vec::new()));
    assert!(blobs.delete(b"empty", Owner::KEY).unwrap());
    assert_eq!(blobs.get(b"empty", ..).unwrap(), None);
}

/// What a missing blob answers: `None` and `false`, not errors.
pub fn missing_blob(blobs: &BlobStore) {
    assert_eq!(blobs.get(b"nope", ..).unwrap(), None);
    assert_eq!(blobs.get(b"nope", 5..6).unwrap(), None);
    assert_eq!(blobs.stat(b"nope").unwrap(), None);
    assert!(!blobs.delete(b"nope", Owner::KEY).unwrap());
    assert!(!blobs.add_ref(b"nope", owner(1)).unwrap());
    assert!(objects(blobs).is_empty(), "add_ref created nothing");
}

/// A put under a taken key fails with `AlreadyExists`, keeps the blob there and leaves
/// no chunk behind.
pub fn existing_key_refused(blobs: &BlobStore) {
    let b = small(blobs);
    let data = pattern(1500, 4);
    b.put(b"k", Owner::KEY, &data[..]).unwrap();
    let err = b.put(b"k", owner(2), &pattern(5000, 5)[..]).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(b.get(b"k", ..).unwrap().unwrap(), data);
    assert_eq!(objects(&b).len(), 2, "the refused put's chunks are removed: {:?}", objects(&b));
}

/// Keys that cannot be stored are `InvalidInput`, before anything is written.
pub fn invalid_keys_refused(blobs: &BlobStore) {
    let long = vec![b'x'; super::MAX_KEY_LEN + 1];
    for key in [&b""[..], &long, b"sha256:0123"] {
        let err = blobs.put(key, Owner::KEY, &b"x"[..]).unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{key:?}: {err:?}");
    }
    assert!(matches!(blobs.get(b"", ..), Err(Error::InvalidInput(_))));
    // Any byte is fine otherwise, '.' and '%' and NUL included.
    let odd = [0u8, b'.', b'%', b'/', 0xff, b' '];
    blobs.put(&odd, Owner::KEY, &b"odd"[..]).unwrap();
    assert_eq!(blobs.get(&odd, ..).unwrap().unwrap(), b"odd");
    assert_eq!(blobs.keys().unwrap(), vec![odd.to_vec()]);
}

/// A blob above the limit is `TooLarge` and leaves nothing behind.
pub fn too_large_refused(blobs: &BlobStore) {
    let b = small(blobs);
    let err = b.put(b"huge", Owner::KEY, &pattern((100 << 10) + 1, 6)[..]).unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err:?}");
    assert!(objects(&b).is_empty(), "{:?}", objects(&b));
}

/// Equal contents under content keys are stored once, with a reference per put.
pub fn content_keys_store_equal_contents_once(blobs: &BlobStore) {
    let b = small(blobs);
    let data = pattern(2500, 7);
    let a = b.put_content(owner(1), &data[..]).unwrap();
    let key = String::from_utf8(a.key.clone()).unwrap();
    assert!(key.starts_with("sha256:") && key.len() == 7 + 64, "{key}");
    let again = b.put_content(owner(2), &data[..]).unwrap();
    assert_eq!(again.key, a.key);
    assert_eq!(again.generation, a.generation, "the first put's objects are kept");
    assert_eq!(objects(&b).len(), 3, "one copy of the chunks: {:?}", objects(&b));
    assert_eq!(b.stat(&a.key).unwrap().unwrap().references.len(), 2);
    let other = b.put_content(owner(1), &pattern(10, 8)[..]).unwrap();
    assert_ne!(other.key, a.key);
    assert!(b.delete(&a.key, owner(1)).unwrap());
    assert_eq!(b.get(&a.key, ..).unwrap().unwrap(), data);
    assert!(b.delete(&a.key, owner(2)).unwrap());
    assert_eq!(b.get(&a.key, ..).unwrap(), None);
    assert_eq!(objects(&b).len(), 1, "only the other blob: {:?}", objects(&b));
    // Racing puts of equal contents: one blob, a reference each, no chunk left over.
    let (b, data) = (&b, &data);
    let keys: Vec<Vec<u8>> = std::thread::scope(|s| {
        let puts: Vec<_> =
            (1..=4u8).map(|t| s.spawn(move || b.put_content(owner(t), &data[..]).unwrap().key)).collect();
        puts.into_iter().map(|p| p.join().unwrap()).collect()
    });
    assert!(keys.iter().all(|k| *k == keys[0]));
    assert_eq!(b.stat(&keys[0]).unwrap().unwrap().references.len(), 4);
    assert_eq!(objects(b).len(), 4, "{:?}", objects(b));
}

/// A blob lives while one reference is left; the last delete removes every object.
pub fn references_keep_the_blob(blobs: &BlobStore) {
    let b = small(blobs);
    let data = pattern(2100, 9);
    b.put(b"shared", owner(1), &data[..]).unwrap();
    assert!(b.add_ref(b"shared", owner(2)).unwrap());
    assert!(b.add_ref(b"shared", owner(2)).unwrap(), "adding it again changes nothing");
    assert_eq!(b.stat(b"shared").unwrap().unwrap().references, vec![owner(1), owner(2)]);
    assert!(b.delete(b"shared", owner(1)).unwrap());
    assert!(!b.delete(b"shared", owner(1)).unwrap(), "dropped already");
    assert!(!b.delete(b"shared", owner(3)).unwrap(), "never held");
    assert_eq!(b.get(b"shared", ..).unwrap().unwrap(), data);
    assert!(b.delete(b"shared", owner(2)).unwrap());
    assert!(objects(&b).is_empty(), "{:?}", objects(&b));
}

/// Threads adding and dropping references at once lose none: a blob whose reference was
/// added is readable until that reference is dropped, and the last drop removes it all.
pub fn concurrent_references_and_deletes(blobs: &BlobStore) {
    let b = small(blobs);
    let data = pattern(1500, 10);
    b.put(b"race", owner(0), &data[..]).unwrap();
    std::thread::scope(|s| {
        for t in 1..=6u8 {
            let b = b.clone();
            s.spawn(move || {
                assert!(b.add_ref(b"race", owner(t)).unwrap());
                assert_eq!(b.get(b"race", ..).unwrap().unwrap().len(), 1500);
            });
        }
    });
    assert_eq!(b.stat(b"race").unwrap().unwrap().references.len(), 7);
    std::thread::scope(|s| {
        for t in 0..=6u8 {
            let b = b.clone();
            s.spawn(move || assert!(b.delete(b"race", owner(t)).unwrap()));
        }
    });
    assert_eq!(b.get(b"race", ..).unwrap(), None);
    assert!(objects(&b).is_empty(), "{:?}", objects(&b));
    // A delete of the last reference racing an add: the add either finds the blob gone
    // (false) or keeps it alive with its reference.
    for round in 0..5u8 {
        b.put(b"race", owner(0), &data[..]).unwrap();
        let (added, _) = std::thread::scope(|s| {
            let add = s.spawn(|| b.add_ref(b"race", owner(1)).unwrap());
            let del = s.spawn(|| b.delete(b"race", owner(0)).unwrap());
            (add.join().unwrap(), del.join().unwrap())
        });
        if added {
            assert_eq!(b.get(b"race", ..).unwrap().unwrap(), data, "round {round}");
            assert!(b.delete(b"race", owner(1)).unwrap());
        }
        assert!(objects(&b).is_empty(), "round {round}: {:?}", objects(&b));
    }
}

/// The async API: a put from a stream of odd-sized pieces, gets of ranges in parallel.
pub fn streams_and_async(blobs: &BlobStore) {
    let b = small(blobs);
    let data = pattern(4321, 11);
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> = data.chunks(333).map(|c| Ok(c.to_vec())).collect();
    let info = block_on(b.put_stream(b"s", Owner::KEY, futures::stream::iter(pieces))).unwrap();
    assert_eq!((info.size, info.crc32), (4321, crc32fast::hash(&data)));
    let ranges = [(0u64, 4321u64), (5, 2999), (1000, 1001), (4000, 4321)];
    let gets = futures::future::join_all(ranges.iter().map(|&(lo, hi)| b.get_async(b"s", lo..hi)));
    for ((lo, hi), got) in ranges.iter().zip(block_on(gets)) {
        assert_eq!(got.unwrap().unwrap(), &data[*lo as usize..*hi as usize]);
    }
    let failing = futures::stream::iter(vec![Ok(vec![1u8; 2500]), Err("the client went away")]);
    let err = block_on(b.put_stream(b"t", Owner::KEY, failing)).unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err:?}");
    let content = block_on(b.put_content_stream(owner(1), futures::stream::iter([Ok::<_, Error>(&data[..])])));
    assert_eq!(block_on(b.get_async(&content.unwrap().key, ..)).unwrap().unwrap(), data);
    let from_reader = block_on(b.put_async_read(b"r", Owner::KEY, futures::io::Cursor::new(&data))).unwrap();
    assert_eq!((from_reader.size, from_reader.chunks), (4321, 5));
    assert_eq!(b.get(b"r", ..).unwrap().unwrap(), data);
    assert!(b.delete(b"r", Owner::KEY).unwrap());
    assert!(block_on(b.add_ref_async(b"s", owner(2))).unwrap());
    assert!(block_on(b.delete_async(b"s", Owner::KEY)).unwrap());
    assert!(block_on(b.delete_async(b"s", owner(2))).unwrap());
    assert_eq!(block_on(b.stat_async(b"s")).unwrap(), None);
    assert_eq!(objects(&b).len(), 5, "the content blob only: {:?}", objects(&b));
}

/// [`BlobStore::get_stream`]: pieces of at most a chunk, the same bytes as `get`; the
/// crc32 of a whole blob is checked before its last piece is handed out; a blob deleted
/// while streamed ends in `NotFound`, not `Corrupted`.
pub fn streamed_reads(blobs: &BlobStore) {
    use futures::StreamExt;
    let b = small(blobs);
    let data = pattern(3500, 18);
    let generation = b.put(b"s", Owner::KEY, &data[..]).unwrap().generation;
    let collect = |lo: u64, hi: u64| -> Vec<Result<Vec<u8>, Error>> {
        block_on(async { b.get_stream(b"s", lo..hi).await.unwrap().unwrap().collect().await })
    };
    let pieces: Vec<Vec<u8>> = collect(0, u64::MAX).into_iter().map(Result::unwrap).collect();
    assert_eq!(pieces.iter().map(Vec::len).collect::<Vec<_>>(), vec![1000, 1000, 1000, 500]);
    assert_eq!(pieces.concat(), data);
    for (lo, hi) in [(0, 1), (999, 1001), (1500, 3200), (3400, 9999), (4000, 5000)] {
        let got: Vec<u8> = collect(lo, hi).into_iter().map(Result::unwrap).collect::<Vec<_>>().concat();
        assert_eq!(got, &data[(lo as usize).min(3500)..(hi as usize).min(3500)], "{lo}..{hi}");
    }
    assert!(block_on(b.get_stream(b"none", ..)).unwrap().is_none());
    // The last chunk altered: three good pieces, then the error instead of the fourth.
    let mut bad = data[3000..].to_vec();
    bad[0] ^= 1;
    b.object_store().write_op(&super::chunk_name(generation, 3), &WriteOp::new().write_full(bad)).unwrap();
    let items = collect(0, u64::MAX);
    assert_eq!(items.len(), 4);
    assert!(items[..3].iter().all(Result::is_ok));
    assert!(matches!(items[3], Err(Error::Corrupted { .. })), "{:?}", items[3]);
    assert!(collect(3000, 3500)[0].is_ok(), "a partial range is not checked");
    // Deleted while streamed: the first piece came, then the blob is gone.
    let mut stream = block_on(b.get_stream(b"s", ..)).unwrap().unwrap();
    assert_eq!(stream.info().size, 3500);
    assert_eq!(block_on(stream.next()).unwrap().unwrap(), &data[..1000]);
    assert!(b.delete(b"s", Owner::KEY).unwrap());
    let rest: Vec<_> = block_on(stream.collect::<Vec<_>>());
    assert!(matches!(rest.last(), Some(Err(Error::NotFound(_)))), "{rest:?}");
}

/// [`BlobStore::keys`] lists every blob by its key, and nothing else.
pub fn keys_lists_every_blob(blobs: &BlobStore) {
    let b = small(blobs);
    let keys: BTreeSet<Vec<u8>> = [&b"a"[..], b"b.c", &[0xff, 0], b"long"].iter().map(|k| k.to_vec()).collect();
    for k in &keys {
        b.put(k, Owner::KEY, &pattern(if k == b"long" { 3000 } else { 5 }, 12)[..]).unwrap();
    }
    assert_eq!(b.keys().unwrap().into_iter().collect::<BTreeSet<_>>(), keys);
}

/// A blob with a chunk missing, shortened or altered is never returned whole: `get`
/// fails with `Corrupted`, `check` reports it, `repair` keeps it.
pub fn torn_blobs_are_never_read(blobs: &BlobStore) {
    let b = small(blobs);
    let (one, two) = (pattern(2500, 13), pattern(2500, 14));
    let g1 = b.put(b"missing", owner(1), &one[..]).unwrap().generation;
    let g2 = b.put(b"altered", owner(1), &two[..]).unwrap().generation;
    let store = b.object_store();
    store.remove(&super::chunk_name(g1, 2)).unwrap();
    let mut bad = two[1000..2000].to_vec();
    bad[7] ^= 1;
    store.write_op(&super::chunk_name(g2, 1), &WriteOp::new().write_full(bad)).unwrap();
    assert!(matches!(b.get(b"missing", ..), Err(Error::Corrupted { .. })));
    assert!(matches!(b.get(b"missing", 2100..2200), Err(Error::Corrupted { .. })));
    assert_eq!(b.get(b"missing", 0..2000).unwrap().unwrap(), &one[..2000], "the bytes that are there");
    assert!(matches!(b.get(b"altered", ..), Err(Error::Corrupted { .. })), "crc32");
    let quick = b.check(false).unwrap();
    assert_eq!(quick.damaged.iter().map(|d| d.key.as_slice()).collect::<Vec<_>>(), vec![&b"missing"[..]]);
    assert_eq!(quick.damaged[0].references, 1);
    let deep = b.check(true).unwrap();
    let damaged: BTreeSet<&[u8]> = deep.damaged.iter().map(|d| d.key.as_slice()).collect();
    assert_eq!(damaged, BTreeSet::from([&b"missing"[..], &b"altered"[..]]));
    let repaired = b.repair(&RepairOptions { orphan_grace: Duration::ZERO, deep: true, ..Default::default() }).unwrap();
    assert_eq!(repaired.damaged.len(), 2);
    assert!(repaired.removed.is_empty(), "a damaged blob's chunks are not orphans");
    assert_eq!(objects(&b).len(), 5, "everything kept: {:?}", objects(&b));
    // A description damaged (an xattr gone): kept by repair, with its chunks; its last
    // owner may still delete it, and the chunks are then orphans for repair.
    b.put(b"undescribed", owner(1), &pattern(2500, 19)[..]).unwrap();
    store.write_op("b.undescribed", &WriteOp::new().rm_xattr(super::xattr::SIZE)).unwrap();
    assert!(matches!(b.get(b"undescribed", ..), Err(Error::Corrupted { .. })));
    let grace0 = RepairOptions { orphan_grace: Duration::ZERO, ..Default::default() };
    let repaired = b.repair(&grace0).unwrap();
    assert_eq!(repaired.damaged.len(), 2, "missing and undescribed: {repaired:?}");
    assert!(repaired.removed.is_empty());
    assert!(b.delete(b"undescribed", owner(1)).unwrap());
    assert_eq!(b.repair(&grace0).unwrap().removed.len(), 2, "its two chunks");
    assert_eq!(objects(&b).len(), 5, "{:?}", objects(&b));
}

/// A put that never completed (a crash) leaves chunk objects no blob names: not
/// readable, reported as orphans, removed by repair once older than the grace.
pub fn orphans_of_a_crashed_put_are_repaired(blobs: &BlobStore) {
    let b = small(blobs);
    b.put(b"whole", Owner::KEY, &pattern(2500, 15)[..]).unwrap();
    let mut writer = b.writer(b"crashed", Owner::KEY).unwrap();
    block_on(writer.write(&pattern(3500, 16))).unwrap();
    block_on(writer.flush()).unwrap();
    std::mem::forget(writer); // the process died here
    assert_eq!(b.get(b"crashed", ..).unwrap(), None);
    assert_eq!(objects(&b).len(), 3 + 2, "{:?}", objects(&b));
    let check = b.check(false).unwrap();
    assert_eq!((check.blobs, check.bytes, check.orphans.len(), check.damaged.len()), (1, 2500, 2, 0));
    let young = b.repair(&RepairOptions::default()).unwrap();
    assert_eq!((young.kept.len(), young.removed.len()), (2, 0), "within the grace: may be a put in flight");
    let dry = b.repair(&RepairOptions { dry_run: true, orphan_grace: Duration::ZERO, ..Default::default() }).unwrap();
    assert_eq!((dry.kept.len(), dry.removed.len()), (2, 0));
    let old = b.repair(&RepairOptions { orphan_grace: Duration::ZERO, ..Default::default() }).unwrap();
    assert_eq!((old.removed.len(), old.blobs), (2, 1));
    assert!(b.check(true).unwrap().is_clean());
    assert_eq!(objects(&b).len(), 3);
}

/// The crash story under injected faults: for each write of a put (and of the deletes
/// that follow) in turn, that write fails as `mode` says (not applied, or applied with
/// its reply lost); afterwards the blob is either absent or whole (never torn, never
/// corrupted), a retry of the failed step succeeds, and after the last delete and a
/// repair nothing is left. `make` gives a blob store on `faulty` on a fresh namespace.
pub fn fault_sweep(make: &dyn Fn(&str) -> (BlobStore, FaultyStore), mode: FaultMode) {
    let data = pattern(3 * SMALL_CHUNK + 10, 17);
    let (mut failed_puts, mut failed_deletes) = (0, 0);
    for k in 0..24u64 {
        let (blobs, faulty) = make(&format!("sweep-{mode:?}-{k}").replace(['(', ')'], ""));
        let b = small(&blobs);
        faulty.fail_after(k, mode);
        let put = b.put(b"k", owner(1), &data[..]);
        failed_puts += usize::from(put.is_err());
        let shared = put.is_ok() && b.add_ref(b"k", owner(2)).is_ok();
        faulty.heal_all();
        let readable = match b.get(b"k", ..) {
            Ok(Some(got)) => {
                assert_eq!(got, data, "k={k}");
                true
            }
            Ok(None) => false,
            Err(e) => panic!("k={k} {mode:?}: a torn blob: {e}"),
        };
        assert!(put.is_err() || readable, "k={k}: a put that succeeded is readable");
        let check = b.check(true).unwrap();
        assert!(check.damaged.is_empty(), "k={k}: {check:?}");
        if !readable {
            assert!(put.is_err());
            b.put(b"k", owner(1), &data[..]).unwrap();
        }
        // Deletes under faults: each is retried until it reports the reference gone.
        faulty.fail_after(k, mode);
        let first = b.delete(b"k", owner(1));
        faulty.heal_all();
        if first.is_err() {
            failed_deletes += 1;
            b.delete(b"k", owner(1)).unwrap();
        }
        if shared {
            assert_eq!(b.get(b"k", ..).unwrap().unwrap(), data, "k={k}: owner 2 still holds it");
            b.delete(b"k", owner(2)).unwrap();
        } else {
            b.delete(b"k", owner(2)).unwrap();
        }
        assert_eq!(b.get(b"k", ..).unwrap(), None, "k={k}");
        b.repair(&RepairOptions { orphan_grace: Duration::ZERO, ..Default::default() }).unwrap();
        assert!(objects(&b).is_empty(), "k={k} {mode:?}: {:?}", objects(&b));
    }
    // The sweep reached every write of the put (4 objects) and of the delete, and past
    // them. A lost reply to the first object's write (the last one) is found out: the put
    // succeeds.
    let writes = if mode == FaultMode::AppliedButUnavailable { 3 } else { 4 };
    assert!((writes..24).contains(&failed_puts), "{mode:?}: {failed_puts} puts failed");
    if mode == FaultMode::AppliedButUnavailable {
        assert_eq!(failed_puts, 3, "only the chunk writes' lost replies fail a put");
    }
    assert!((1..24).contains(&failed_deletes), "{mode:?}: {failed_deletes} deletes failed");
}

/// [`fault_sweep`] on an object store: every mode the crash story must survive.
pub fn fault_sweep_all(store: Arc<dyn ObjectStore>) {
    for mode in [FaultMode::WritesUnavailable, FaultMode::Io, FaultMode::AppliedButUnavailable] {
        let make = |case: &str| {
            let faulty = FaultyStore::new(store.with_namespace(case).unwrap());
            (BlobStore::new(Arc::new(faulty.clone()), &Config::default()), faulty)
        };
        fault_sweep(&make, mode);
    }
}
