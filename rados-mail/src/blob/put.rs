//! Writing blobs: chunk objects first (concurrently, a bounded number in flight), the
//! first object last, created exclusively in one write with the description and the first
//! reference. Until that write a blob does not exist for readers; after it, it is whole.

use std::io::Read;

use futures::executor::block_on;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use objstore::{Error as StoreError, ReadOp, WriteOp};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::{
    BLOB_VERSION, BlobInfo, BlobStore, CONTENT_KEY_PREFIX, Owner, chunk_name, object_count, object_name, xattr,
};
use crate::error::{Error, Result};

impl BlobStore {
    /// Stores the bytes of `data` under `key`, with `owner`'s reference. The key must be
    /// free: [`Error::AlreadyExists`] otherwise (after the bytes were sent: check first
    /// with [`BlobStore::stat`] when the blob is large and likely there). Keys starting with
    /// [`CONTENT_KEY_PREFIX`] are refused ([`Error::InvalidInput`]): they belong to
    /// [`BlobStore::put_content`]. [`Error::TooLarge`] above `max_mail_size` bytes.
    pub fn put(&self, key: &[u8], owner: Owner, data: impl Read) -> Result<BlobInfo> {
        let writer = self.writer(key, owner)?;
        block_on(feed_reader(writer, data))
    }

    /// Stores the bytes of `data` under the key `sha256:<hex of their SHA-256>`, with
    /// `owner`'s reference. When that blob exists already, adds `owner`'s reference to it
    /// instead and removes the bytes just written: equal contents are stored once.
    pub fn put_content(&self, owner: Owner, data: impl Read) -> Result<BlobInfo> {
        block_on(feed_reader(self.content_writer(owner), data))
    }

    /// [`BlobStore::put`] from a stream of pieces (any sizes; [`bytes::Bytes`]-like or
    /// `Vec<u8>`), without blocking. Backpressure: the stream is polled only while fewer
    /// than [`crate::Config::write_in_flight`] chunk writes are in flight. A stream error
    /// fails the put with [`Error::Input`].
    ///
    /// [`bytes::Bytes`]: https://docs.rs/bytes
    pub async fn put_stream<S, B, E>(&self, key: &[u8], owner: Owner, data: S) -> Result<BlobInfo>
    where
        S: Stream<Item = std::result::Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        feed_stream(self.writer(key, owner)?, data).await
    }

    /// [`BlobStore::put_content`] from a stream, as [`BlobStore::put_stream`].
    pub async fn put_content_stream<S, B, E>(&self, owner: Owner, data: S) -> Result<BlobInfo>
    where
        S: Stream<Item = std::result::Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        feed_stream(self.content_writer(owner), data).await
    }

    /// [`BlobStore::put`] from an [`AsyncRead`](futures::io::AsyncRead) (tokio's
    /// `AsyncRead` converts with `tokio_util::compat`), without blocking; read errors fail
    /// the put with [`Error::Input`].
    pub async fn put_async_read(
        &self,
        key: &[u8],
        owner: Owner,
        mut data: impl futures::io::AsyncRead + Unpin,
    ) -> Result<BlobInfo> {
        use futures::io::AsyncReadExt;
        let mut writer = self.writer(key, owner)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match data.read(&mut buf).await {
                Ok(0) => return writer.finish().await,
                Ok(n) => writer.write(&buf[..n]).await?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    writer.abort().await;
                    return Err(Error::Input(e.to_string()));
                }
            }
        }
    }

    /// A push-style writer of the blob `key` ([`BlobStore::put`] in pieces).
    pub fn writer(&self, key: &[u8], owner: Owner) -> Result<BlobWriter> {
        object_name(key)?;
        if key.starts_with(CONTENT_KEY_PREFIX.as_bytes()) {
            return Err(Error::InvalidInput(format!(
                "blob key {:?}: keys starting with {CONTENT_KEY_PREFIX:?} are content keys (put_content)",
                String::from_utf8_lossy(key)
            )));
        }
        Ok(BlobWriter::new(self, Some(key.to_vec()), owner))
    }

    /// A push-style writer of a content-addressed blob ([`BlobStore::put_content`]).
    pub fn content_writer(&self, owner: Owner) -> BlobWriter {
        BlobWriter::new(self, None, owner)
    }
}

async fn feed_reader(mut writer: BlobWriter, mut data: impl Read) -> Result<BlobInfo> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                writer.abort().await;
                return Err(Error::Input(e.to_string()));
            }
        };
        writer.write(&buf[..n]).await?;
    }
    writer.finish().await
}

async fn feed_stream<S, B, E>(mut writer: BlobWriter, data: S) -> Result<BlobInfo>
where
    S: Stream<Item = std::result::Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let mut data = std::pin::pin!(data);
    while let Some(piece) = data.next().await {
        match piece {
            Ok(piece) => writer.write(piece.as_ref()).await?,
            Err(e) => {
                writer.abort().await;
                return Err(Error::Input(e.to_string()));
            }
        }
    }
    writer.finish().await
}

