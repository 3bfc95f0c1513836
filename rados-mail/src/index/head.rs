//! Reading a mailbox's head object (header, marks, WAL tail), blocking and async: both
//! make the same reads ([`HeadRead`]) and decode them the same way; the blocking read also
//! rebuilds a damaged head.

use std::sync::Arc;

use objstore::{Error as StoreError, OMAP_PAGE_MAX, ObjectStore, ReadOp, ReadResult};
use omap_index::keys;
use omap_index::records::{MailboxHeader, WalEntry};

use super::{Head, decode, first_recent_value, hex_value};
use crate::damage;
use crate::error::{Error, Result};

/// Reads the head object: header, trim mark, first recent UID and the whole WAL tail.
///
/// A head whose header, marks or WAL entries are damaged is rebuilt from what is intact
/// (`repair::head`, reported loudly) and read again: damage there must not lock everyone
/// out of the mailbox.
pub(crate) fn read_head(store: &dyn ObjectStore, oid: &str) -> Result<Head> {
    match read_head_once(store, oid) {
        Err(e) if crate::repair::head::is_head_damage(&e, oid) => {
            let Some(guid) = crate::repair::head::head_guid(oid) else { return Err(e) };
            damage::report(&e, "a mailbox head; rebuilding it");
            match crate::repair::head::rebuild(store, &guid, false) {
                Ok(Some(done)) => tracing::error!("rebuilt mailbox head {oid}: {done}"),
                Ok(None) => {}
                Err(e2) => {
                    tracing::error!("rebuilding mailbox head {oid} failed: {e2}");
                    return Err(e);
                }
            }
            read_head_once(store, oid)
        }
        other => other,
    }
}

/// [`read_head`] with the object store's async reads, except that a damaged head is
/// returned as the error it is (rebuilding it takes several writes: the caller leaves that
/// to [`read_head`], see [`crate::repair::head::is_head_damage`]).
pub(crate) async fn read_head_async(store: Arc<dyn ObjectStore>, oid: &str) -> Result<Head> {
    'again: loop {
        let mut read = HeadRead::first(oid, store.read_op_async(oid, HeadRead::op()).await?)?;
        while let Some(op) = read.next_op() {
            match store.read_op_async(oid, op).await {
                Ok(r) => read.add_page(r),
                // Changed between pages: read it all again.
                Err(StoreError::Conflict { .. }) => continue 'again,
                Err(e) => return Err(e.into()),
            }
        }
        return read.finish();
    }
}

fn read_head_once(store: &dyn ObjectStore, oid: &str) -> Result<Head> {
    let mut read = HeadRead::first(oid, store.read_op(oid, &HeadRead::op())?)?;
    while let Some(op) = read.next_op() {
        match store.read_op(oid, &op) {
            Ok(r) => read.add_page(r),
            // Changed between pages: read it all again.
            Err(StoreError::Conflict { .. }) => return read_head_once(store, oid),
            Err(e) => return Err(e.into()),
        }
    }
    read.finish()
}

/// A read of a head object in progress: the first read's values, the WAL entries so far.
struct HeadRead {
    oid: String,
    version: u64,
    hdr: MailboxHeader,
    hdr_bytes: Vec<u8>,
    trim: u64,
    first_recent: u32,
    raw: Vec<(String, Vec<u8>)>,
    more: bool,
}

impl HeadRead {
    /// The first read: the marks and the first page of the WAL.
    fn op() -> ReadOp {
        ReadOp::new().omap_get([keys::HDR, keys::TRIM, keys::RECENT]).omap_range("", keys::WAL, OMAP_PAGE_MAX)
    }

    /// Decodes the first read's marks.
    fn first(oid: &str, first: ReadResult) -> Result<HeadRead> {
        let vals = first.omap.unwrap_or_default();
        let hdr_bytes = vals.get(keys::HDR).cloned().ok_or_else(|| Error::Corrupted {
            object: oid.into(),
            key: Some(keys::HDR.into()),
            detail: "missing".into(),
        })?;
        let hdr: MailboxHeader = decode(oid, keys::HDR, &hdr_bytes)?;
        let trim = hex_value(oid, keys::TRIM, vals.get(keys::TRIM))?;
        let first_recent = first_recent_value(oid, vals.get(keys::RECENT))?;
        let page = first.omap_page.unwrap_or_default();
        Ok(HeadRead {
            oid: oid.to_string(),
            version: first.version,
            hdr,
            hdr_bytes,
            trim,
            first_recent,
            raw: page.entries,
            more: page.more,
        })
    }

    /// The read of the next page of the WAL (guarded by the first read's version), or
    /// `None` when the whole WAL is read.
    fn next_op(&self) -> Option<ReadOp> {
        let after = self.raw.last().map(|(k, _)| k.clone()).unwrap_or_default();
        self.more.then(|| ReadOp::new().assert_version(self.version).omap_range(after, keys::WAL, OMAP_PAGE_MAX))
    }

    fn add_page(&mut self, r: ReadResult) {
        let mut page = r.omap_page.unwrap_or_default();
        self.more = page.more;
        self.raw.append(&mut page.entries);
    }

    fn finish(self) -> Result<Head> {
        let oid = &self.oid;
        let wal = self.raw.iter().map(|(k, v)| decode::<WalEntry>(oid, k, v)).collect::<Result<Vec<_>>>()?;
        Ok(Head { hdr: self.hdr, hdr_bytes: self.hdr_bytes, trim: self.trim, wal, first_recent: self.first_recent })
    }
}
