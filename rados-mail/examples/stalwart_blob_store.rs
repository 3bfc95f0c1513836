//! How a mail server that keeps its own index would store its blobs in RADOS: an adapter
//! from a blob-store trait of the shape Stalwart's data store uses (async `get_blob(key,
//! range)`, `put_blob(key, data)`, `delete_blob(key)`; the trait is defined here, not
//! taken from Stalwart) to `rados_mail::blob`.
//!
//! Such a server names blobs by a hash of their content and counts their links in its own
//! index, so each blob holds one reference ([`Owner::KEY`]); storing a key that is there
//! already is a success (same key, same bytes).
//!
//! Runs against memory, or against the cluster when `CEPH_CONF` is set (blobs in
//! `RADOS_MAIL_DATA_POOL`, an erasure-coded pool in CI):
//!
//! ```sh
//! cargo run -p rados-mail --example stalwart_blob_store
//! . target/ceph/env.sh && cargo run -p rados-mail --example stalwart_blob_store
//! ```

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use rados_mail::blob::{BlobStore, Owner};
use rados_mail::{Config, Error, MailStore};
use sha2::{Digest, Sha256};

/// A blob store of the shape a mail server with its own index expects.
trait BlobBackend: Send + Sync {
    /// The bytes `range` of the blob (`0..usize::MAX` for all of it), `None` if absent.
    fn get_blob(&self, key: &[u8], range: Range<usize>) -> impl Future<Output = Result<Option<Vec<u8>>, Error>> + Send;
    /// Stores `data` under `key`.
    fn put_blob(&self, key: &[u8], data: &[u8]) -> impl Future<Output = Result<(), Error>> + Send;
    /// Removes the blob; `false` if there was none.
    fn delete_blob(&self, key: &[u8]) -> impl Future<Output = Result<bool, Error>> + Send;
}

/// The adapter: one blob store of the deployment.
struct RadosBlobs {
    blobs: BlobStore,
}

impl BlobBackend for RadosBlobs {
    async fn get_blob(&self, key: &[u8], range: Range<usize>) -> Result<Option<Vec<u8>>, Error> {
        self.blobs.get_async(key, range.start as u64..range.end as u64).await
    }

    async fn put_blob(&self, key: &[u8], data: &[u8]) -> Result<(), Error> {
        // Pieces of 64 KiB, as a server streams a message it receives.
        let pieces = futures::stream::iter(data.chunks(64 << 10).map(Ok::<_, Error>));
        match self.blobs.put_stream(key, Owner::KEY, pieces).await {
            Ok(_) | Err(Error::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_blob(&self, key: &[u8]) -> Result<bool, Error> {
        self.blobs.delete_async(key, Owner::KEY).await
    }
}

/// The key a server would give `data`: a hash of it (hex, so the object names read well).
fn blob_key(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes()
}

fn open_store() -> Result<(MailStore, &'static str), Error> {
    let config = Config { chunk_size: 256 << 10, ..Config::default() };
    if std::env::var_os("CEPH_CONF").is_some() {
        #[cfg(feature = "rados")]
        {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
            let config = Config {
                namespace_prefix: format!("example-{}-{nanos}", std::process::id()),
                data_pool: std::env::var("RADOS_MAIL_DATA_POOL").unwrap_or_default(),
                ..config
            };
            return Ok((MailStore::connect(&librados::ClusterConfig::from_env(), config)?, "the cluster"));
        }
        #[cfg(not(feature = "rados"))]
        eprintln!("CEPH_CONF is set but this build has no librados (feature `rados`): using memory");
    }
    Ok((MailStore::in_memory(config), "memory"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (store, place) = open_store()?;
    let backend = Arc::new(RadosBlobs { blobs: store.blobs("stalwart")? });
    // Messages of 1 KiB to 1 MiB (the larger span several 256 KiB objects).
    let messages: Vec<Vec<u8>> =
        (0..32u32).map(|i| (0..(1024usize << (i % 11))).map(|j| (j as u32 ^ (i * 7919)) as u8).collect()).collect();
    let started = Instant::now();
    let tasks: Vec<_> = messages
        .iter()
        .cloned()
        .map(|m| {
            let backend = backend.clone();
            tokio::spawn(async move {
                let key = blob_key(&m);
                backend.put_blob(&key, &m).await?;
                backend.put_blob(&key, &m).await?; // stored already: fine
                let whole = backend.get_blob(&key, 0..usize::MAX).await?.expect("just stored");
                let part = backend.get_blob(&key, 100..300).await?.expect("just stored");
                assert!(whole == m && part == m[100..300.min(m.len())], "blob {} read back wrong", m.len());
                Ok::<_, Error>(key)
            })
        })
        .collect();
    let mut keys = Vec::new();
    for task in tasks {
        keys.push(task.await??);
    }
    let bytes: usize = messages.iter().map(Vec::len).sum();
    println!(
        "stored and read back {} blobs ({} KiB) on {place} in {:?} with 32 tokio tasks",
        keys.len(),
        bytes >> 10,
        started.elapsed()
    );
    let report = backend.blobs.check_async(true).await?;
    assert!(report.is_clean() && report.blobs == 32, "{report:?}");
    for key in &keys {
        assert!(backend.delete_blob(key).await?);
        assert!(!backend.delete_blob(key).await?, "deleted already");
        assert_eq!(backend.get_blob(key, 0..usize::MAX).await?, None);
    }
    let left = backend.blobs.object_store().list_objects()?.count();
    assert_eq!(left, 0, "every object of every blob is removed");
    println!("deleted them all; check clean; 0 objects left");
    Ok(())
}
