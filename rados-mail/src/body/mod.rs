//! Mail bodies in RADOS: written in chunks of `chunk_size` bytes, one object per chunk
//! (`mail.<guid>`, `mail.<guid>.0001`, ...), the chunks after the first written
//! concurrently; read back as one stream. Neither direction holds a whole mail in memory.
//!
//! The first object carries the references and the xattrs that describe the body; it is
//! written first and described last, and the index commits a record only after every chunk
//! is written, so a partly written mail is never visible: a crash leaves objects no record
//! points to, which `check` reports.

use std::io::Read;
use std::sync::Arc;

use futures::StreamExt;
use futures::executor::block_on;
use futures::stream::FuturesUnordered;
use objstore::{Error as StoreError, ObjectStore, WriteOp};
use omap_index::keys;
use omap_index::names::{self, Guid, xattr};
use rand::Rng;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::layout::Bodies;

mod read;

pub use read::BodyReader;
pub(crate) use read::{locate, read_range};

/// A body written to RADOS, not yet in any index.
#[derive(Clone)]
pub(crate) struct SavedBody {
    pub guid: Guid,
    pub instance: u64,
    pub psize: u64,
    pub vsize: u64,
    pub hdr_len: u64,
    pub crc32: u32,
    pub received: i64,
    pub saved: i64,
    pub chunk_size: u64,
    /// The plain mail's physical size when the stored bytes are its transform
    /// ([`BodyWriter::set_transformed`]); `vsize` and `hdr_len` are then the plain mail's.
    pub plain_psize: Option<u64>,
}

/// Measures a body while it streams past: sizes, header length, crc32.
#[derive(Default)]
struct BodyMeter {
    psize: u64,
    bare_lf: u64,
    hdr_len: Option<u64>,
    crc: crc32fast::Hasher,
    /// The last two bytes seen, to find line ends and the empty line across chunks.
    last: [u8; 2],
}

impl BodyMeter {
    fn feed(&mut self, chunk: &[u8]) {
        self.crc.update(chunk);
        for (i, &b) in chunk.iter().enumerate() {
            if b == b'\n' {
                if self.last[1] != b'\r' {
                    self.bare_lf += 1;
                }
                // "\n\n" or "\n\r\n" ends the header.
                if self.hdr_len.is_none() && (self.last[1] == b'\n' || (self.last == [b'\n', b'\r'])) {
                    self.hdr_len = Some(self.psize + i as u64 + 1);
                }
            }
            self.last = [self.last[1], b];
        }
        self.psize += chunk.len() as u64;
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Streams `body` into a new body object (and chunk objects), referenced by `mailbox`.
pub(crate) fn save(
    bodies: &Bodies,
    config: &Config,
    mailbox: &Guid,
    body: &mut dyn Read,
    received: Option<i64>,
) -> Result<SavedBody> {
    let mut writer = BodyWriter::new(bodies, config, mailbox, received);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                writer.abort();
                return Err(Error::Input(e.to_string()));
            }
        };
        writer.write(&buf[..n])?;
    }
    writer.finish()
}

/// A body being written, push style: [`BodyWriter::write`] takes pieces of any size; a
/// chunk object goes to RADOS as soon as it is full (the ones after the first
/// concurrently, `write_in_flight` at a time), so nothing is spooled and at most
/// `write_in_flight + 1` chunks are held in memory. [`BodyWriter::finish`] writes the rest
/// and describes the body. Every error removes what was written (the writer is then
/// done); so does [`BodyWriter::abort`].
pub(crate) struct BodyWriter {
    /// The user's namespace of the data pool.
    store: Arc<dyn ObjectStore>,
    /// Where bodies go and how references are kept.
    bodies: Bodies,
    mailbox: Guid,
    guid: Guid,
    instance: u64,
    chunk: usize,
    write_in_flight: usize,
    max_mail_size: u64,
    received: i64,
    saved: i64,
    meter: BodyMeter,
    /// The plain mail, when the bytes written are a mail plugin's transform of it
    /// ([`BodyWriter::set_transformed`]): its sizes and header length are the mail's.
    plain: Option<BodyMeter>,
    /// Bytes not yet written: at most one chunk.
    buf: Vec<u8>,
    /// Objects written (or being written).
    objects: u64,
    in_flight: FuturesUnordered<futures::future::BoxFuture<'static, objstore::Result<u64>>>,
    /// An error happened and what was written is removed: every call fails.
    failed: bool,
}

