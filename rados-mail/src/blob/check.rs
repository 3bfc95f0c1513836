//! Check and repair of a blob namespace: torn blobs (a chunk missing or of the wrong
//! size, a first object whose description is unreadable, a crc mismatch in a deep check)
//! are reported loudly and never removed; chunk objects that no first object names (a put
//! that never completed, a delete that was interrupted) are orphans, removed by repair
//! once older than a grace period (a put in flight writes its chunks before its first
//! object).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use futures::executor::block_on;
use objstore::{Error as StoreError, ReadOp, WriteOp};

use super::{BlobStore, chunk_name, describe, parse_chunk_name, unescape, xattr};
use crate::error::Result;

/// How [`BlobStore::repair`] works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairOptions {
    /// Report what would be removed, remove nothing.
    pub dry_run: bool,
    /// Orphan chunk objects younger than this are left alone: they may belong to a put in
    /// flight (default one hour, as for mail bodies: it must exceed the longest put).
    pub orphan_grace: Duration,
    /// Read every blob whole and check its crc32 (slow: reads all data).
    pub deep: bool,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions { dry_run: false, orphan_grace: Duration::from_secs(3600), deep: false }
    }
}

/// A blob that cannot be read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DamagedBlob {
    /// Its key.
    pub key: Vec<u8>,
    /// Its first object.
    pub object: String,
    /// What is wrong.
    pub problem: String,
    /// References it holds (it is kept whatever their number: an operator decides).
    pub references: usize,
}

/// What [`BlobStore::check`] or [`BlobStore::repair`] found (and did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BlobReport {
    /// Blobs found whole.
    pub blobs: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Blobs that cannot be read whole: reported, never removed.
    pub damaged: Vec<DamagedBlob>,
    /// Chunk objects no blob names (found, whether removed or not).
    pub orphans: Vec<String>,
    /// Objects that are neither a blob's first object nor a chunk object.
    pub unknown: Vec<String>,
    /// Orphans removed (repair without `dry_run`).
    pub removed: Vec<String>,
    /// Orphans left: younger than the grace, or all of them while a damaged blob's
    /// chunks cannot be told apart (its generation is unreadable), or on a dry run.
    pub kept: Vec<String>,
}

impl BlobReport {
    /// Nothing damaged, no orphan, no unknown object.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.orphans.is_empty() && self.unknown.is_empty()
    }
}

impl BlobStore {
    /// Checks every blob of the namespace (their first objects and chunk objects; with
    /// `deep`, their bytes against their crc32) and lists orphans. Reads only.
    pub fn check(&self, deep: bool) -> Result<BlobReport> {
        block_on(self.check_async(deep))
    }

    /// [`BlobStore::check`], then removes the orphan chunk objects older than the grace.
    /// Damaged blobs are logged as errors and kept.
    pub fn repair(&self, options: &RepairOptions) -> Result<BlobReport> {
        block_on(self.scan(options, true))
    }

    /// [`BlobStore::check`] on futures (the listing of the namespace still blocks:
    /// [`ObjectStore::list_objects`](objstore::ObjectStore::list_objects) is synchronous).
    pub async fn check_async(&self, deep: bool) -> Result<BlobReport> {
        self.scan(&RepairOptions { dry_run: true, deep, ..RepairOptions::default() }, false).await
    }

    /// [`BlobStore::repair`] on futures (the listing of the namespace still blocks:
    /// [`ObjectStore::list_objects`](objstore::ObjectStore::list_objects) is synchronous).
    pub async fn repair_async(&self, options: &RepairOptions) -> Result<BlobReport> {
        self.scan(options, true).await
    }

