//! A blob store for mail servers that keep their own index (Stalwart's data store, say):
//! `put(key, stream)`, `get(key, range)`, `delete(key)`, with content-addressed keys as an
//! option, chunking above [`Config::chunk_size`], reference-counted sharing and
//! check/repair, on the mail store's data pool (which may be erasure-coded: nothing here
//! uses omap or partial writes). The objects are described in `docs/FORMAT.md`, "Blobs".
//!
//! ```
//! use rados_mail::blob::Owner;
//! use rados_mail::{Config, MailStore};
//!
//! let store = MailStore::in_memory(Config::default());
//! let blobs = store.blobs("attachments")?;
//! blobs.put(b"report.pdf", Owner::KEY, &b"%PDF-1.7 ..."[..])?;
//! assert_eq!(blobs.get(b"report.pdf", 1..4)?.as_deref(), Some(&b"PDF"[..]));
//! assert!(blobs.delete(b"report.pdf", Owner::KEY)?);
//! assert_eq!(blobs.get(b"report.pdf", ..)?, None);
//! # Ok::<(), rados_mail::Error>(())
//! ```
//!
//! # Keys, references, durability
//!
//! A blob is named by a caller-chosen byte key ([`BlobStore::put`]) or by the SHA-256 of
//! its content ([`BlobStore::put_content`], key `sha256:<64 hex>`). Every blob holds one or
//! more references, each of an [`Owner`]; [`BlobStore::add_ref`] adds one (a copy),
//! [`BlobStore::delete`] drops one, and dropping the last removes every object of the
//! blob. References are the mail bodies' `rm.ref.<guid>.<instance>` xattrs, dropped with
//! the same version-guarded read-then-write, so a concurrent copy and delete never lose a
//! blob that is still referenced.
//!
//! A put writes the chunk objects first and the first object last, in one atomic write
//! that carries the description (size, crc32, chunk count) and the first reference: a
//! blob is readable only complete, and a crash leaves chunk objects that no first object
//! names, which [`BlobStore::repair`] removes after a grace period.

use std::sync::Arc;

use futures::StreamExt;
use futures::executor::block_on;
use objstore::{Error as StoreError, ObjectStore, ReadOp, WriteOp};
use omap_index::names::{Guid, namespace_of, xattr as mail_xattr};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::refs::{read_references, references_of};
use crate::retry::RetryPolicy;
use crate::store::MailStore;

mod check;
pub mod conformance;
mod put;
mod read;

pub use check::{BlobReport, DamagedBlob, RepairOptions};
pub use put::BlobWriter;
pub use read::BlobStream;

/// The format version of blob objects this build writes and reads (`rm.blob.v`).
pub const BLOB_VERSION: u32 = 1;

/// Longest key accepted, in bytes (escaped, a key takes up to three times as many bytes
/// of an object name: Ceph allows 2,048).
pub const MAX_KEY_LEN: usize = 512;

/// Prefix of the keys [`BlobStore::put_content`] makes; [`BlobStore::put`] refuses keys
/// that start with it, so that a content key always names its content.
pub const CONTENT_KEY_PREFIX: &str = "sha256:";

/// Xattrs of a blob's first object (values ASCII, as the mail bodies' are).
pub mod xattr {
    /// Format version of the blob ("1").
    pub const VERSION: &str = "rm.blob.v";
    /// Length of the blob in bytes (decimal).
    pub const SIZE: &str = "rm.blob.size";
    /// crc32 of the whole blob (8 hex).
    pub const CRC32: &str = "rm.blob.crc32";
    /// Bytes per object (decimal).
    pub const CHUNK_SIZE: &str = "rm.blob.chunksize";
    /// Objects the blob spans, the first included (decimal, at least 1).
    pub const CHUNKS: &str = "rm.blob.chunks";
    /// The put that wrote the blob (16 hex): its chunk objects are `c.<gen>.<n>`.
    pub const GEN: &str = "rm.blob.gen";
    /// When the put completed, Unix seconds (decimal).
    pub const SAVED: &str = "rm.blob.saved";
}

/// Who holds a reference on a blob: an id (a mailbox, an account, a message of the
/// caller's index) and an instance, so that one id may hold several references. Stored
/// as the mail bodies' reference xattr `rm.ref.<id>.<instance:016x>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// The owner's id.
    pub id: Guid,
    /// Which of the owner's references.
    pub instance: u64,
}

impl Owner {
    /// The reference of the key itself, for callers that keep their own reference counts
    /// (one reference per blob: put with it, delete with it).
    pub const KEY: Owner = Owner { id: Guid([0; 16]), instance: 0 };

