//! References from index records to body objects, on a body's first object (see
//! `docs/FORMAT.md`): xattrs `rm.ref.<mailbox>.<instance>` in pool format v2, omap
//! `ref/<mailbox>/<instance>` in v1. Taken before a copy commits, dropped after an expunge
//! commits; many at once, a bounded number in flight, so that COPY, MOVE and EXPUNGE of N
//! mails cost N parallel round trips instead of N sequential ones. A body carries at most
//! [`crate::Config::max_body_references`] references: a copy past it stores a new body
//! (`crate::duplicate`).
//!
//! Readers (dropping, `check`, `repair`) count both kinds when bodies live in the index
//! pool, so that v1 and v2 processes can share a pool during a migration: a body goes only
//! when neither kind holds another reference. On a separate data pool (which may be
//! erasure-coded, without omap) only xattrs exist.

use std::sync::Arc;

use futures::StreamExt;
use futures::executor::block_on;
use futures::future::BoxFuture;
use objstore::{Error as StoreError, ObjectStore, ReadOp, WriteOp};
use omap_index::keys;
use omap_index::names::{self, Guid, xattr};
use omap_index::records::MailRecord;

use crate::body;
use crate::error::{Error, Result};
use crate::layout::Bodies;
use crate::retry::RetryPolicy;

/// Runs `work`, at most `in_flight` at a time; results in the order given.
pub(crate) fn run_bounded<T: Send + 'static>(work: Vec<BoxFuture<'static, T>>, in_flight: usize) -> Vec<T> {
    block_on(futures::stream::iter(work).buffered(in_flight.max(1)).collect())
}

/// The body GUID a record points to.
pub(crate) fn body_guid(object: &str, rec: &MailRecord) -> Result<Guid> {
    Guid::from_slice(&rec.mail_guid).map_err(|e| Error::corrupted(object, &keys::record(rec.uid), e))
}

/// What [`add_references`] did for one body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Referenced {
    /// The reference was added.
    Added,
    /// The body does not exist.
    Missing,
    /// The body carries `max` references already: none was added.
    Full,
}

/// Adds a reference of `mailbox` to each body, `(body, instance)`, unless the body carries
/// `max` references already ([`crate::Config::max_body_references`]): per body one read of
/// its references (xattrs, and in the index pool its first `max` omap keys), then one write
/// (`assert_exists` + `setxattr`, or `omap_set` in a v1 pool). Copies of one body running
/// at the same moment may each find room for the last reference: the bound is passed by at
/// most their number.
pub(crate) fn add_references(
    bodies: &Bodies,
    mailbox: &Guid,
    list: &[(Guid, u64)],
    max: usize,
    in_flight: usize,
) -> Vec<Result<Referenced>> {
    let ready = |e: &Error| list.iter().map(|_| Err(e.clone())).collect();
    let xattr_refs = match bodies.xattr_refs() {
        Ok(x) => x,
        Err(e) => return ready(&e),
    };
    let places = match bodies.places() {
        Ok(p) => p,
        Err(e) => return ready(&e),
    };
    // Omap references exist only in the index pool (a separate data pool may have no omap).
    let omap = !bodies.separate();
    let work = list
        .iter()
        .map(|(guid, instance)| {
            let op = if xattr_refs {
                WriteOp::new().assert_exists().set_xattr(xattr::reference(mailbox, *instance), Vec::new())
            } else {
                WriteOp::new().assert_exists().omap_set([(keys::reference(mailbox, *instance), Vec::new())])
            };
            let oid = names::mail(guid);
            // Sent when first polled (run_bounded keeps `in_flight` going); the other
            // places (during a migration) only when needed.
            let read = places.read_async(&oid, read_references(omap, max));
            let places = places.clone();
            Box::pin(async move {
                let refs = match read.await {
                    Ok(r) => references_of(r),
                    Err(StoreError::NotFound { .. }) => return Ok(Referenced::Missing),
                    Err(e) => return Err(e.into()),
                };
                if refs.xattrs.len() + refs.omap.len() + usize::from(refs.more_omap) >= max {
                    return Ok(Referenced::Full);
                }
                match places.write_async(&oid, op).await {
                    Ok(_) => Ok(Referenced::Added),
                    Err(StoreError::NotFound { .. }) => Ok(Referenced::Missing),
                    Err(e) => Err(e.into()),
                }
            }) as BoxFuture<'static, Result<Referenced>>
        })
        .collect();
    run_bounded(work, in_flight)
}