    async fn scan(&self, options: &RepairOptions, repair: bool) -> Result<BlobReport> {
        let mut report = BlobReport::default();
        let (mut firsts, mut chunks) = (Vec::new(), BTreeMap::<u64, BTreeSet<u64>>::new());
        for name in self.store.list_objects()? {
            let name = name?;
            if let Some(key) = name.strip_prefix("b.").and_then(unescape) {
                firsts.push((key, name));
            } else if let Some((generation, n)) = parse_chunk_name(&name) {
                chunks.entry(generation).or_default().insert(n);
            } else {
                report.unknown.push(name);
            }
        }
        // Generations of the blobs found, and whether a damaged one hides its own.
        let (mut live, mut unknown_generation) = (BTreeSet::new(), false);
        let reads = firsts.into_iter().map(|(key, oid)| {
            let read = self.store.read_op_async(&oid, ReadOp::new().stat().xattrs());
            async move { (key, oid, read.await) }
        });
        let mut reads = futures::stream::iter(reads).buffer_unordered(self.read_in_flight);
        while let Some((key, oid, read)) = reads.next().await {
            let read = match read {
                Ok(r) => r,
                Err(StoreError::NotFound { .. }) => continue, // deleted meanwhile
                Err(e) => return Err(e.into()),
            };
            let xattrs = read.xattrs.clone().unwrap_or_default();
            let references = xattrs.keys().filter(|n| n.starts_with(omap_index::names::xattr::REFERENCE)).count();
            let first_size = read.stat.map(|s| s.size).unwrap_or_default();
            let generation = xattrs
                .get(xattr::GEN)
                .and_then(|g| std::str::from_utf8(g).ok())
                .and_then(|g| (g.len() == 16).then(|| u64::from_str_radix(g, 16).ok()).flatten());
            match generation {
                Some(g) => live.insert(g),
                None => {
                    unknown_generation = true;
                    false
                }
            };
            let problem = match describe(&key, &oid, read) {
                Err(e) => Some(e.to_string()),
                Ok(info) if first_size != info.size.min(info.chunk_size) => Some(format!(
                    "first object of {first_size} bytes where {} were expected",
                    info.size.min(info.chunk_size)
                )),
                Ok(info) => match self.check_chunks(&info).await? {
                    Some(problem) => Some(problem),
                    None if options.deep => match self.get_async(&key, ..).await {
                        Ok(_) => None,
                        Err(e @ crate::Error::Corrupted { .. }) => Some(e.to_string()),
                        Err(e) => return Err(e),
                    },
                    None => None,
                }
                .or_else(|| {
                    report.blobs += 1;
                    report.bytes += info.size;
                    None
                }),
            };
            if let Some(problem) = problem {
                tracing::error!(object = %oid, references, "damaged blob (kept): {problem}");
                report.damaged.push(DamagedBlob { key, object: oid, problem, references });
            }
        }
        let now = SystemTime::now();
        for (generation, ns) in chunks.into_iter().filter(|(g, _)| !live.contains(g)) {
            for n in ns {
                let oid = chunk_name(generation, n);
                report.orphans.push(oid.clone());
                if !repair || options.dry_run || unknown_generation {
                    report.kept.push(oid);
                    continue;
                }
                let (stat, version) = match self.store.read_op_async(&oid, ReadOp::new().stat()).await {
                    Ok(r) => (r.stat.expect("stat requested"), r.version),
                    Err(StoreError::NotFound { .. }) => continue,
                    Err(e) => return Err(e.into()),
                };
                let age = now.duration_since(stat.mtime).unwrap_or_default();
                if age < options.orphan_grace {
                    report.kept.push(oid);
                    continue;
                }
                match self.store.write_op_async(&oid, WriteOp::new().assert_version(version).remove()).await {
                    Ok(_) | Err(StoreError::NotFound { .. }) => report.removed.push(oid),
                    Err(StoreError::Conflict { .. }) => report.kept.push(oid),
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if unknown_generation && repair && !report.orphans.is_empty() {
            tracing::error!("blob repair removed no orphan: a damaged blob's chunks cannot be told apart");
        }
        Ok(report)
    }

    /// Whether every chunk object of `info` is there with its size; the problem if not.
    async fn check_chunks(&self, info: &super::BlobInfo) -> Result<Option<String>> {
        let stats = (1..info.chunks).map(|n| {
            let want = info.chunk_size.min(info.size - n * info.chunk_size);
            let oid = chunk_name(info.generation, n);
            let read = self.store.read_op_async(&oid, ReadOp::new().stat());
            async move { (oid, want, read.await) }
        });
        let mut stats = futures::stream::iter(stats).buffered(self.read_in_flight);
        while let Some((oid, want, read)) = stats.next().await {
            match read {
                Ok(r) if r.stat.map(|s| s.size) == Some(want) => {}
                Ok(r) => {
                    let size = r.stat.map(|s| s.size).unwrap_or_default();
                    return Ok(Some(format!("chunk {oid} has {size} bytes where {want} were expected")));
                }
                Err(StoreError::NotFound { .. }) => return Ok(Some(format!("chunk {oid} is missing"))),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }
}