    /// The owner `id`, reference `instance`.
    pub fn new(id: Guid, instance: u64) -> Owner {
        Owner { id, instance }
    }

    /// The xattr name of this reference.
    fn xattr(&self) -> String {
        mail_xattr::reference(&self.id, self.instance)
    }
}

/// What a stored blob is: from its first object's xattrs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's key.
    pub key: Vec<u8>,
    /// Length in bytes.
    pub size: u64,
    /// crc32 of the whole blob.
    pub crc32: u32,
    /// Bytes per object.
    pub chunk_size: u64,
    /// Objects the blob spans (at least 1).
    pub chunks: u64,
    /// The put that wrote it (names its chunk objects).
    pub generation: u64,
    /// When the put completed (Unix seconds).
    pub saved: i64,
    /// References held when it was read.
    pub references: Vec<Owner>,
}

/// The blobs of one namespace of the data pool. Cheap to clone; safe to share between
/// threads. `get`, `stat`, `add_ref`, `delete`, `check` and `repair` have a blocking form
/// and an `_async` one, built on [`ObjectStore::read_op_async`] /
/// [`ObjectStore::write_op_async`] (no blocking pool); puts take a reader (blocking) or a
/// stream ([`BlobStore::put_stream`], [`BlobWriter`]); [`BlobStore::get_stream`] streams
/// reads. The blocking forms must not be called on an async runtime's threads.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    chunk_size: u64,
    write_in_flight: usize,
    read_in_flight: usize,
    max_size: u64,
    retry: RetryPolicy,
}

impl MailStore {
    /// The blob store `name` of this deployment: the namespace `<prefix>/.blobs.<name>`
    /// (`.blobs.<name>` without a prefix) of the data pool ([`Config::data_pool`]), apart
    /// from every user (a user name never starts with '.'). `name` is 1 to 64 bytes of
    /// ASCII letters, digits, '-' and '_'; [`Error::InvalidInput`] otherwise.
    ///
    /// Blobs are chunked at [`Config::chunk_size`] and limited to [`Config::max_mail_size`]
    /// bytes. Like [`MailStore::user`], refuses a deployment whose format record is newer
    /// or contradicts the settings' data pool.
    pub fn blobs(&self, name: &str) -> Result<BlobStore> {
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if name.is_empty() || name.len() > 64 || !name.chars().all(valid) {
            return Err(Error::InvalidInput(format!(
                "blob store name {name:?}: 1 to 64 ASCII letters, digits, '-' or '_'"
            )));
        }
        self.layout_state().check_last()?;
        let ns = namespace_of(&self.config().namespace_prefix, &format!(".blobs.{name}"));
        Ok(BlobStore::new(self.data_pool().with_namespace(&ns)?, self.config()))
    }
}

impl BlobStore {
    /// The blobs of `store`'s namespace, chunked and limited as `config` says
    /// ([`Config::chunk_size`], [`Config::write_in_flight`], [`Config::read_in_flight`],
    /// [`Config::max_mail_size`], [`Config::max_attempts`]). [`MailStore::blobs`] is the
    /// usual way in; this one is for a store of one's own (tests, tools).
    pub fn new(store: Arc<dyn ObjectStore>, config: &Config) -> BlobStore {
        BlobStore {
            store,
            chunk_size: (config.chunk_size as u64).clamp(1, objstore::MAX_WRITE / 2),
            write_in_flight: config.write_in_flight.max(1),
            read_in_flight: config.read_in_flight.max(1),
            max_size: config.max_mail_size,
            retry: RetryPolicy::new(config.max_attempts),
        }
    }

    /// The namespace underneath (for tools and tests).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Bytes per object of the blobs this store writes.
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// What is stored under `key`: `None` if nothing is.
    pub fn stat(&self, key: &[u8]) -> Result<Option<BlobInfo>> {
        block_on(self.stat_async(key))
    }

