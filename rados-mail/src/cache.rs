//! The local cache of mail bodies: a memory tier and an optional disk tier.
//!
//! A mail body is an immutable RADOS object `mail.<guid>`: a GUID never names two different
//! contents, so a cached body never goes stale and the cache needs no invalidation. What it
//! must not do is serve bytes that differ from the body, so every lookup carries the
//! `crc32` and `psize` of the index record and an entry that disagrees with them is dropped.
//!
//! # Memory tier
//!
//! A [`quick_cache`] cache weighted by body bytes, bounded by [`CacheConfig::memory_bytes`].
//!
//! # Disk tier
//!
//! One file per body, `<dir>/<first 2 hex digits>/<32 hex digits of the GUID>`:
//!
//! | offset | bytes | field                                            |
//! |--------|-------|--------------------------------------------------|
//! | 0      | 4     | magic `RMbc`                                     |
//! | 4      | 4     | format version, u32 little-endian (1)            |
//! | 8      | 16    | the mail GUID                                    |
//! | 24     | 8     | body length, u64 little-endian                   |
//! | 32     | 4     | crc32 (IEEE) of the body, u32 little-endian      |
//! | 36     | len   | the body                                         |
//!
//! Files are written to a temporary name in the same directory and renamed into place, so
//! a reader sees a whole file or none. A read checks the magic, version, GUID, the file
//! size, the length and crc32 the caller expects, and the crc32 of the bytes; an entry
//! failing any check is deleted and the lookup is a miss. Nothing is fsynced: after a
//! crash an entry may be torn, and verification drops it.
//!
//! The tier keeps the files it knows under [`CacheConfig::disk_bytes`] (file sizes,
//! headers included) by deleting the least recently used. The order is kept in memory;
//! at start-up it is the files' modification times, which a disk hit refreshes.
//!
//! Several processes may share a directory: renames are atomic and reads verify, so one
//! never corrupts what another reads. The byte bound is per process, though: each
//! process counts the files it wrote or read, and one process does not see another's
//! additions until it reads them or restarts.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use omap_index::names::Guid;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use crate::error::{Error, Result};

/// Bytes of the header before each body in a disk-tier file.
pub const DISK_HEADER_BYTES: u64 = 36;

const MAGIC: [u8; 4] = *b"RMbc";
const FORMAT_VERSION: u32 = 1;
/// Temporary files start with this; the start-up scan removes stale ones.
const TEMP_PREFIX: &str = ".tmp-";
/// A temporary file this old was left by a crashed writer.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Settings of the body cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Bound of the memory tier, in body bytes (default 64 MiB; 0 disables the tier).
    pub memory_bytes: u64,
    /// Bodies larger than this are never cached, in either tier (default 1 MiB).
    pub max_item_bytes: u64,
    /// Directory of the disk tier, created if missing (default `None`: no disk tier).
    pub disk_dir: Option<PathBuf>,
    /// Bound of the disk tier in file bytes, headers included, per process (default 1 GiB;
    /// 0 disables the tier).
    pub disk_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { memory_bytes: 64 << 20, max_item_bytes: 1 << 20, disk_dir: None, disk_bytes: 1 << 30 }
    }
}

/// Counters and sizes of a [`BodyCache`], since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from memory.
    pub memory_hits: u64,
    /// Lookups answered from disk (the body is then promoted into memory).
    pub disk_hits: u64,
    /// Lookups answered by neither tier (including ones above `max_item_bytes`).
    pub misses: u64,
    /// Bodies accepted by [`BodyCache::put`] (not above `max_item_bytes`).
    pub inserts: u64,
    /// Bytes of the bodies counted in `inserts`.
    pub inserted_bytes: u64,
    /// Bodies the memory tier evicted to stay under its bound.
    pub memory_evictions: u64,
    /// Files the disk tier deleted to stay under its bound.
    pub disk_evictions: u64,
    /// Entries (in either tier) dropped because they were corrupt or disagreed with the
    /// length or crc32 a lookup expected.
    pub corrupt_dropped: u64,
    /// Body bytes in memory now (an empty body counts as one byte).
    pub memory_bytes: u64,
    /// File bytes in the disk tier now, as this process knows them.
    pub disk_bytes: u64,
}