/// A blob being written, push style: [`BlobWriter::write`] takes pieces of any size and
/// sends each full chunk object as soon as it is full, [`crate::Config::write_in_flight`]
/// at a time (its future waits while that many are in flight: backpressure);
/// [`BlobWriter::finish`] writes the first object, which makes the blob exist. At most
/// `write_in_flight + 2` chunks are held in memory, whatever the blob's size.
///
/// Every error removes the chunk objects written (except after [`Error::Unavailable`]:
/// they are left for [`BlobStore::repair`], so a refusal never waits a second timeout), as
/// does [`BlobWriter::abort`] and dropping an unfinished writer (which blocks for it).
pub struct BlobWriter {
    blobs: BlobStore,
    /// `None`: content-addressed (the key is known at the end).
    key: Option<Vec<u8>>,
    owner: Owner,
    generation: u64,
    /// The first chunk: written last, in the first object.
    first: Vec<u8>,
    /// The chunk being filled (one of 1, 2, ...).
    buf: Vec<u8>,
    size: u64,
    crc: crc32fast::Hasher,
    sha: Option<Sha256>,
    /// Chunk objects `1..=chunks` are written or in flight.
    chunks: u64,
    in_flight: FuturesUnordered<BoxFuture<'static, objstore::Result<u64>>>,
    /// Finished, aborted or failed: nothing left to clean up, every call fails.
    done: bool,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("key", &self.key)
            .field("generation", &format_args!("{:016x}", self.generation))
            .field("size", &self.size)
            .field("chunks", &self.chunks)
            .finish_non_exhaustive()
    }
}

impl BlobWriter {
    fn new(blobs: &BlobStore, key: Option<Vec<u8>>, owner: Owner) -> BlobWriter {
        BlobWriter {
            sha: key.is_none().then(Sha256::new),
            blobs: blobs.clone(),
            key,
            owner,
            generation: rand::rng().random(),
            first: Vec::new(),
            buf: Vec::new(),
            size: 0,
            crc: crc32fast::Hasher::new(),
            chunks: 0,
            in_flight: FuturesUnordered::new(),
            done: false,
        }
    }