    /// [`BlobStore::stat`] without blocking.
    pub async fn stat_async(&self, key: &[u8]) -> Result<Option<BlobInfo>> {
        let oid = object_name(key)?;
        match self.store.read_op_async(&oid, ReadOp::new().xattrs()).await {
            Ok(r) => Ok(Some(describe(key, &oid, r)?)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds `owner`'s reference to the blob under `key` (a copy: the blob now lives until
    /// every reference is dropped). One write, guarded by the blob's existence: `false`
    /// when there is no such blob. Adding a reference that is already there changes
    /// nothing.
    pub fn add_ref(&self, key: &[u8], owner: Owner) -> Result<bool> {
        block_on(self.add_ref_async(key, owner))
    }

    /// [`BlobStore::add_ref`] without blocking.
    pub async fn add_ref_async(&self, key: &[u8], owner: Owner) -> Result<bool> {
        let oid = object_name(key)?;
        let op = WriteOp::new().assert_exists().set_xattr(owner.xattr(), Vec::new());
        match self.store.write_op_async(&oid, op).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Drops `owner`'s reference on the blob under `key`; when it was the last, removes
    /// the blob (its first object, then its chunks). `false` when the blob or that
    /// reference was not there (nothing changed). Race-free against concurrent
    /// [`BlobStore::add_ref`] and `delete`: the write is guarded by the version read. A
    /// lost race reads again at once, then after pauses of the crate's retry policy (which
    /// block the calling thread, up to 128 ms each, also in [`BlobStore::delete_async`]),
    /// at most [`Config::max_attempts`] times, then [`Error::Conflict`].
    pub fn delete(&self, key: &[u8], owner: Owner) -> Result<bool> {
        block_on(self.delete_async(key, owner))
    }

    /// [`BlobStore::delete`] without blocking.
    pub async fn delete_async(&self, key: &[u8], owner: Owner) -> Result<bool> {
        let oid = object_name(key)?;
        let mut attempts = self.retry.start();
        loop {
            let read = match self.store.read_op_async(&oid, read_references(false, 0)).await {
                Ok(r) => r,
                Err(StoreError::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e.into()),
            };
            // A blob whose description is damaged can still be deleted (its chunks are
            // then left for `repair`); one of a newer format cannot.
            let info = match describe(key, &oid, read.clone()) {
                Ok(info) => Some(info),
                Err(Error::Corrupted { .. }) => None,
                Err(e) => return Err(e),
            };
            let refs = references_of(read);
            let ours = (owner.id, owner.instance);
            if !refs.xattrs.contains(&ours) {
                return Ok(false);
            }
            let last = refs.xattrs.iter().all(|r| *r == ours);
            let op = WriteOp::new().assert_version(refs.version);
            let op = if last { op.remove() } else { op.rm_xattr(owner.xattr()) };
            match self.store.write_op_async(&oid, op).await {
                Ok(_) => {
                    if let (true, Some(info)) = (last, info) {
                        self.remove_chunks(info.generation, info.chunks).await?;
                    }
                    return Ok(true);
                }
                Err(StoreError::NotFound { .. }) => return Ok(false),
                Err(StoreError::Conflict { .. }) => {
                    attempts.lost(|| format!("dropping reference {} on blob {oid}", owner.xattr()))?
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes chunk objects `1..chunks` of put `generation` (missing ones are fine: a
    /// delete that was interrupted and is done again).
    async fn remove_chunks(&self, generation: u64, chunks: u64) -> Result<()> {
        let removes =
            (1..chunks).map(|n| self.store.write_op_async(&chunk_name(generation, n), WriteOp::new().remove()));
        let mut removes = futures::stream::iter(removes).buffer_unordered(self.write_in_flight);
        let mut first_error = None;
        while let Some(r) = removes.next().await {
            match r {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        // What is left is an orphan that `repair` removes after its grace.
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Every key of a blob in this store (in no particular order; complete blobs and
    /// blobs whose first object is damaged alike). Lists the namespace: an operator or
    /// garbage-collection call, not a data-path one.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        for name in self.store.list_objects()? {
            if let Some(key) = name?.strip_prefix("b.").and_then(unescape) {
                keys.push(key);
            }
        }
        Ok(keys)
    }
}

/// Decodes a first object's xattrs.
fn describe(key: &[u8], oid: &str, read: objstore::ReadResult) -> Result<BlobInfo> {
    let xattrs = read.xattrs.unwrap_or_default();
    let bad = |detail: String| Error::Corrupted { object: oid.to_string(), key: None, detail };
    let text = |name: &str| -> Result<&str> {
        let v = xattrs.get(name).ok_or_else(|| bad(format!("xattr {name} missing")))?;
        std::str::from_utf8(v).map_err(|_| bad(format!("xattr {name} is not ASCII")))
    };
    let num =
        |name: &str| -> Result<u64> { text(name)?.parse().map_err(|_| bad(format!("xattr {name} is not a number"))) };
    let version = num(xattr::VERSION)?;
    if version != u64::from(BLOB_VERSION) {
        return Err(Error::UnsupportedFormat {
            pool: "(the data pool)".into(),
            namespace: "(a blob store)".into(),
            version: version.min(u64::from(u32::MAX)) as u32,
            detail: format!("blob object {oid} (blob format {version}; this build reads {BLOB_VERSION})"),
        });
    }
    let hex = |name: &str, digits: usize| -> Result<u64> {
        let t = text(name)?;
        (t.len() == digits)
            .then(|| u64::from_str_radix(t, 16).ok())
            .flatten()
            .ok_or_else(|| bad(format!("xattr {name} is not {digits} hex digits")))
    };
    let info = BlobInfo {
        key: key.to_vec(),
        size: num(xattr::SIZE)?,
        crc32: hex(xattr::CRC32, 8)? as u32,
        chunk_size: num(xattr::CHUNK_SIZE)?,
        chunks: num(xattr::CHUNKS)?,
        generation: hex(xattr::GEN, 16)?,
        saved: text(xattr::SAVED)?.parse().map_err(|_| bad(format!("xattr {} is not a number", xattr::SAVED)))?,
        references: xattrs
            .keys()
            .filter_map(|n| mail_xattr::parse_reference(n))
            .map(|(id, instance)| Owner { id, instance })
            .collect(),
    };
    if info.chunk_size == 0 || info.chunks != object_count(info.size, info.chunk_size) {
        return Err(bad(format!(
            "{} chunks of {} bytes cannot hold {} bytes",
            info.chunks, info.chunk_size, info.size
        )));
    }
    Ok(info)
}

/// How many objects a blob of `size` bytes spans at `chunk_size` (at least 1).
fn object_count(size: u64, chunk_size: u64) -> u64 {
    size.div_ceil(chunk_size.max(1)).max(1)
}

/// The first object of the blob under `key`: `b.` and the key escaped. Bytes of
/// `[A-Za-z0-9_-]` stand for themselves, every other byte (the '.' and '%' included) is
/// `%XX` (upper-case hex): the mapping is injective, readable for ASCII keys, and the
/// name never holds a '.' after its prefix. [`Error::InvalidInput`] for an empty key or
/// one longer than [`MAX_KEY_LEN`].
pub fn object_name(key: &[u8]) -> Result<String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidInput(format!("blob key of {} bytes (1 to {MAX_KEY_LEN})", key.len())));
    }
    let mut name = String::with_capacity(2 + key.len());
    name.push_str("b.");
    for &b in key {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(name)
}

/// The key of an escaped name (after `b.`), if it is one [`object_name`] makes.
fn unescape(escaped: &str) -> Option<Vec<u8>> {
    let bytes = escaped.as_bytes();
    let (mut key, mut i) = (Vec::new(), 0);
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = escaped.get(i + 1..i + 3)?;
                if hex.bytes().any(|c| c.is_ascii_lowercase()) {
                    return None;
                }
                key.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' => {
                key.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    (!key.is_empty()).then_some(key)
}

/// Chunk object `n` (1, 2, ...) of put `generation`: `c.<generation:016x>.<n:04>`.
fn chunk_name(generation: u64, n: u64) -> String {
    format!("c.{generation:016x}.{n:04}")
}

/// The generation and index of a chunk object's name, if it is one.
fn parse_chunk_name(name: &str) -> Option<(u64, u64)> {
    let (generation, n) = name.strip_prefix("c.")?.split_once('.')?;
    let g = (generation.len() == 16).then(|| u64::from_str_radix(generation, 16).ok()).flatten()?;
    let n: u64 = n.parse().ok()?;
    (n >= 1 && chunk_name(g, n) == name).then_some((g, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_escape_and_parse() {
        assert_eq!(object_name(b"a-Z_9").unwrap(), "b.a-Z_9");
        assert_eq!(object_name(b"sha256:ab.c%").unwrap(), "b.sha256%3Aab%2Ec%25");
        assert_eq!(object_name(&[0, 255]).unwrap(), "b.%00%FF");
        assert!(object_name(b"").is_err());
        assert!(object_name(&[b'%'; MAX_KEY_LEN]).unwrap().len() <= objstore::MAX_OID_LEN);
        assert!(object_name(&[b'x'; MAX_KEY_LEN + 1]).is_err());
        for key in [&b"a.b"[..], b"%41", &[0, 1, 2, 255], b"x"] {
            let name = object_name(key).unwrap();
            assert_eq!(unescape(&name[2..]).as_deref(), Some(key));
        }
        assert_eq!(unescape("%4a"), None, "lower-case hex is not what object_name writes");
        assert_eq!(unescape("a.b"), None);
        assert_eq!(chunk_name(0xabc, 7), "c.0000000000000abc.0007");
        assert_eq!(parse_chunk_name("c.0000000000000abc.0007"), Some((0xabc, 7)));
        assert_eq!(parse_chunk_name("c.0000000000000abc.12345"), Some((0xabc, 12345)));
        assert_eq!(parse_chunk_name("c.0000000000000abc.7"), None);
        assert_eq!(parse_chunk_name("c.0000000000000abc.0000"), None);
    }
}
