//! Reading bodies: ranges, and [`BodyReader`], the stream of a whole body with its crc32
//! checked at the end.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use omap_index::names::{self, Guid};
use omap_index::records::MailRecord;

use crate::error::{Error, Result};
use crate::layout::Bodies;

/// Where byte `offset` of a body lives: (object index, offset in it, bytes left in it).
pub(crate) fn locate(offset: u64, chunk_size: u64) -> (u64, u64, u64) {
    match (offset.checked_div(chunk_size), offset.checked_rem(chunk_size)) {
        (Some(n), Some(within)) => (n, within, chunk_size - within),
        _ => (0, offset, u64::MAX - offset), // chunk_size 0: one object
    }
}

/// Reads up to `len` bytes at `offset` of a body (one RADOS read, within one object; more
/// only while a migration may have left it in the index pool).
fn read_some(bodies: &Bodies, guid: &Guid, rec: &MailRecord, offset: u64, len: u64) -> Result<Vec<u8>> {
    let (n, within, left) = locate(offset, rec.chunk_size);
    let oid = names::mail_part(guid, n);
    let part = bodies.with_fallback(|store| store.read(&oid, within, len.min(left)))?;
    if part.is_empty() && len > 0 {
        return Err(Error::Corrupted { object: oid, key: None, detail: "body shorter than its record".into() });
    }
    Ok(part)
}

/// `len` bytes of a body from `offset` (fewer at its end), read `read_chunk` at a time.
pub(crate) fn read_range(
    bodies: &Bodies,
    guid: &Guid,
    rec: &MailRecord,
    offset: u64,
    len: u64,
    read_chunk: u64,
) -> Result<Vec<u8>> {
    let len = len.min(rec.psize.saturating_sub(offset));
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        let part = read_some(bodies, guid, rec, offset + out.len() as u64, read_chunk.min(len - out.len() as u64))?;
        out.extend_from_slice(&part);
    }
    Ok(out)
}

/// Streams a whole body from RADOS (or from memory, when it came from the cache), with
/// [`Seek`] at O(1) cost per seek.
///
/// # Verification
///
/// The crc32 of the record is checked when every byte of the body has been fetched in
/// order from byte 0: a read that reaches the end that way fails with
/// [`Error::Corrupted`] (wrapped in an [`std::io::Error`]) if it does not match, before the
/// last bytes are handed out. Bytes fetched after a seek are not checked unless the
/// reading meanwhile came back to where the in-order part ended and went on from there;
/// so partial reads after seeks never report damage they cannot know of, and a reader
/// that seeks may get to the end without any check. A cached body was checked when it
/// was read from RADOS.
///
/// # Seeking
///
/// A seek within the bytes fetched last costs nothing; anywhere else it only moves the
/// position, and the next read fetches from there (one RADOS read of up to `read_chunk`
/// bytes), without re-reading anything before it. Positions past the end are allowed;
/// reads there return 0 bytes.
pub struct BodyReader {
    source: Source,
    /// Body offset of the next byte to fetch from the source (the end of `buf`).
    pos: u64,
    len: u64,
    /// The bytes fetched last: body bytes `pos - buf.len() .. pos` (Rados source only).
    buf: Vec<u8>,
    buf_pos: usize,
    crc: crc32fast::Hasher,
    /// Bytes `0 .. hashed` went through `crc` in order.
    hashed: u64,
    /// Set once the whole body was hashed (and checked).
    checked: bool,
    expected_crc: u32,
}

enum Source {
    Rados { bodies: Box<Bodies>, guid: Guid, rec: MailRecord, read_chunk: u64 },
    Memory(Arc<[u8]>),
}

impl BodyReader {
    pub(crate) fn from_rados(bodies: Bodies, guid: Guid, rec: MailRecord, read_chunk: u64) -> BodyReader {
        let (len, expected_crc) = (rec.psize, rec.crc32);
        let source = Source::Rados { bodies: Box::new(bodies), guid, rec, read_chunk: read_chunk.max(1) };
        BodyReader::new(source, len, expected_crc)
    }

    pub(crate) fn from_memory(body: Arc<[u8]>, crc32: u32) -> BodyReader {
        let len = body.len() as u64;
        BodyReader::new(Source::Memory(body), len, crc32)
    }

    fn new(source: Source, len: u64, expected_crc: u32) -> BodyReader {
        BodyReader {
            source,
            pos: 0,
            len,
            buf: Vec::new(),
            buf_pos: 0,
            crc: crc32fast::Hasher::new(),
            hashed: 0,
            checked: false,
            expected_crc,
        }
    }

    /// Total length of the body.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The offset of the next byte [`Read::read`] returns.
    pub fn position(&self) -> u64 {
        self.pos - (self.buf.len() - self.buf_pos) as u64
    }

    /// Hashes `data`, fetched at body offset `at`, if it continues the in-order part; at
    /// the end of the body, checks the crc32.
    fn account(&mut self, at: u64, data: &[u8]) -> Result<()> {
        if self.checked || at != self.hashed || data.is_empty() {
            return Ok(());
        }
        self.crc.update(data);
        self.hashed += data.len() as u64;
        if self.hashed < self.len {
            return Ok(());
        }
        self.checked = true;
        let got = std::mem::take(&mut self.crc).finalize();
        if got == self.expected_crc {
            return Ok(());
        }
        let object = match &self.source {
            Source::Rados { guid, .. } => names::mail(guid),
            Source::Memory(_) => "(cached body)".into(),
        };
        Err(Error::Corrupted {
            object,
            key: None,
            detail: format!("body crc32 {got:08x}, record says {:08x}", self.expected_crc),
        })
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf_pos == self.buf.len() {
            if self.pos >= self.len || out.is_empty() {
                return Ok(0);
            }
            let at = self.pos;
            match &self.source {
                Source::Memory(bytes) => {
                    // Straight from the cached bytes: nothing to buffer.
                    let bytes = bytes.clone();
                    let n = out.len().min((self.len - at) as usize);
                    let data = &bytes[at as usize..at as usize + n];
                    self.pos += n as u64;
                    self.account(at, data).map_err(std::io::Error::other)?;
                    out[..n].copy_from_slice(data);
                    return Ok(n);
                }
                Source::Rados { bodies, guid, rec, read_chunk } => {
                    let want = (*read_chunk).min(self.len - at);
                    let data = read_some(bodies, guid, rec, at, want).map_err(std::io::Error::other)?;
                    self.pos += data.len() as u64;
                    self.buf = data;
                    self.buf_pos = 0;
                }
            }
            let data = std::mem::take(&mut self.buf);
            // On a mismatch the bytes just fetched are not handed out.
            self.account(at, &data).map_err(std::io::Error::other)?;
            self.buf = data;
        }
        let n = out.len().min(self.buf.len() - self.buf_pos);
        out[..n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
        self.buf_pos += n;
        Ok(n)
    }
}

impl Seek for BodyReader {
    /// Moves the position in O(1): within the bytes fetched last nothing is read;
    /// elsewhere the next read starts at the new position. Seeking before byte 0 fails
    /// with [`std::io::ErrorKind::InvalidInput`].
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.position().checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start of the body"));
        };
        let buf_start = self.pos - self.buf.len() as u64;
        if (buf_start..=self.pos).contains(&target) {
            self.buf_pos = (target - buf_start) as usize;
        } else {
            self.buf.clear();
            self.buf_pos = 0;
            self.pos = target;
        }
        Ok(target)
    }
}