    /// Bytes taken so far.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether no byte was taken yet.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Takes the next piece of the blob. [`Error::TooLarge`] as soon as the blob passes
    /// the store's limit.
    pub async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        if self.done {
            return Err(Error::InvalidInput("write to a finished or failed blob writer".into()));
        }
        if self.size + data.len() as u64 > self.blobs.max_size {
            self.abort().await;
            return Err(Error::TooLarge(format!("blob larger than {} bytes", self.blobs.max_size)));
        }
        self.size += data.len() as u64;
        self.crc.update(data);
        if let Some(sha) = self.sha.as_mut() {
            sha.update(data);
        }
        let chunk = self.blobs.chunk_size as usize;
        while !data.is_empty() {
            let into = if self.first.len() < chunk { &mut self.first } else { &mut self.buf };
            let take = (chunk - into.len()).min(data.len());
            into.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == chunk
                && let Err(e) = self.send().await
            {
                self.fail(&e).await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Sends the chunk being filled, once fewer than `write_in_flight` are in flight.
    async fn send(&mut self) -> Result<()> {
        while self.in_flight.len() >= self.blobs.write_in_flight {
            self.in_flight.next().await.expect("not empty")?;
        }
        self.chunks += 1;
        let op = WriteOp::new().create_exclusive().write_full(std::mem::take(&mut self.buf));
        let oid = chunk_name(self.generation, self.chunks);
        self.in_flight.push(self.blobs.store.write_op_async(&oid, op));
        // Poll once so that the write is sent now (librados submits on the first poll),
        // while the caller produces the next chunk.
        while let Some(Some(done)) = self.in_flight.next().now_or_never() {
            done?;
        }
        Ok(())
    }

    /// Waits until the chunk objects sent so far are written (the blob still does not
    /// exist: [`BlobWriter::finish`] makes it). An error fails the writer as
    /// [`BlobWriter::write`] does.
    pub async fn flush(&mut self) -> Result<()> {
        if self.done {
            return Err(Error::InvalidInput("flush of a finished or failed blob writer".into()));
        }
        while let Some(done) = self.in_flight.next().await {
            if let Err(e) = done {
                let e = e.into();
                self.fail(&e).await;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Writes what is left and the first object: the blob exists from then on.
    pub async fn finish(mut self) -> Result<BlobInfo> {
        if self.done {
            return Err(Error::InvalidInput("finish of a finished or failed blob writer".into()));
        }
        match self.complete().await {
            Ok(info) => {
                self.done = true;
                Ok(info)
            }
            Err(e) => {
                self.fail(&e).await;
                Err(e)
            }
        }
    }

    async fn complete(&mut self) -> Result<BlobInfo> {
        if !self.buf.is_empty() {
            self.send().await?;
        }
        while let Some(done) = self.in_flight.next().await {
            done?;
        }
        let key = match (&self.key, self.sha.take()) {
            (Some(key), _) => key.clone(),
            (None, Some(sha)) => {
                let hex: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
                format!("{CONTENT_KEY_PREFIX}{hex}").into_bytes()
            }
            (None, None) => unreachable!("a content writer hashes"),
        };
        self.key = Some(key.clone());
        let oid = object_name(&key)?;
        let saved =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let info = BlobInfo {
            key: key.clone(),
            size: self.size,
            crc32: self.crc.clone().finalize(),
            chunk_size: self.blobs.chunk_size,
            chunks: self.chunks + 1,
            generation: self.generation,
            saved,
            references: vec![self.owner],
        };
        debug_assert_eq!(info.chunks, object_count(info.size, info.chunk_size));
        let num = |v: u64| v.to_string().into_bytes();
        let op = WriteOp::new()
            .create_exclusive()
            .write_full(self.first.clone())
            .set_xattr(xattr::VERSION, num(u64::from(BLOB_VERSION)))
            .set_xattr(xattr::SIZE, num(info.size))
            .set_xattr(xattr::CRC32, format!("{:08x}", info.crc32).into_bytes())
            .set_xattr(xattr::CHUNK_SIZE, num(info.chunk_size))
            .set_xattr(xattr::CHUNKS, num(info.chunks))
            .set_xattr(xattr::GEN, format!("{:016x}", info.generation).into_bytes())
            .set_xattr(xattr::SAVED, saved.to_string().into_bytes())
            .set_xattr(self.owner.xattr(), Vec::new());
        // A content blob found there already takes our reference instead; it may go
        // between our create and our reference: then create again.
        for _ in 0..8 {
            match self.blobs.store.write_op_async(&oid, op.clone()).await {
                Ok(_) => return Ok(info),
                Err(StoreError::AlreadyExists { .. }) if self.sha_key() => {
                    if self.blobs.add_ref_async(&key, self.owner).await? {
                        let existing = self.blobs.stat_async(&key).await?;
                        self.discard_chunks().await;
                        return existing.ok_or_else(|| Error::NotFound(format!("blob {oid} (deleted meanwhile)")));
                    }
                }
                Err(StoreError::AlreadyExists { .. }) => {
                    return Err(Error::AlreadyExists(format!("blob {oid}")));
                }
                Err(e) => {
                    // The reply may be lost after the write landed (a timeout): then the
                    // blob is ours and whole, and the chunks must stay.
                    let read = self.blobs.store.read_op_async(&oid, ReadOp::new().xattrs()).await;
                    let ours = format!("{:016x}", self.generation).into_bytes();
                    if let Ok(r) = &read
                        && r.xattrs.as_ref().and_then(|x| x.get(xattr::GEN)) == Some(&ours)
                    {
                        return Ok(info);
                    }
                    return Err(e.into());
                }
            }
        }
        Err(Error::Conflict(format!("storing content blob {oid}: deleted and created again and again")))
    }

    /// Whether the key is a content key (computed at the end).
    fn sha_key(&self) -> bool {
        self.key.as_ref().is_some_and(|k| k.starts_with(CONTENT_KEY_PREFIX.as_bytes()))
    }

    /// Gives up after `cause`: as [`BlobWriter::abort`], except that after
    /// [`Error::Unavailable`] the chunks are left for `repair` (removing them would wait
    /// another timeout of a cluster that just timed out).
    async fn fail(&mut self, cause: &Error) {
        if matches!(cause, Error::Unavailable(_)) {
            while self.in_flight.next().await.is_some() {}
            self.chunks = 0;
            self.done = true;
        } else {
            self.abort().await;
        }
    }

    /// Removes the chunk objects written (after the writes in flight end); the writer is
    /// then done.
    pub async fn abort(&mut self) {
        self.discard_chunks().await;
        self.done = true;
    }

    async fn discard_chunks(&mut self) {
        while self.in_flight.next().await.is_some() {}
        if let Err(e) = self.blobs.remove_chunks(self.generation, self.chunks + 1).await {
            tracing::warn!(generation = %format_args!("{:016x}", self.generation), "removing the chunks of a blob put: {e}");
        }
        self.chunks = 0;
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.done || (self.chunks == 0 && self.in_flight.is_empty()) {
            return;
        }
        // Neither finished nor aborted (a cancelled future): nothing may be left behind.
        // As `BodyWriter` does, this waits (librados completes on its own threads); what a
        // failure leaves is an orphan that `repair` removes after its grace.
        block_on(self.abort());
    }
}