/// The counters behind [`CacheStats`], shared with the memory tier's eviction hook.
#[derive(Default)]
struct Counters {
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
    inserted_bytes: AtomicU64,
    memory_evictions: AtomicU64,
    disk_evictions: AtomicU64,
    corrupt_dropped: AtomicU64,
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Relaxed);
}

/// A body in memory with its crc32, computed when it was put.
#[derive(Clone)]
struct MemEntry {
    crc32: u32,
    body: Arc<[u8]>,
}

/// Weighs a memory entry by its body bytes (at least 1: zero-weight entries never leave).
#[derive(Clone)]
struct BodyWeight;

impl Weighter<Guid, MemEntry> for BodyWeight {
    fn weight(&self, _guid: &Guid, entry: &MemEntry) -> u64 {
        (entry.body.len() as u64).max(1)
    }
}

/// Counts evictions; the evicted bodies are freed after the shard lock is released.
#[derive(Clone)]
struct OnEvict(Arc<Counters>);

impl Lifecycle<Guid, MemEntry> for OnEvict {
    type RequestState = Vec<MemEntry>;

    fn on_evict(&self, evicted: &mut Vec<MemEntry>, _guid: Guid, entry: MemEntry) {
        bump(&self.0.memory_evictions, 1);
        evicted.push(entry);
    }
}

type MemoryCache = quick_cache::sync::Cache<Guid, MemEntry, BodyWeight, DefaultHashBuilder, OnEvict>;

struct MemoryTier {
    cache: MemoryCache,
    /// Bodies above this skip memory: quick_cache splits its bound over shards and turns
    /// away an entry too heavy for one shard.
    item_limit: u64,
}

impl MemoryTier {
    fn new(config: &CacheConfig, counters: &Arc<Counters>) -> MemoryTier {
        let bound = config.memory_bytes;
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Each shard should hold at least four of the largest bodies.
        let per_item = config.max_item_bytes.max(1).saturating_mul(4);
        let wanted = (bound / per_item).clamp(1, (parallelism * 4) as u64);
        let shards = 1u64 << wanted.ilog2();
        let options = OptionsBuilder::new()
            .shards(shards as usize)
            .estimated_items_capacity((bound / (16 << 10)).clamp(32, 1 << 20) as usize)
            .weight_capacity(bound)
            .build()
            .expect("valid body cache options");
        let cache =
            MemoryCache::with_options(options, BodyWeight, DefaultHashBuilder::default(), OnEvict(counters.clone()));
        // quick_cache may use fewer shards than asked, never more.
        let item_limit = bound.div_ceil(shards) / 2;
        MemoryTier { cache, item_limit }
    }

    fn insert(&self, guid: Guid, entry: MemEntry) {
        if entry.body.len() as u64 <= self.item_limit {
            let mut evicted = Vec::new();
            self.cache.insert_with_lifecycle(guid, entry, &mut evicted);
        }
    }
}

/// Which files the disk tier holds, and their order of use.
#[derive(Default)]
struct DiskIndex {
    /// GUID → (file bytes, tick of last use).
    files: HashMap<Guid, (u64, u64)>,
    /// Tick of last use → GUID; the first is the least recently used.
    lru: BTreeMap<u64, Guid>,
    total: u64,
    clock: u64,
}

impl DiskIndex {
    /// Records a use of `guid`, a file of `size` bytes.
    fn touch(&mut self, guid: Guid, size: u64) {
        let tick = self.clock;
        self.clock += 1;
        if let Some((old_size, old_tick)) = self.files.insert(guid, (size, tick)) {
            self.lru.remove(&old_tick);
            self.total -= old_size;
        }
        self.lru.insert(tick, guid);
        self.total += size;
    }

    fn remove(&mut self, guid: &Guid) {
        if let Some((size, tick)) = self.files.remove(guid) {
            self.lru.remove(&tick);
            self.total -= size;
        }
    }

    fn pop_least_recent(&mut self) -> Option<Guid> {
        let (_, guid) = self.lru.pop_first()?;
        if let Some((size, _)) = self.files.remove(&guid) {
            self.total -= size;
        }
        Some(guid)
    }
}

/// What a disk lookup found.
enum DiskRead {
    Hit(Arc<[u8]>),
    Absent,
    /// A bad entry, now deleted.
    Dropped,
}

