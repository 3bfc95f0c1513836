//! Native async fetch: records and body ranges read with the object store's async
//! operations, bodies streamed with a bounded read-ahead window.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use futures::stream::{FuturesOrdered, StreamExt};
use objstore::{BoxFuture, ReadOp};
use omap_index::names::{self, Guid};
use omap_index::records::MailRecord;
use tokio::io::{AsyncRead, ReadBuf};

use super::AsyncMailbox;
use crate::body::locate;
use crate::error::{Error, Result};
use crate::layout::Places;
use crate::mailbox::BodySource;

/// One read of the window: body offset, bytes asked, and the outcome.
type Piece = BoxFuture<'static, (u64, u64, objstore::Result<objstore::ReadResult>)>;

/// A body (or a byte range of it) streamed from RADOS as a [`Stream`] of pieces, and as an
/// [`AsyncRead`], from [`AsyncMailbox::body_stream`] and [`AsyncMailbox::range_stream`].
///
/// Reads of `read_chunk` bytes (within one chunk object each) are kept in flight ahead of
/// the consumer, at most `read_in_flight` at a time ([`crate::Config`]): a slow consumer
/// holds at most that many pieces in memory, and nothing more is read until it takes
/// them (backpressure). Pieces come in body order.
///
/// A whole body is verified against its record's crc32 when its last byte arrives: on a
/// mismatch the last piece is not handed out and the stream ends with
/// [`Error::Corrupted`]; a body shorter than its record is [`Error::Corrupted`] too, never
/// data silently cut short. A range is not verified (the crc covers the whole body). After
/// an error the stream ends. A body served from the process's cache was verified when it
/// was cached.
pub struct BodyStream {
    source: StreamSource,
    /// The next body offset to ask for, and the end of the range.
    next: u64,
    end: u64,
    /// The body offset of the next byte handed out.
    out: u64,
    /// The crc32 so far and the one expected, when streaming a whole body.
    crc: Option<(crc32fast::Hasher, u32)>,
    object: String,
    done: bool,
    /// A piece taken by [`AsyncRead`], read out up to `held_pos`.
    held: Vec<u8>,
    held_pos: usize,
}

enum StreamSource {
    Rados {
        places: Places,
        guid: Guid,
        chunk_size: u64,
        read_chunk: u64,
        window: usize,
        in_flight: FuturesOrdered<Piece>,
    },
    Cached {
        bytes: Arc<[u8]>,
        piece: u64,
    },
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("object", &self.object)
            .field("next", &self.next)
            .field("end", &self.end)
            .finish()
    }
}

impl BodyStream {
    fn new(rec: &MailRecord, source: BodySource, start: u64, end: u64, read_chunk: u64, window: usize) -> BodyStream {
        let (end, read_chunk) = (end.min(rec.psize), read_chunk.max(1));
        let start = start.min(end);
        let whole = start == 0 && end == rec.psize;
        let (source, object) = match source {
            BodySource::Cached(bytes) => {
                (StreamSource::Cached { bytes, piece: read_chunk }, "(cached body)".to_string())
            }
            BodySource::Rados(places, guid) => (
                StreamSource::Rados {
                    places,
                    guid,
                    chunk_size: rec.chunk_size,
                    read_chunk,
                    window: window.max(1),
                    in_flight: FuturesOrdered::new(),
                },
                names::mail(&guid),
            ),
        };
        let crc =
            (whole && matches!(source, StreamSource::Rados { .. })).then(|| (crc32fast::Hasher::new(), rec.crc32));
        BodyStream { source, next: start, end, out: start, crc, object, done: false, held: Vec::new(), held_pos: 0 }
    }

    /// Bytes not handed out yet (of the body or range).
    pub fn remaining(&self) -> u64 {
        self.end - self.out + (self.held.len() - self.held_pos) as u64
    }

    /// Reads in flight right now (at most the window).
    pub fn in_flight(&self) -> usize {
        match &self.source {
            StreamSource::Rados { in_flight, .. } => in_flight.len(),
            StreamSource::Cached { .. } => 0,
        }
    }

    /// Asks for pieces until the window is full or the range is asked for.
    fn fill(&mut self) {
        let StreamSource::Rados { places, guid, chunk_size, read_chunk, window, in_flight } = &mut self.source else {
            return;
        };
        while in_flight.len() < *window && self.next < self.end {
            let (n, within, left) = locate(self.next, *chunk_size);
            let want = (*read_chunk).min(self.end - self.next).min(left);
            let read = places.read_async(&names::mail_part(guid, n), ReadOp::new().read(within, want));
            let at = self.next;
            in_flight.push_back(Box::pin(async move { (at, want, read.await) }));
            self.next += want;
        }
    }

    fn fail(&mut self, e: Error) -> Poll<Option<Result<Vec<u8>>>> {
        self.done = true;
        if let StreamSource::Rados { in_flight, .. } = &mut self.source {
            *in_flight = FuturesOrdered::new();
        }
        Poll::Ready(Some(Err(e)))
    }