impl BodyWriter {
    /// A new body for `mailbox` (its first reference), with a fresh GUID.
    pub(crate) fn new(bodies: &Bodies, config: &Config, mailbox: &Guid, received: Option<i64>) -> Self {
        let mut rng = rand::rng();
        let saved = now();
        BodyWriter {
            store: bodies.store().clone(),
            bodies: bodies.clone(),
            mailbox: *mailbox,
            guid: Guid(rng.random()),
            instance: rng.random(),
            chunk: config.chunk_size.max(1),
            write_in_flight: config.write_in_flight.max(1),
            max_mail_size: config.max_mail_size,
            received: received.unwrap_or(saved),
            saved,
            meter: BodyMeter::default(),
            plain: None,
            buf: Vec::new(),
            objects: 0,
            in_flight: FuturesUnordered::new(),
            failed: false,
        }
    }

    /// Bytes taken so far (stored bytes).
    pub(crate) fn len(&self) -> u64 {
        self.meter.psize
    }

    /// The mail's physical size so far: the plain bytes taken when the body is
    /// transformed, else [`BodyWriter::len`].
    pub(crate) fn mail_len(&self) -> u64 {
        self.plain.as_ref().unwrap_or(&self.meter).psize
    }

    /// The mail's virtual size so far (line ends counted as CRLF): of the plain bytes when
    /// the body is transformed.
    pub(crate) fn vsize(&self) -> u64 {
        let m = self.plain.as_ref().unwrap_or(&self.meter);
        m.psize + m.bare_lf
    }

    /// Whether the bytes written are a transform of the mail ([`BodyWriter::set_transformed`]).
    pub(crate) fn is_transformed(&self) -> bool {
        self.plain.is_some()
    }

    /// Declares that the bytes [`BodyWriter::write`] takes are a mail plugin's transform of
    /// the mail (encrypted, compressed), and that the mail itself comes through
    /// [`BodyWriter::write_plain`]: sizes and header length are then measured on those.
    /// Only before the first write.
    pub(crate) fn set_transformed(&mut self) -> Result<()> {
        if self.meter.psize > 0 || self.objects > 0 {
            return Err(Error::InvalidInput("a transformed body is declared before the first write".into()));
        }
        self.plain.get_or_insert_with(BodyMeter::default);
        Ok(())
    }