/// Why a file cannot be served.
enum Unusable {
    /// It is not the body the caller asked for, or not intact.
    Bad(String),
    /// It could not be read.
    Io(io::Error),
}

impl From<io::Error> for Unusable {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof { Unusable::Bad("file ends early".into()) } else { Unusable::Io(e) }
    }
}

struct DiskTier {
    dir: PathBuf,
    bound: u64,
    index: Mutex<DiskIndex>,
    counters: Arc<Counters>,
}

impl DiskTier {
    /// Opens (creating it if needed) the directory and learns which files it holds.
    fn open(dir: &Path, bound: u64, counters: &Arc<Counters>) -> Result<DiskTier> {
        let io_error = |e: io::Error| Error::InvalidInput(format!("body cache directory {}: {e}", dir.display()));
        fs::create_dir_all(dir).map_err(io_error)?;
        let mut found = Vec::new();
        for sub in fs::read_dir(dir).map_err(io_error)? {
            let sub = sub.map_err(io_error)?;
            let name = sub.file_name();
            let Some(prefix) = name.to_str().filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            else {
                continue;
            };
            if !sub.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            scan_subdir(&sub.path(), prefix, &mut found);
        }
        // Oldest first; the GUID breaks ties so the order does not depend on the scan.
        found.sort_unstable_by_key(|&(guid, _, mtime)| (mtime, guid));
        let mut index = DiskIndex::default();
        for (guid, size, _) in found {
            index.touch(guid, size);
        }
        let tier = DiskTier { dir: dir.to_path_buf(), bound, index: Mutex::new(index), counters: counters.clone() };
        tier.evict(&mut tier.lock());
        Ok(tier)
    }

    fn lock(&self) -> MutexGuard<'_, DiskIndex> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn subdir(&self, guid: &Guid) -> PathBuf {
        self.dir.join(format!("{:02x}", guid.0[0]))
    }

    fn path(&self, guid: &Guid) -> PathBuf {
        self.subdir(guid).join(guid.to_string())
    }

    fn used(&self) -> u64 {
        self.lock().total
    }

    /// Deletes least recently used files until the known ones fit the bound.
    fn evict(&self, index: &mut DiskIndex) {
        while index.total > self.bound {
            let Some(guid) = index.pop_least_recent() else { break };
            remove_file(&self.path(&guid));
            bump(&self.counters.disk_evictions, 1);
        }
    }

    fn read(&self, guid: &Guid, crc32: u32, len: u64) -> DiskRead {
        let path = self.path(guid);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), "reading the body cache: {e}");
                }
                // Gone (perhaps evicted by another process): forget it, unless a thread of
                // ours has written it since.
                let mut index = self.lock();
                if index.files.contains_key(guid) && !path.exists() {
                    index.remove(guid);
                }
                return DiskRead::Absent;
            }
        };
        match read_entry(&mut file, guid, crc32, len) {
            Ok(body) => {
                // Best effort: the modification time is the use order after a restart.
                let _ = file.set_modified(SystemTime::now());
                let mut index = self.lock();
                // Not known: another process wrote it, or a thread of ours evicted it
                // after we opened it. Count it only if it is still there.
                if index.files.contains_key(guid) || path.exists() {
                    index.touch(*guid, DISK_HEADER_BYTES + len);
                    self.evict(&mut index);
                }
                DiskRead::Hit(body.into())
            }
            Err(Unusable::Bad(why)) => {
                tracing::warn!(path = %path.display(), "dropping a bad body cache entry: {why}");
                let mut index = self.lock();
                remove_file(&path);
                index.remove(guid);
                DiskRead::Dropped
            }
            Err(Unusable::Io(e)) => {
                tracing::warn!(path = %path.display(), "reading the body cache: {e}");
                DiskRead::Absent
            }
        }
    }

    fn write(&self, guid: &Guid, body: &[u8], crc32: u32) {
        let size = DISK_HEADER_BYTES + body.len() as u64;
        if size > self.bound {
            return;
        }
        {
            let mut index = self.lock();
            if index.files.contains_key(guid) {
                // Same GUID, same bytes: only the order of use changes.
                index.touch(*guid, size);
                return;
            }
        }
        let subdir = self.subdir(guid);
        static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);
        let temp =
            subdir.join(format!("{TEMP_PREFIX}{guid}-{}-{}", std::process::id(), TEMP_SEQ.fetch_add(1, Relaxed)));
        let written = fs::create_dir_all(&subdir).and_then(|()| {
            let mut file = File::options().write(true).create_new(true).open(&temp)?;
            file.write_all(&encode_header(guid, body.len() as u64, crc32))?;
            file.write_all(body)
        });
        if let Err(e) = written {
            tracing::warn!(path = %temp.display(), "writing the body cache: {e}");
            remove_file(&temp);
            return;
        }
        // Under the lock, so that no eviction of ours runs between the rename and the
        // bookkeeping.
        let mut index = self.lock();
        if let Err(e) = fs::rename(&temp, self.path(guid)) {
            tracing::warn!(path = %temp.display(), "writing the body cache: {e}");
            remove_file(&temp);
            return;
        }
        index.touch(*guid, size);
        self.evict(&mut index);
    }
}

