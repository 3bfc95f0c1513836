//! References from index records to body objects (omap `ref/<mailbox>/<instance>` on a
//! body's first object, see `docs/FORMAT.md`): taken before a copy commits, dropped after
//! an expunge commits; many at once, a bounded number in flight, so that COPY, MOVE and
//! EXPUNGE of N mails cost N parallel round trips instead of N sequential ones.

use std::sync::Arc;

use futures::StreamExt;
use futures::executor::block_on;
use futures::future::BoxFuture;
use objstore::{Error as StoreError, ObjectStore, ReadOp, WriteOp};
use omap_index::keys;
use omap_index::names::{self, Guid};
use omap_index::records::MailRecord;

use crate::body;
use crate::error::{Error, Result};
use crate::retry::RetryPolicy;

/// Runs `work`, at most `in_flight` at a time; results in the order given.
pub(crate) fn run_bounded<T: Send + 'static>(work: Vec<BoxFuture<'static, T>>, in_flight: usize) -> Vec<T> {
    block_on(futures::stream::iter(work).buffered(in_flight.max(1)).collect())
}

/// The body GUID a record points to.
pub(crate) fn body_guid(object: &str, rec: &MailRecord) -> Result<Guid> {
    Guid::from_slice(&rec.mail_guid).map_err(|e| Error::corrupted(object, &keys::record(rec.uid), e))
}

/// Adds a reference of `mailbox` to each body, `(body, instance)`: one guarded write each
/// (`assert_exists` + `omap_set`). Per body: `Ok(true)` added, `Ok(false)` the body does not
/// exist.
pub(crate) fn add_references(
    store: &Arc<dyn ObjectStore>,
    mailbox: &Guid,
    bodies: &[(Guid, u64)],
    in_flight: usize,
) -> Vec<Result<bool>> {
    let work = bodies
        .iter()
        .map(|(guid, instance)| {
            let op = WriteOp::new().assert_exists().omap_set([(keys::reference(mailbox, *instance), Vec::new())]);
            let fut = store.write_op_async(&names::mail(guid), op);
            Box::pin(async move {
                match fut.await {
                    Ok(_) => Ok(true),
                    Err(StoreError::NotFound { .. }) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }) as BoxFuture<'static, Result<bool>>
        })
        .collect();
    run_bounded(work, in_flight)
}

/// Drops the references of `records` (of `mailbox`) on their bodies, deleting each body
/// that no reference is left on; idempotent. Results in the order given.
pub(crate) fn drop_references(
    store: &Arc<dyn ObjectStore>,
    mailbox: &Guid,
    records: &[MailRecord],
    in_flight: usize,
    retry: &RetryPolicy,
) -> Vec<Result<()>> {
    let work = records
        .iter()
        .map(|rec| {
            let (store, mailbox, rec, retry) = (store.clone(), *mailbox, rec.clone(), retry.clone());
            Box::pin(async move { drop_one(store, mailbox, rec, retry).await }) as BoxFuture<'static, Result<()>>
        })
        .collect();
    run_bounded(work, in_flight)
}

/// Drops one record's reference on its body, deleting the body when no reference is left.
/// Two round trips in the common case: read the first references, then either remove the
/// body (ours was the only one) or remove our key, both guarded by the version read, so a
/// concurrent copy that adds a reference, or a concurrent drop, makes it read again.
async fn drop_one(store: Arc<dyn ObjectStore>, mailbox: Guid, rec: MailRecord, retry: RetryPolicy) -> Result<()> {
    let guid = body_guid("(record)", &rec)?;
    let oid = names::mail(&guid);
    let ours = keys::reference(&mailbox, rec.instance);
    let mut attempts = retry.start();
    loop {
        let read = match store.read_op_async(&oid, ReadOp::new().omap_range("", keys::REFERENCE, 2)).await {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let page = read.omap_page.unwrap_or_default();
        let others = page.entries.iter().any(|(k, _)| *k != ours) || page.more;
        let has_ours = page.entries.iter().any(|(k, _)| *k == ours);
        let op = if others {
            if !has_ours && !page.more {
                return Ok(()); // dropped before
            }
            // Ours may be past the two keys read (a body with three references or
            // more): removing a key that is not there changes nothing.
            WriteOp::new().assert_version(read.version).omap_rm_keys([ours.clone()])
        } else {
            WriteOp::new().assert_version(read.version).remove()
        };
        match store.write_op_async(&oid, op).await {
            Ok(_) if others => return Ok(()),
            Ok(_) => {
                // The first object is gone: nobody can reach the other chunks any more.
                for n in 1..body::object_count(rec.psize, rec.chunk_size) {
                    match store.write_op_async(&names::mail_chunk(&guid, n), WriteOp::new().remove()).await {
                        Ok(_) | Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                return Ok(());
            }
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(StoreError::Conflict { .. }) => {
                attempts.lost(|| format!("dropping reference {ours} on {oid}"))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