    /// Takes the next piece of the plain mail of a transformed body (measured only, not
    /// stored). [`Error::TooLarge`] as soon as the mail passes `max_mail_size`.
    pub(crate) fn write_plain(&mut self, data: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidInput("write after a failed write".into()));
        }
        let max = self.max_mail_size;
        let Some(plain) = self.plain.as_mut() else {
            return Err(Error::InvalidInput("plain bytes given for a body that is not transformed".into()));
        };
        if plain.psize + data.len() as u64 > max {
            self.abort();
            return Err(Error::TooLarge(format!("mail larger than {max} bytes")));
        }
        plain.feed(data);
        Ok(())
    }

    /// The body's GUID.
    pub(crate) fn guid(&self) -> Guid {
        self.guid
    }

    /// Sets the received date (it is written when the body is described, at the end).
    pub(crate) fn set_received(&mut self, unix_secs: i64) {
        self.received = unix_secs;
    }

    /// Takes the next piece of the mail. [`Error::TooLarge`] as soon as the mail passes
    /// `max_mail_size`.
    pub(crate) fn write(&mut self, mut data: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidInput("write after a failed write".into()));
        }
        if self.meter.psize + data.len() as u64 > self.max_mail_size {
            self.abort();
            return Err(Error::TooLarge(format!("mail larger than {} bytes", self.max_mail_size)));
        }
        self.meter.feed(data);
        while !data.is_empty() {
            if self.buf.len() == self.chunk {
                // More is coming: the full chunk is not the last one.
                if let Err(e) = self.flush(false) {
                    self.abort_after(&e);
                    return Err(e);
                }
            }
            let take = (self.chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Writes the buffered chunk; `last` when no more bytes will come.
    fn flush(&mut self, last: bool) -> Result<()> {
        if self.objects > 0 && !self.buf.is_empty() {
            while self.in_flight.len() >= self.write_in_flight {
                block_on(self.in_flight.next()).expect("not empty")?;
            }
        }
        match self.next_write(last)? {
            Some((oid, op, true)) => drop(self.store.write_op(&oid, &op)?),
            Some((oid, op, false)) => self.in_flight.push(self.store.write_op_async(&oid, op)),
            None => {}
        }
        Ok(())
    }

    /// The write of the buffered chunk (`last` when no more bytes will come), counted as
    /// written: `(object, op, whether it is the first object)`, or `None` when there is
    /// nothing to write. The first object is written and waited for before any other.
    fn next_write(&mut self, last: bool) -> Result<Option<(String, WriteOp, bool)>> {
        let buf = std::mem::take(&mut self.buf);
        if self.objects == 0 {
            // Created exclusively (a GUID collision fails instead of overwriting), with the
            // mailbox's reference; described now if it is the whole body.
            let op = WriteOp::new().create_exclusive().write_full(buf);
            // The mailbox's reference: an xattr in pool format v2, an omap key in v1.
            let op = if self.bodies.xattr_refs()? {
                op.set_xattr(xattr::reference(&self.mailbox, self.instance), Vec::new())
            } else {
                op.omap_set([(keys::reference(&self.mailbox, self.instance), Vec::new())])
            };
            let mut op = op
                .set_xattr(xattr::VERSION, b"1".to_vec())
                .set_xattr(xattr::GUID, self.guid.to_string().into_bytes())
                .set_xattr(xattr::MAILBOX, self.mailbox.to_string().into_bytes());
            if last {
                op = describe(op, &self.meter, self.plain.as_ref(), self.chunk as u64, 1, self.received, self.saved);
            }
            self.objects = 1;
            Ok(Some((names::mail(&self.guid), op, true)))
        } else if !buf.is_empty() {
            let op = WriteOp::new().create_exclusive().write_full(buf);
            let oid = names::mail_chunk(&self.guid, self.objects);
            self.objects += 1;
            Ok(Some((oid, op, false)))
        } else {
            Ok(None)
        }
    }

    /// The write that describes a body of several objects, once all are written (`None`
    /// for a single object, described by its own write).
    fn describe_op(&self) -> Option<WriteOp> {
        (self.objects > 1).then(|| {
            describe(
                WriteOp::new().assert_exists(),
                &self.meter,
                self.plain.as_ref(),
                self.chunk as u64,
                self.objects,
                self.received,
                self.saved,
            )
        })
    }

    /// The body written, complete: from now on its objects belong to whoever commits it.
    fn saved_body(&mut self) -> SavedBody {
        self.objects = 0;
        let (m, mail) = (&self.meter, self.plain.as_ref().unwrap_or(&self.meter));
        SavedBody {
            guid: self.guid,
            instance: self.instance,
            psize: m.psize,
            vsize: mail.psize + mail.bare_lf,
            hdr_len: mail.hdr_len.unwrap_or(mail.psize),
            plain_psize: self.plain.as_ref().map(|p| p.psize),
            crc32: m.crc.clone().finalize(),
            received: self.received,
            saved: self.saved,
            chunk_size: self.chunk as u64,
        }
    }

    /// [`BodyWriter::write`] without blocking: a full chunk is handed to the cluster, and
    /// while `write_in_flight` chunks are in flight this waits for one of them to end
    /// (backpressure: at most `write_in_flight + 1` chunks are held). The same operations
    /// as [`BodyWriter::write`]. Dropped mid-way, the writer is left as after an
    /// interrupted write: dropping it removes what it wrote.
    pub(crate) async fn write_async(&mut self, mut data: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidInput("write after a failed write".into()));
        }
        if self.meter.psize + data.len() as u64 > self.max_mail_size {
            self.abort_async(None).await;
            return Err(Error::TooLarge(format!("mail larger than {} bytes", self.max_mail_size)));
        }
        self.meter.feed(data);
        while !data.is_empty() {
            if self.buf.len() == self.chunk
                && let Err(e) = self.flush_async(false).await
            {
                self.abort_async(Some(&e)).await;
                return Err(e);
            }
            let take = (self.chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// [`BodyWriter::flush`] without blocking. The first object's write goes through
    /// `in_flight` too (alone there), so that a writer dropped while it is in flight
    /// waits for it before removing what was written.
    async fn flush_async(&mut self, last: bool) -> Result<()> {
        if self.objects > 0 && !self.buf.is_empty() {
            while self.in_flight.len() >= self.write_in_flight {
                self.in_flight.next().await.expect("not empty")?;
            }
        }
        if let Some((oid, op, first)) = self.next_write(last)? {
            self.in_flight.push(self.store.write_op_async(&oid, op));
            if first {
                self.in_flight.next().await.expect("just pushed")?;
            }
        }
        Ok(())
    }

    /// [`BodyWriter::finish`] without blocking: the same operations.
    pub(crate) async fn finish_async(mut self) -> Result<SavedBody> {
        if self.failed {
            return Err(Error::InvalidInput("finish after a failed write".into()));
        }
        let result = async {
            self.flush_async(true).await?;
            while let Some(done) = self.in_flight.next().await {
                done?;
            }
            if let Some(op) = self.describe_op() {
                self.in_flight.push(self.store.write_op_async(&names::mail(&self.guid), op));
                self.in_flight.next().await.expect("just pushed")?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.abort_async(Some(&e)).await;
            return Err(e);
        }
        Ok(self.saved_body())
    }

    /// [`BodyWriter::abort_after`] (with a cause) or [`BodyWriter::abort`] (without),
    /// without blocking: the same operations.
    pub(crate) async fn abort_async(&mut self, cause: Option<&Error>) {
        while self.in_flight.next().await.is_some() {}
        if !matches!(cause, Some(Error::Unavailable(_))) {
            remove_objects_async(self.store.clone(), self.guid, self.objects).await;
        }
        self.objects = 0;
        self.buf = Vec::new();
        self.failed = true;
    }

    /// Writes what is left and describes the body: it is then complete in RADOS, not yet
    /// in any index.
    pub(crate) fn finish(mut self) -> Result<SavedBody> {
        if self.failed {
            return Err(Error::InvalidInput("finish after a failed write".into()));
        }
        let result = (|| {
            self.flush(true)?;
            while let Some(done) = block_on(self.in_flight.next()) {
                done?;
            }
            if let Some(op) = self.describe_op() {
                self.store.write_op(&names::mail(&self.guid), &op)?;
            }
            Ok(())
        })();
        if let Err(e) = result {
            self.abort_after(&e);
            return Err(e);
        }
        // Complete: from now on the objects belong to whoever commits them.
        Ok(self.saved_body())
    }

    /// Gives up after the write that failed with `cause`: as [`BodyWriter::abort`], but
    /// when the cluster did not answer ([`Error::Unavailable`]) the objects written so far
    /// are left in place instead of removed. Removing them would wait a second timeout
    /// for a cluster that just timed out, and a refusal must come within one (issue 13);
    /// they are unreferenced, and `repair` removes such orphans after its grace.
    fn abort_after(&mut self, cause: &Error) {
        if matches!(cause, Error::Unavailable(_)) {
            while block_on(self.in_flight.next()).is_some() {}
            self.objects = 0;
            self.buf = Vec::new();
            self.failed = true;
        } else {
            self.abort();
        }
    }

    /// Removes what was written (after letting the writes in flight end).
    pub(crate) fn abort(&mut self) {
        while block_on(self.in_flight.next()).is_some() {}
        remove_objects(self.store.as_ref(), &self.guid, self.objects);
        self.objects = 0;
        self.buf = Vec::new();
        self.failed = true;
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        // Neither finished nor aborted: nothing may be left behind.
        if !self.failed && (self.objects > 0 || !self.in_flight.is_empty()) {
            self.abort();
        }
    }
}

/// Adds the xattrs that describe a complete body: `m` measured the stored bytes, `plain`
/// the plain mail of a transformed body (its sizes and header length are the mail's).
fn describe(
    op: WriteOp,
    m: &BodyMeter,
    plain: Option<&BodyMeter>,
    chunk: u64,
    objects: u64,
    received: i64,
    saved: i64,
) -> WriteOp {
    let num = |v: u64| v.to_string().into_bytes();
    let mail = plain.unwrap_or(m);
    let op = op
        .set_xattr(xattr::RECEIVED, received.to_string().into_bytes())
        .set_xattr(xattr::SAVED, saved.to_string().into_bytes())
        .set_xattr(xattr::PSIZE, num(m.psize))
        .set_xattr(xattr::VSIZE, num(mail.psize + mail.bare_lf))
        .set_xattr(xattr::HDR_LEN, num(mail.hdr_len.unwrap_or(mail.psize)))
        .set_xattr(xattr::CRC32, format!("{:08x}", m.crc.clone().finalize()).into_bytes())
        .set_xattr(xattr::CHUNK_SIZE, num(chunk))
        .set_xattr(xattr::CHUNKS, num(objects));
    match plain {
        Some(p) => op.set_xattr(xattr::PLAIN_PSIZE, num(p.psize)),
        None => op,
    }
}

/// How many objects a body of `psize` bytes spans.
pub(crate) fn object_count(psize: u64, chunk_size: u64) -> u64 {
    if chunk_size == 0 { 1 } else { psize.div_ceil(chunk_size).max(1) }
}

/// Removes the objects of a body (best effort: what is left is an orphan for `check`).
pub(crate) fn remove_objects(store: &dyn ObjectStore, guid: &Guid, objects: u64) {
    for n in (0..objects).rev() {
        match store.remove(&names::mail_part(guid, n)) {
            Ok(()) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(mail = %guid, "removing body object {n}: {e}"),
        }
    }
}

/// [`remove_objects`] without blocking: the same operations, one after the other.
pub(crate) async fn remove_objects_async(store: Arc<dyn ObjectStore>, guid: Guid, objects: u64) {
    for n in (0..objects).rev() {
        match store.write_op_async(&names::mail_part(&guid, n), WriteOp::new().remove()).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => {}
            Err(e) => tracing::warn!(mail = %guid, "removing body object {n}: {e}"),
        }
    }
}