/// Adds the cache files of one `<dir>/<xx>` directory to `found`; removes stale
/// temporary files.
fn scan_subdir(subdir: &Path, prefix: &str, found: &mut Vec<(Guid, u64, SystemTime)>) {
    let entries = match fs::read_dir(subdir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(path = %subdir.display(), "scanning the body cache: {e}");
            return;
        }
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(TEMP_PREFIX) {
            if mtime.elapsed().is_ok_and(|age| age > STALE_TEMP) {
                remove_file(&entry.path());
            }
            continue;
        }
        match Guid::parse(name) {
            Ok(guid) if name.starts_with(prefix) => found.push((guid, meta.len(), mtime)),
            _ => {}
        }
    }
}

fn remove_file(path: &Path) {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "removing from the body cache: {e}");
        }
        _ => {}
    }
}

fn encode_header(guid: &Guid, len: u64, crc32: u32) -> [u8; DISK_HEADER_BYTES as usize] {
    let mut h = [0u8; DISK_HEADER_BYTES as usize];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h[8..24].copy_from_slice(&guid.0);
    h[24..32].copy_from_slice(&len.to_le_bytes());
    h[32..36].copy_from_slice(&crc32.to_le_bytes());
    h
}

/// Reads and verifies the entry of `guid` that should hold `len` bytes with `crc32`.
fn read_entry(file: &mut File, guid: &Guid, crc32: u32, len: u64) -> Result<Vec<u8>, Unusable> {
    let size = file.metadata()?.len();
    if size != DISK_HEADER_BYTES + len {
        return Err(Unusable::Bad(format!("{size} bytes, expected a header and {len}")));
    }
    let mut h = [0u8; DISK_HEADER_BYTES as usize];
    file.read_exact(&mut h)?;
    let word = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().expect("4 bytes"));
    if h[0..4] != MAGIC {
        return Err(Unusable::Bad("bad magic".into()));
    }
    if word(4) != FORMAT_VERSION {
        return Err(Unusable::Bad(format!("format version {}", word(4))));
    }
    if h[8..24] != guid.0 {
        return Err(Unusable::Bad("holds another GUID".into()));
    }
    let stored_len = u64::from_le_bytes(h[24..32].try_into().expect("8 bytes"));
    let stored_crc = word(32);
    if stored_len != len || stored_crc != crc32 {
        return Err(Unusable::Bad(format!(
            "holds {stored_len} bytes with crc32 {stored_crc:08x}, expected {len} with {crc32:08x}"
        )));
    }
    let len = usize::try_from(len).map_err(|_| Unusable::Bad("too large".into()))?;
    let mut body = vec![0u8; len];
    file.read_exact(&mut body)?;
    let actual = crc32fast::hash(&body);
    if actual != stored_crc {
        return Err(Unusable::Bad(format!("body crc32 {actual:08x}, header says {stored_crc:08x}")));
    }
    Ok(body)
}

/// The local cache of mail bodies, keyed by mail GUID: memory first, then (if configured)
/// a directory on local disk. Safe to share between threads; wrap it in an [`Arc`].
///
/// Lookups take the length and crc32 from the mail's index record and never return
/// bytes that disagree with them. I/O errors of the disk tier are logged and make the
/// cache do less (a miss, an entry not written); they never fail the caller.
pub struct BodyCache {
    max_item_bytes: u64,
    memory: Option<MemoryTier>,
    disk: Option<DiskTier>,
    counters: Arc<Counters>,
}