    /// Checks a piece that arrived (length, and the crc32 at the end of a whole body).
    fn arrived(&mut self, at: u64, want: u64, data: Vec<u8>) -> Poll<Option<Result<Vec<u8>>>> {
        if (data.len() as u64) < want {
            let detail = format!("body shorter than its record: {} bytes at {at}, {want} expected", data.len());
            return self.fail(Error::Corrupted { object: self.object.clone(), key: None, detail });
        }
        if let Some((crc, expected)) = &mut self.crc {
            crc.update(&data);
            let expected = *expected;
            if at + want == self.end {
                let got = std::mem::take(crc).finalize();
                if got != expected {
                    let detail = format!("body crc32 {got:08x}, record says {expected:08x}");
                    return self.fail(Error::Corrupted { object: self.object.clone(), key: None, detail });
                }
            }
        }
        self.out = at + want;
        Poll::Ready(Some(Ok(data)))
    }
}

impl Stream for BodyStream {
    type Item = Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let StreamSource::Cached { bytes, piece } = &this.source {
            if this.next >= this.end {
                this.done = true;
                return Poll::Ready(None);
            }
            let n = (*piece).min(this.end - this.next);
            let out = bytes[this.next as usize..(this.next + n) as usize].to_vec();
            this.next += n;
            this.out = this.next;
            return Poll::Ready(Some(Ok(out)));
        }
        this.fill();
        let StreamSource::Rados { in_flight, .. } = &mut this.source else { unreachable!("cached handled above") };
        match in_flight.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some((at, want, result))) => {
                // The next read goes out now, before the consumer takes this piece.
                this.fill();
                match result {
                    Ok(r) => this.arrived(at, want, r.data.unwrap_or_default()),
                    Err(e) => this.fail(e.into()),
                }
            }
        }
    }
}

impl AsyncRead for BodyStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        while self.held_pos == self.held.len() {
            match self.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(std::io::Error::other(e))),
                Poll::Ready(Some(Ok(piece))) => (self.held, self.held_pos) = (piece, 0),
            }
        }
        let this = &mut *self;
        let n = buf.remaining().min(this.held.len() - this.held_pos);
        buf.put_slice(&this.held[this.held_pos..this.held_pos + n]);
        this.held_pos += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncMailbox {
    /// [`crate::Mailbox::record`], reading the record's block (if not cached) with an async
    /// read.
    pub async fn read_record(&self, uid: u32) -> Result<Option<MailRecord>> {
        self.0.record_async(uid).await
    }

    /// Streams the whole body of `uid`, crc32-verified at its end (see [`BodyStream`]).
    /// Small bodies the process's cache holds come from memory. [`Error::NotFound`] when
    /// there is no such mail.
    pub async fn body_stream(&self, uid: u32) -> Result<BodyStream> {
        self.range_stream(uid, 0, u64::MAX).await
    }

    /// Streams `len` bytes of the body of `uid` from `offset` (fewer at its end); not
    /// verified unless it is the whole body (see [`BodyStream`]).
    pub async fn range_stream(&self, uid: u32, offset: u64, len: u64) -> Result<BodyStream> {
        let (rec, source) = self.0.body_source(uid).await?;
        let c = self.0.config();
        let end = offset.saturating_add(len);
        Ok(BodyStream::new(&rec, source, offset, end, c.read_chunk as u64, c.read_in_flight))
    }

    /// A whole body, read into memory (crc32-verified; use [`AsyncMailbox::body_stream`]
    /// for large mails). A small body read from RADOS is kept in the process's body cache,
    /// as the blocking fetch keeps it.
    pub async fn body(&self, uid: u32) -> Result<Vec<u8>> {
        let (rec, source) = self.0.body_source(uid).await?;
        let from_rados = matches!(source, BodySource::Rados(..));
        let c = self.0.config();
        let body = collect(BodyStream::new(&rec, source, 0, u64::MAX, c.read_chunk as u64, c.read_in_flight)).await?;
        if from_rados {
            self.0.cache_body(&rec, &body);
        }
        Ok(body)
    }

    /// `len` bytes of a body from `offset` (fewer at its end), read with async reads,
    /// `read_in_flight` at a time.
    pub async fn read_range(&self, uid: u32, offset: u64, len: u64) -> Result<Vec<u8>> {
        collect(self.range_stream(uid, offset, len).await?).await
    }

    /// [`crate::Mailbox::header`], read asynchronously.
    pub async fn header(&self, uid: u32) -> Result<Vec<u8>> {
        let rec = self
            .read_record(uid)
            .await?
            .ok_or_else(|| Error::NotFound(format!("UID {uid} in {}", self.0.info().name)))?;
        if rec.is_transformed() {
            return Err(Error::InvalidInput(format!(
                "UID {uid} is stored transformed by a mail plugin (mail_crypt, zlib): its header is not a byte range of the body"
            )));
        }
        self.read_range(uid, 0, rec.hdr_len).await
    }
}

async fn collect(mut stream: BodyStream) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(stream.remaining().min(1 << 24) as usize);
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}