/// Drops the references of `records` (of `mailbox`) on their bodies, deleting each body
/// that no reference is left on; idempotent. Results in the order given.
pub(crate) fn drop_references(
    bodies: &Bodies,
    mailbox: &Guid,
    records: &[MailRecord],
    in_flight: usize,
    retry: &RetryPolicy,
) -> Vec<Result<()>> {
    let places = match bodies.places() {
        Ok(p) => p,
        Err(e) => return records.iter().map(|_| Err(e.clone())).collect(),
    };
    let work = records
        .iter()
        .map(|rec| {
            let (order, mailbox, rec, retry) = (places.order(), *mailbox, rec.clone(), retry.clone());
            let index_pool = bodies.index_store().clone();
            Box::pin(async move {
                for store in order {
                    // Omap references exist only in the index pool.
                    let omap = Arc::ptr_eq(&store, &index_pool);
                    if drop_one(store, omap, mailbox, rec.clone(), retry.clone()).await? {
                        return Ok(());
                    }
                }
                Ok(())
            }) as BoxFuture<'static, Result<()>>
        })
        .collect();
    run_bounded(work, in_flight)
}

/// The references on a body's first object, as read with [`read_references`]: the
/// xattr ones, and (in the index pool) the first omap ones.
#[derive(Debug, Default)]
pub(crate) struct References {
    /// `(mailbox, instance)` of every `rm.ref.` xattr.
    pub xattrs: Vec<(Guid, u64)>,
    /// The first omap `ref/` keys (at most two are read when dropping).
    pub omap: Vec<String>,
    /// More omap `ref/` keys follow those read.
    pub more_omap: bool,
    /// The object's version when read.
    pub version: u64,
}

/// The read of a body's references: all xattrs, and the first `omap_max` omap `ref/` keys
/// when `omap` (never on a separate data pool: it may have no omap).
pub(crate) fn read_references(omap: bool, omap_max: usize) -> ReadOp {
    let op = ReadOp::new().xattrs();
    if omap { op.omap_range("", keys::REFERENCE, omap_max) } else { op }
}

/// Decodes what [`read_references`] returned.
pub(crate) fn references_of(read: objstore::ReadResult) -> References {
    let xattrs = read.xattrs.unwrap_or_default().keys().filter_map(|name| xattr::parse_reference(name)).collect();
    let page = read.omap_page.unwrap_or_default();
    References {
        xattrs,
        omap: page.entries.into_iter().map(|(k, _)| k).collect(),
        more_omap: page.more,
        version: read.version,
    }
}

/// Drops one record's reference on its body in `store`, deleting the body when no
/// reference is left; `false` when the body is not in `store`. Two round trips in the
/// common case: read the references (xattrs, and the first omap keys when `omap`), then
/// either remove the body (ours was the only one) or remove ours, both guarded by the
/// version read, so a concurrent copy that adds a reference, or a concurrent drop, makes it
/// read again.
async fn drop_one(
    store: Arc<dyn ObjectStore>,
    omap: bool,
    mailbox: Guid,
    rec: MailRecord,
    retry: RetryPolicy,
) -> Result<bool> {
    let guid = body_guid("(record)", &rec)?;
    let oid = names::mail(&guid);
    let (ours_key, ours_xattr) = (keys::reference(&mailbox, rec.instance), xattr::reference(&mailbox, rec.instance));
    let mut attempts = retry.start();
    loop {
        let refs = match store.read_op_async(&oid, read_references(omap, 2)).await {
            Ok(r) => references_of(r),
            Err(StoreError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let ours = (mailbox, rec.instance);
        let others =
            refs.omap.iter().any(|k| *k != ours_key) || refs.more_omap || refs.xattrs.iter().any(|r| *r != ours);
        let has_ours = refs.omap.contains(&ours_key) || refs.xattrs.contains(&ours);
        let op = if others {
            if !has_ours && !refs.more_omap {
                return Ok(true); // dropped before
            }
            // Ours may be past the two keys read (a body with three omap references or
            // more): removing a key or xattr that is not there changes nothing.
            let mut op = WriteOp::new().assert_version(refs.version);
            if refs.xattrs.contains(&ours) {
                op = op.rm_xattr(ours_xattr.clone());
            }
            if omap && !refs.xattrs.contains(&ours) {
                op = op.omap_rm_keys([ours_key.clone()]);
            }
            op
        } else {
            WriteOp::new().assert_version(refs.version).remove()
        };
        match store.write_op_async(&oid, op).await {
            Ok(_) if others => return Ok(true),
            Ok(_) => {
                // The first object is gone: nobody can reach the other chunks any more.
                for n in 1..body::object_count(rec.psize, rec.chunk_size) {
                    match store.write_op_async(&names::mail_chunk(&guid, n), WriteOp::new().remove()).await {
                        Ok(_) | Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                return Ok(true);
            }
            Err(StoreError::NotFound { .. }) => return Ok(true),
            Err(StoreError::Conflict { .. }) => {
                attempts.lost(|| format!("dropping reference {ours_xattr} on {oid}"))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