impl BodyCache {
    /// A cache as `config` says. With a disk tier, creates its directory if needed and
    /// scans it (removing files beyond the bound, least recently modified first).
    ///
    /// Errors with [`Error::InvalidInput`] when the directory cannot be created or listed.
    pub fn new(config: &CacheConfig) -> Result<BodyCache> {
        let counters = Arc::new(Counters::default());
        let memory = (config.memory_bytes > 0).then(|| MemoryTier::new(config, &counters));
        let disk = match &config.disk_dir {
            Some(dir) if config.disk_bytes > 0 => Some(DiskTier::open(dir, config.disk_bytes, &counters)?),
            _ => None,
        };
        Ok(BodyCache { max_item_bytes: config.max_item_bytes, memory, disk, counters })
    }

    /// The body of mail `guid` if it is cached and has `len` bytes with `crc32` (the values
    /// of its index record). An entry that disagrees, or a disk entry that fails its own
    /// checks, is dropped and the lookup is a miss. A disk hit is promoted into memory.
    pub fn get(&self, guid: &Guid, crc32: u32, len: u64) -> Option<Arc<[u8]>> {
        let c = &self.counters;
        if len > self.max_item_bytes {
            bump(&c.misses, 1);
            return None;
        }
        if let Some(memory) = &self.memory
            && let Some(entry) = memory.cache.get(guid)
        {
            if entry.crc32 == crc32 && entry.body.len() as u64 == len {
                bump(&c.memory_hits, 1);
                return Some(entry.body);
            }
            tracing::warn!(mail = %guid, "dropping a cached body that disagrees with its record");
            memory.cache.remove(guid);
            bump(&c.corrupt_dropped, 1);
        }
        if let Some(disk) = &self.disk {
            match disk.read(guid, crc32, len) {
                DiskRead::Hit(body) => {
                    bump(&c.disk_hits, 1);
                    if let Some(memory) = &self.memory {
                        memory.insert(*guid, MemEntry { crc32, body: body.clone() });
                    }
                    return Some(body);
                }
                DiskRead::Dropped => bump(&c.corrupt_dropped, 1),
                DiskRead::Absent => {}
            }
        }
        bump(&c.misses, 1);
        None
    }

    /// Caches `body` as the body of mail `guid`, in memory and (if configured) on disk.
    /// Does nothing for a body above `max_item_bytes`. The caller vouches that `body` is
    /// the mail's (typically: it was just read from RADOS and its crc32 verified).
    pub fn put(&self, guid: &Guid, body: Arc<[u8]>) {
        let len = body.len() as u64;
        if len > self.max_item_bytes || (self.memory.is_none() && self.disk.is_none()) {
            return;
        }
        bump(&self.counters.inserts, 1);
        bump(&self.counters.inserted_bytes, len);
        let crc32 = crc32fast::hash(&body);
        if let Some(disk) = &self.disk {
            disk.write(guid, &body, crc32);
        }
        if let Some(memory) = &self.memory {
            memory.insert(*guid, MemEntry { crc32, body });
        }
    }

    /// Counters since creation, and the current sizes.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            memory_hits: c.memory_hits.load(Relaxed),
            disk_hits: c.disk_hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            inserts: c.inserts.load(Relaxed),
            inserted_bytes: c.inserted_bytes.load(Relaxed),
            memory_evictions: c.memory_evictions.load(Relaxed),
            disk_evictions: c.disk_evictions.load(Relaxed),
            corrupt_dropped: c.corrupt_dropped.load(Relaxed),
            memory_bytes: self.memory.as_ref().map_or(0, |m| m.cache.weight()),
            disk_bytes: self.disk.as_ref().map_or(0, DiskTier::used),
        }
    }
}

impl std::fmt::Debug for BodyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyCache")
            .field("max_item_bytes", &self.max_item_bytes)
            .field("disk_dir", &self.disk.as_ref().map(|d| &d.dir))
            .field("stats", &self.stats())
            .finish()
    }
}
