//! The body cache: memory and disk tiers, their byte bounds, verification of disk entries
//! (a bad entry is dropped, never served), restarts, and concurrent use.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rados_mail::cache::{BodyCache, CacheConfig, CacheStats, DISK_HEADER_BYTES};
use rados_mail::{Error, Guid};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("rados-mail-cache-{name}-{}-{nanos}-{seq}", std::process::id()));
        TempDir(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Distinct GUIDs, spread over the `<xx>` subdirectories.
fn guid(n: u32) -> Guid {
    let mut b = [0u8; 16];
    b[0] = (n.wrapping_mul(37) % 256) as u8;
    b[12..].copy_from_slice(&n.to_be_bytes());
    Guid(b)
}

/// The body of mail `n`, `len` bytes.
fn body(n: u32, len: usize) -> Arc<[u8]> {
    (0..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(n.wrapping_mul(7)) as u8).collect()
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn entry_path(dir: &Path, guid: &Guid) -> PathBuf {
    dir.join(format!("{:02x}", guid.0[0])).join(guid.to_string())
}

fn memory_only(bytes: u64) -> CacheConfig {
    CacheConfig { memory_bytes: bytes, ..CacheConfig::default() }
}

fn disk_only(dir: &Path, bytes: u64) -> CacheConfig {
    CacheConfig { memory_bytes: 0, disk_dir: Some(dir.to_path_buf()), disk_bytes: bytes, ..CacheConfig::default() }
}

/// Looks `n` up with the right length and crc32.
fn get(cache: &BodyCache, n: u32, b: &[u8]) -> Option<Arc<[u8]>> {
    cache.get(&guid(n), crc(b), b.len() as u64)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in fs::read_dir(dir).unwrap() {
        let sub = sub.unwrap().path();
        if sub.is_dir() {
            out.extend(fs::read_dir(&sub).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[test]
fn cache_is_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<BodyCache>();
    shareable::<Arc<BodyCache>>();
}

#[test]
fn defaults() {
    let c = CacheConfig::default();
    assert_eq!(c.memory_bytes, 64 << 20);
    assert_eq!(c.max_item_bytes, 1 << 20);
    assert_eq!(c.disk_dir, None);
    assert_eq!(c.disk_bytes, 1 << 30);
}

#[test]
fn memory_hit_miss_and_stats() {
    let cache = BodyCache::new(&CacheConfig::default()).unwrap();
    let b = body(1, 5000);
    assert_eq!(get(&cache, 1, &b), None);
    cache.put(&guid(1), b.clone());
    assert_eq!(get(&cache, 1, &b).as_deref(), Some(&b[..]));
    assert_eq!(get(&cache, 2, &b), None);
    assert_eq!(
        cache.stats(),
        CacheStats {
            memory_hits: 1,
            misses: 2,
            inserts: 1,
            inserted_bytes: 5000,
            memory_bytes: 5000,
            ..Default::default()
        }
    );
}

#[test]
fn empty_body_is_cached() {
    let dir = TempDir::new("empty");
    let config = CacheConfig { disk_dir: Some(dir.path().into()), ..CacheConfig::default() };
    let cache = BodyCache::new(&config).unwrap();
    cache.put(&guid(1), body(1, 0));
    assert_eq!(cache.get(&guid(1), 0, 0).as_deref(), Some(&[][..]));
    drop(cache);
    let cache = BodyCache::new(&config).unwrap();
    assert_eq!(cache.get(&guid(1), 0, 0).as_deref(), Some(&[][..]));
    assert_eq!(cache.stats().disk_hits, 1);
}

#[test]
fn memory_byte_bound_is_respected() {
    let cache = BodyCache::new(&memory_only(100_000)).unwrap();
    for n in 0..50 {
        cache.put(&guid(n), body(n, 10_000));
        assert!(cache.stats().memory_bytes <= 100_000, "{:?}", cache.stats());
    }
    let stats = cache.stats();
    assert_eq!(stats.inserts, 50);
    assert_eq!(stats.inserted_bytes, 500_000);
    assert!(stats.memory_bytes > 0 && stats.memory_bytes <= 100_000, "{stats:?}");
    assert!(stats.memory_evictions >= 40, "{stats:?}");
    let mut hits = 0;
    for n in 0..50 {
        let b = body(n, 10_000);
        if let Some(got) = get(&cache, n, &b) {
            assert_eq!(&got[..], &b[..]);
            hits += 1;
        }
    }
    assert!(hits <= 10, "{hits} bodies of 10,000 bytes in a 100,000-byte cache");
    assert_eq!(stats.memory_bytes, 10_000 * (50 - stats.memory_evictions));
}

#[test]
fn bodies_above_max_item_bytes_are_not_cached() {
    let dir = TempDir::new("max-item");
    let config = CacheConfig { max_item_bytes: 1000, disk_dir: Some(dir.path().into()), ..CacheConfig::default() };
    let cache = BodyCache::new(&config).unwrap();
    let big = body(1, 1001);
    cache.put(&guid(1), big.clone());
    assert_eq!(get(&cache, 1, &big), None);
    assert!(files_under(dir.path()).is_empty());
    assert_eq!(cache.stats(), CacheStats { misses: 1, ..Default::default() });

    let just_fits = body(2, 1000);
    cache.put(&guid(2), just_fits.clone());
    assert_eq!(get(&cache, 2, &just_fits).as_deref(), Some(&just_fits[..]));
    assert_eq!(cache.stats().inserts, 1);
    assert_eq!(files_under(dir.path()), vec![entry_path(dir.path(), &guid(2))]);
}

#[test]
fn no_tiers_means_no_caching() {
    let cache = BodyCache::new(&CacheConfig { memory_bytes: 0, ..CacheConfig::default() }).unwrap();
    let b = body(1, 100);
    cache.put(&guid(1), b.clone());
    assert_eq!(get(&cache, 1, &b), None);
    assert_eq!(cache.stats(), CacheStats { misses: 1, ..Default::default() });
}

#[test]
fn unusable_disk_dir_is_an_error() {
    let dir = TempDir::new("not-a-dir");
    fs::write(dir.path(), b"a file").unwrap();
    let config = CacheConfig { disk_dir: Some(dir.path().join("cache")), ..CacheConfig::default() };
    assert!(matches!(BodyCache::new(&config), Err(Error::InvalidInput(_))));
    let _ = fs::remove_file(dir.path());
}

#[test]
fn disk_tier_survives_a_restart() {
    let dir = TempDir::new("restart");
    let config = CacheConfig { disk_dir: Some(dir.path().join("nested/cache")), ..CacheConfig::default() };
    let b = body(7, 70_000);
    {
        let cache = BodyCache::new(&config).unwrap();
        cache.put(&guid(7), b.clone());
        assert_eq!(cache.stats().disk_bytes, DISK_HEADER_BYTES + 70_000);
    }
    let cache = BodyCache::new(&config).unwrap();
    assert_eq!(cache.stats(), CacheStats { disk_bytes: DISK_HEADER_BYTES + 70_000, ..Default::default() });
    assert_eq!(get(&cache, 7, &b).as_deref(), Some(&b[..]));
    assert_eq!(cache.stats().disk_hits, 1);
    // Promoted into memory.
    assert_eq!(get(&cache, 7, &b).as_deref(), Some(&b[..]));
    let stats = cache.stats();
    assert_eq!((stats.memory_hits, stats.disk_hits, stats.misses), (1, 1, 0));
    assert_eq!(stats.memory_bytes, 70_000);
}

#[test]
fn two_caches_share_a_directory() {
    let dir = TempDir::new("shared");
    let one = BodyCache::new(&disk_only(dir.path(), 1 << 20)).unwrap();
    let two = BodyCache::new(&disk_only(dir.path(), 1 << 20)).unwrap();
    let b = body(3, 3000);
    one.put(&guid(3), b.clone());
    assert_eq!(two.stats().disk_bytes, 0);
    assert_eq!(get(&two, 3, &b).as_deref(), Some(&b[..]));
    assert_eq!(two.stats().disk_hits, 1);
    assert_eq!(two.stats().disk_bytes, DISK_HEADER_BYTES + 3000);
}

/// Puts a body on disk, damages its file, and checks the entry is dropped, counted and
/// never served.
fn damaged_entry_is_dropped(damage: impl FnOnce(&Path)) {
    let dir = TempDir::new("damaged");
    let config = disk_only(dir.path(), 1 << 20);
    let b = body(5, 4000);
    {
        let cache = BodyCache::new(&config).unwrap();
        cache.put(&guid(5), b.clone());
    }
    let path = entry_path(dir.path(), &guid(5));
    damage(&path);
    let cache = BodyCache::new(&config).unwrap();
    assert_eq!(get(&cache, 5, &b), None);
    assert!(!path.exists(), "the bad entry is deleted");
    let stats = cache.stats();
    assert_eq!((stats.corrupt_dropped, stats.misses, stats.disk_hits, stats.disk_bytes), (1, 1, 0, 0));
    assert_eq!(get(&cache, 5, &b), None);
    assert_eq!(cache.stats().corrupt_dropped, 1);
    // A fresh put repairs it.
    cache.put(&guid(5), b.clone());
    assert_eq!(get(&cache, 5, &b).as_deref(), Some(&b[..]));
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

#[test]
fn flipped_body_byte_is_dropped() {
    damaged_entry_is_dropped(|p| flip_byte(p, DISK_HEADER_BYTES + 1234));
}

#[test]
fn truncated_file_is_dropped() {
    damaged_entry_is_dropped(|p| {
        fs::File::options().write(true).open(p).unwrap().set_len(DISK_HEADER_BYTES + 3999).unwrap()
    });
}

#[test]
fn empty_file_is_dropped() {
    damaged_entry_is_dropped(|p| fs::write(p, b"").unwrap());
}

#[test]
fn file_with_extra_bytes_is_dropped() {
    damaged_entry_is_dropped(|p| {
        let mut bytes = fs::read(p).unwrap();
        bytes.push(0);
        fs::write(p, bytes).unwrap();
    });
}

#[test]
fn bad_magic_is_dropped() {
    damaged_entry_is_dropped(|p| flip_byte(p, 0));
}

#[test]
fn unknown_format_version_is_dropped() {
    damaged_entry_is_dropped(|p| flip_byte(p, 4));
}

#[test]
fn header_crc_flip_is_dropped() {
    damaged_entry_is_dropped(|p| flip_byte(p, 33));
}

#[test]
fn entry_of_another_guid_is_dropped() {
    damaged_entry_is_dropped(|p| {
        let other = TempDir::new("other");
        let cache = BodyCache::new(&disk_only(other.path(), 1 << 20)).unwrap();
        let b = body(5, 4000);
        cache.put(&guid(6), b.clone());
        fs::copy(entry_path(other.path(), &guid(6)), p).unwrap();
    });
}

#[test]
fn wrong_expected_crc_or_len_in_memory_is_a_miss() {
    let cache = BodyCache::new(&memory_only(1 << 20)).unwrap();
    let b = body(1, 1000);
    cache.put(&guid(1), b.clone());
    assert_eq!(cache.get(&guid(1), crc(&b) ^ 1, 1000), None);
    assert_eq!(cache.stats().corrupt_dropped, 1);
    // The disagreeing entry is gone.
    assert_eq!(get(&cache, 1, &b), None);
    cache.put(&guid(1), b.clone());
    assert_eq!(cache.get(&guid(1), crc(&b), 999), None);
    let stats = cache.stats();
    assert_eq!((stats.corrupt_dropped, stats.misses, stats.memory_hits, stats.memory_bytes), (2, 3, 0, 0));
}

#[test]
fn wrong_expected_crc_or_len_on_disk_is_a_miss() {
    let dir = TempDir::new("wrong-expected");
    let cache = BodyCache::new(&disk_only(dir.path(), 1 << 20)).unwrap();
    let b = body(1, 1000);
    cache.put(&guid(1), b.clone());
    assert_eq!(cache.get(&guid(1), crc(&b) ^ 1, 1000), None);
    assert!(!entry_path(dir.path(), &guid(1)).exists());
    cache.put(&guid(1), b.clone());
    assert_eq!(cache.get(&guid(1), crc(&b), 1001), None);
    assert!(!entry_path(dir.path(), &guid(1)).exists());
    let stats = cache.stats();
    assert_eq!((stats.corrupt_dropped, stats.misses, stats.disk_hits, stats.disk_bytes), (2, 2, 0, 0));
}

#[test]
fn wrong_expected_crc_with_both_tiers_is_a_miss() {
    let dir = TempDir::new("wrong-both");
    let config = CacheConfig { disk_dir: Some(dir.path().into()), ..CacheConfig::default() };
    let cache = BodyCache::new(&config).unwrap();
    let b = body(1, 1000);
    cache.put(&guid(1), b.clone());
    assert_eq!(cache.get(&guid(1), crc(&b) ^ 1, 1000), None);
    assert_eq!(get(&cache, 1, &b), None);
    let stats = cache.stats();
    assert_eq!((stats.corrupt_dropped, stats.memory_hits, stats.disk_hits), (2, 0, 0));
}

#[test]
fn disk_bound_evicts_least_recently_used() {
    let dir = TempDir::new("lru");
    let entry = DISK_HEADER_BYTES + 1000;
    let cache = BodyCache::new(&disk_only(dir.path(), 3 * entry)).unwrap();
    let bodies: Vec<_> = (0..4).map(|n| body(n, 1000)).collect();
    for n in 0..3 {
        cache.put(&guid(n), bodies[n as usize].clone());
    }
    assert_eq!(cache.stats().disk_bytes, 3 * entry);
    // 0 is now the most recently used, 1 the least.
    assert!(get(&cache, 0, &bodies[0]).is_some());
    cache.put(&guid(3), bodies[3].clone());
    let stats = cache.stats();
    assert_eq!((stats.disk_evictions, stats.disk_bytes), (1, 3 * entry));
    assert!(!entry_path(dir.path(), &guid(1)).exists());
    assert_eq!(files_under(dir.path()).len(), 3);
    for n in [0, 2, 3] {
        assert_eq!(get(&cache, n, &bodies[n as usize]).as_deref(), Some(&bodies[n as usize][..]));
    }
    assert_eq!(get(&cache, 1, &bodies[1]), None);
    assert_eq!(cache.stats().corrupt_dropped, 0);
}

#[test]
fn body_larger_than_disk_bound_stays_in_memory_only() {
    let dir = TempDir::new("over-disk");
    let config = CacheConfig { disk_dir: Some(dir.path().into()), disk_bytes: 500, ..CacheConfig::default() };
    let cache = BodyCache::new(&config).unwrap();
    let b = body(1, 1000);
    cache.put(&guid(1), b.clone());
    assert!(files_under(dir.path()).is_empty());
    assert_eq!(get(&cache, 1, &b).as_deref(), Some(&b[..]));
    assert_eq!(cache.stats().disk_evictions, 0);
}

#[test]
fn restart_orders_by_modification_time() {
    let dir = TempDir::new("mtime");
    let entry = DISK_HEADER_BYTES + 1000;
    let bodies: Vec<_> = (0..3).map(|n| body(n, 1000)).collect();
    {
        let cache = BodyCache::new(&disk_only(dir.path(), 3 * entry)).unwrap();
        for n in 0..3 {
            cache.put(&guid(n), bodies[n as usize].clone());
        }
    }
    let now = SystemTime::now();
    for (n, age) in [(0, 10), (1, 30), (2, 20)] {
        let file = fs::File::options().write(true).open(entry_path(dir.path(), &guid(n))).unwrap();
        file.set_modified(now - Duration::from_secs(age)).unwrap();
    }
    // A smaller bound: the oldest (1) goes at start-up, then the next oldest (2).
    let cache = BodyCache::new(&disk_only(dir.path(), 2 * entry)).unwrap();
    assert_eq!(cache.stats(), CacheStats { disk_evictions: 1, disk_bytes: 2 * entry, ..Default::default() });
    assert!(!entry_path(dir.path(), &guid(1)).exists());
    cache.put(&guid(9), body(9, 1000));
    assert!(!entry_path(dir.path(), &guid(2)).exists());
    assert!(get(&cache, 0, &bodies[0]).is_some());
}

#[test]
fn restart_removes_stale_temporary_files_only() {
    let dir = TempDir::new("temp");
    let sub = dir.path().join("ab");
    fs::create_dir_all(&sub).unwrap();
    let stale = sub.join(".tmp-stale");
    let fresh = sub.join(".tmp-fresh");
    let unrelated = sub.join("notes.txt");
    for p in [&stale, &fresh, &unrelated] {
        fs::write(p, b"x").unwrap();
    }
    let file = fs::File::options().write(true).open(&stale).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(2 * 3600)).unwrap();
    let cache = BodyCache::new(&disk_only(dir.path(), 1 << 20)).unwrap();
    assert!(!stale.exists());
    assert!(fresh.exists());
    assert!(unrelated.exists());
    assert_eq!(cache.stats().disk_bytes, 0);
}

#[test]
fn concurrent_puts_and_gets_stay_consistent() {
    const THREADS: u32 = 8;
    const ROUNDS: u32 = 400;
    const MAILS: u32 = 64;
    let len = |n: u32| 1000 + 61 * n as usize;
    let dir = TempDir::new("threads");
    let config = CacheConfig {
        memory_bytes: 60_000,
        disk_dir: Some(dir.path().into()),
        disk_bytes: 100_000,
        ..CacheConfig::default()
    };
    let cache = Arc::new(BodyCache::new(&config).unwrap());
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let cache = cache.clone();
            s.spawn(move || {
                for i in 0..ROUNDS {
                    let n = (t * 7 + i * 13) % MAILS;
                    let b = body(n, len(n));
                    match get(&cache, n, &b) {
                        Some(got) => assert_eq!(&got[..], &b[..], "mail {n}"),
                        None => cache.put(&guid(n), b),
                    }
                }
            });
        }
    });
    let stats = cache.stats();
    assert_eq!(stats.memory_hits + stats.disk_hits + stats.misses, u64::from(THREADS * ROUNDS), "{stats:?}");
    assert_eq!(stats.corrupt_dropped, 0, "{stats:?}");
    assert!(stats.memory_bytes <= 60_000, "{stats:?}");
    assert!(stats.disk_bytes <= 100_000, "{stats:?}");
    assert!(stats.memory_evictions > 0 && stats.disk_evictions > 0, "{stats:?}");
    let on_disk: u64 = files_under(dir.path()).iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    assert_eq!(on_disk, stats.disk_bytes, "the index matches the directory, and no temporary file is left");
    drop(cache);

    // Every file left is intact.
    let cache = BodyCache::new(&disk_only(dir.path(), 100_000)).unwrap();
    for n in 0..MAILS {
        let b = body(n, len(n));
        if let Some(got) = get(&cache, n, &b) {
            assert_eq!(&got[..], &b[..]);
        }
    }
    assert_eq!(cache.stats().corrupt_dropped, 0);
    assert!(cache.stats().disk_hits > 0);
}
