//! Reading blobs: the first object's description and bytes in one read, then the chunk
//! objects of the range, a bounded number at a time; whole (`get`) or as a stream.

use std::ops::{Bound, RangeBounds};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::executor::block_on;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use objstore::{Error as StoreError, ReadOp};

use super::{BlobInfo, BlobStore, chunk_name, describe, object_name};
use crate::error::{Error, Result};

/// `start..end` of a range (`end` `u64::MAX` when unbounded).
fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl BlobStore {
    /// Bytes `range` of the blob under `key` (clipped to its end); `None` if there is no
    /// such blob. A range that covers the whole blob is checked against the blob's crc32
    /// ([`Error::Corrupted`] on a mismatch); partial ranges are not. A missing or short
    /// chunk object is [`Error::Corrupted`].
    pub fn get(&self, key: &[u8], range: impl RangeBounds<u64>) -> Result<Option<Vec<u8>>> {
        block_on(self.get_async(key, range))
    }

    /// [`BlobStore::get`] without blocking: the chunk objects are read concurrently,
    /// [`crate::Config::read_in_flight`] at a time.
    pub async fn get_async(&self, key: &[u8], range: impl RangeBounds<u64>) -> Result<Option<Vec<u8>>> {
        let oid = object_name(key)?;
        let (start, end) = bounds(&range);
        // A delete and a new put under the same key between the first object and the
        // chunks: read again (a handful of times is plenty; each is a new put).
        for _ in 0..8 {
            // The description and the bytes of the first object in one round trip.
            let first_len = end.saturating_sub(start).min(objstore::MAX_READ);
            let op = ReadOp::new().xattrs().read(start, first_len);
            let mut read = match self.store.read_op_async(&oid, op).await {
                Ok(r) => r,
                Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let mut data = read.data.take().unwrap_or_default();
            let info = describe(key, &oid, read)?;
            let end = end.min(info.size);
            if start >= end {
                return Ok(Some(Vec::new()));
            }
            let in_first = end.min(info.chunk_size).saturating_sub(start);
            if (data.len() as u64) < in_first {
                return Err(Error::Corrupted {
                    object: oid,
                    key: None,
                    detail: format!("first object of {} bytes where {} were expected", data.len(), start + in_first),
                });
            }
            data.truncate(in_first as usize);
            match self.read_chunks(&info, start + data.len() as u64, end, &mut data).await? {
                Some(()) => {}
                None => match self.stat_async(key).await? {
                    Some(now) if now.generation != info.generation => continue,
                    Some(_) => {
                        return Err(Error::Corrupted {
                            object: oid,
                            key: None,
                            detail: format!("blob of {} bytes: a chunk object is missing", info.size),
                        });
                    }
                    None => return Ok(None),
                },
            }
            if data.len() as u64 != end - start {
                return Err(Error::Corrupted {
                    object: oid,
                    key: None,
                    detail: format!("read {} bytes of {}..{}: shorter than described", data.len(), start, end),
                });
            }
            if start == 0 && end == info.size {
                let got = crc32fast::hash(&data);
                if got != info.crc32 {
                    return Err(Error::Corrupted {
                        object: oid,
                        key: None,
                        detail: format!("blob crc32 {got:08x}, described as {:08x}", info.crc32),
                    });
                }
            }
            return Ok(Some(data));
        }
        Err(Error::Conflict(format!("reading blob {oid}: replaced while being read, again and again")))
    }

    /// Appends bytes `from..end` of the blob that lie in its chunk objects (after the
    /// first) to `out`; `None` when one of them is missing.
    async fn read_chunks(&self, info: &BlobInfo, from: u64, end: u64, out: &mut Vec<u8>) -> Result<Option<()>> {
        if from >= end {
            return Ok(Some(()));
        }
        let cs = info.chunk_size;
        let reads = (from / cs..end.div_ceil(cs)).map(|n| {
            let lo = from.max(n * cs);
            let hi = end.min((n + 1) * cs);
            let oid = chunk_name(info.generation, n);
            let read = self.store.read_op_async(&oid, ReadOp::new().read(lo - n * cs, hi - lo));
            async move { (oid, hi - lo, read.await) }
        });
        let mut reads = futures::stream::iter(reads).buffered(self.read_in_flight);
        while let Some((oid, want, read)) = reads.next().await {
            match read {
                Ok(r) => {
                    let part = r.data.unwrap_or_default();
                    if part.len() as u64 != want {
                        return Err(Error::Corrupted {
                            object: oid,
                            key: None,
                            detail: format!("chunk of {} bytes where {want} were expected", part.len()),
                        });
                    }
                    out.extend_from_slice(&part);
                }
                Err(StoreError::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(()))
    }

    /// Bytes `range` of the blob under `key` as a stream of pieces (the part in the first
    /// object, then one piece per chunk object, read [`crate::Config::read_in_flight`]
    /// ahead: memory stays bounded whatever the blob's size); `None` if there is no such
    /// blob. As [`BlobStore::get`], a stream of the whole blob is checked against its
    /// crc32: on a mismatch its last item is [`Error::Corrupted`] instead of the last
    /// piece. A chunk object gone while the stream runs is [`Error::NotFound`] when the
    /// blob was deleted or replaced meanwhile, [`Error::Corrupted`] otherwise.
    pub async fn get_stream(&self, key: &[u8], range: impl RangeBounds<u64>) -> Result<Option<BlobStream>> {
        let oid = object_name(key)?;
        let (start, end) = bounds(&range);
        let op = ReadOp::new().xattrs().read(start, end.saturating_sub(start).min(objstore::MAX_READ));
        let mut read = match self.store.read_op_async(&oid, op).await {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut first = read.data.take().unwrap_or_default();
        let info = describe(key, &oid, read)?;
        let end = end.min(info.size).max(start);
        let in_first = end.min(info.chunk_size).saturating_sub(start);
        if (first.len() as u64) < in_first {
            return Err(Error::Corrupted {
                object: oid,
                key: None,
                detail: format!("first object of {} bytes where {} were expected", first.len(), start + in_first),
            });
        }
        first.truncate(in_first as usize);
        let from = start + in_first;
        let (store, cs, generation) = (self.store.clone(), info.chunk_size, info.generation);
        let chunks = if from < end { from / cs..end.div_ceil(cs) } else { 0..0 };
        let reads = futures::stream::iter(chunks)
            .map(move |n| {
                let (lo, hi) = (from.max(n * cs), end.min((n + 1) * cs));
                let chunk = chunk_name(generation, n);
                let read = store.read_op_async(&chunk, ReadOp::new().read(lo - n * cs, hi - lo));
                let (store, oid) = (store.clone(), oid.clone());
                async move {
                    match read.await {
                        Ok(r) => {
                            let part = r.data.unwrap_or_default();
                            if part.len() as u64 == hi - lo {
                                return Ok(part);
                            }
                            let detail = format!("chunk of {} bytes where {} were expected", part.len(), hi - lo);
                            Err(Error::Corrupted { object: chunk, key: None, detail })
                        }
                        Err(StoreError::NotFound { .. }) => Err(missing_chunk(&*store, &oid, &chunk, generation).await),
                        Err(e) => Err(e.into()),
                    }
                }
            })
            .buffered(self.read_in_flight);
        let pieces = futures::stream::iter((!first.is_empty()).then_some(Ok(first))).chain(reads).boxed();
        let whole = start == 0 && end == info.size;
        Ok(Some(BlobStream {
            remaining: end - start,
            crc: whole.then(crc32fast::Hasher::new),
            info,
            pieces,
            done: false,
        }))
    }
}

/// The error for chunk `chunk` of the blob whose first object is `oid` found missing:
/// `NotFound` when the blob is gone or another put's (deleted meanwhile), else `Corrupted`.
async fn missing_chunk(store: &dyn objstore::ObjectStore, oid: &str, chunk: &str, generation: u64) -> Error {
    let ours = format!("{generation:016x}").into_bytes();
    match store.read_op_async(oid, ReadOp::new().xattrs()).await {
        Ok(r) if r.xattrs.as_ref().and_then(|x| x.get(super::xattr::GEN)) == Some(&ours) => Error::Corrupted {
            object: chunk.to_string(),
            key: None,
            detail: format!("chunk object of blob {oid} missing"),
        },
        Ok(_) | Err(StoreError::NotFound { .. }) => {
            Error::NotFound(format!("blob {oid}: deleted or replaced while being read"))
        }
        Err(e) => e.into(),
    }
}

/// A blob (or a range of it) as a stream of pieces, from [`BlobStore::get_stream`].
pub struct BlobStream {
    info: BlobInfo,
    pieces: BoxStream<'static, Result<Vec<u8>>>,
    /// Bytes still to come.
    remaining: u64,
    /// The crc32 so far, when the stream is the whole blob.
    crc: Option<crc32fast::Hasher>,
    /// An error was returned, or the end: nothing more comes.
    done: bool,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream").field("info", &self.info).field("remaining", &self.remaining).finish()
    }
}

impl BlobStream {
    /// What the blob is (as read when the stream was opened).
    pub fn info(&self) -> &BlobInfo {
        &self.info
    }

    /// Bytes still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl Stream for BlobStream {
    type Item = Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let piece = match this.pieces.poll_next_unpin(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(piece))) => piece,
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                return Poll::Ready(Some(Err(e)));
            }
            Poll::Ready(None) => {
                this.done = true;
                if this.remaining == 0 {
                    return Poll::Ready(None);
                }
                let detail = format!("{} bytes missing at the end of the stream", this.remaining);
                let object = super::object_name(&this.info.key).unwrap_or_default();
                return Poll::Ready(Some(Err(Error::Corrupted { object, key: None, detail })));
            }
        };
        this.remaining = this.remaining.saturating_sub(piece.len() as u64);
        if let Some(crc) = this.crc.as_mut() {
            crc.update(&piece);
            if this.remaining == 0 {
                let got = std::mem::take(crc).finalize();
                if got != this.info.crc32 {
                    this.done = true;
                    let detail = format!("blob crc32 {got:08x}, described as {:08x}", this.info.crc32);
                    let object = super::object_name(&this.info.key).unwrap_or_default();
                    return Poll::Ready(Some(Err(Error::Corrupted { object, key: None, detail })));
                }
            }
        }
        Poll::Ready(Some(Ok(piece)))
    }
}
