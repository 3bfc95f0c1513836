//! A second body object with the bytes and description of another: what a copy stores
//! when the body it copies carries [`crate::Config::max_body_references`] references
//! already (`docs/FORMAT.md`, "Bounded objects"), so that no body object gathers
//! references without bound. Dovecot's mdbox does the same when a mail's reference count
//! would overflow.

use objstore::{Error as StoreError, ReadOp, WriteOp};
use omap_index::keys;
use omap_index::names::{self, Guid, xattr};
use omap_index::records::MailRecord;
use rand::Rng;

use crate::body;
use crate::error::{Error, Result};
use crate::layout::Bodies;
use crate::refs::body_guid;

/// Stores a new body with the bytes of `source`'s body, for a copy of it into `mailbox`
/// whose reference is `instance`; returns the new body's GUID. The chunk objects are
/// written first, then the first object, created exclusively with the source's
/// description (its xattrs but the references, its GUID and mailbox) and the copy's
/// reference: until that last write nothing refers to the new objects, and a failure
/// removes those written (what a crash leaves is an orphan, which `repair` removes).
///
/// Reads and writes one object at a time: memory is one chunk (`chunk_size`).
pub(crate) fn duplicate(bodies: &Bodies, source: &MailRecord, mailbox: &Guid, instance: u64) -> Result<Guid> {
    let from = body_guid("(record)", source)?;
    let to = Guid(rand::rng().random());
    let objects = body::object_count(source.psize, source.chunk_size);
    let part_len = if source.chunk_size == 0 { source.psize } else { source.chunk_size };
    let store = bodies.store();
    let result = (|| {
        for n in 1..objects {
            let part = bodies.with_fallback(|s| s.read(&names::mail_part(&from, n), 0, part_len))?;
            store.write_op(&names::mail_part(&to, n), &WriteOp::new().create_exclusive().write_full(part))?;
        }
        let read = ReadOp::new().read(0, part_len.max(1)).xattrs();
        let first = bodies.with_fallback(|s| s.read_op(&names::mail(&from), &read))?;
        let mut op = WriteOp::new().create_exclusive().write_full(first.data.unwrap_or_default());
        for (name, value) in first.xattrs.unwrap_or_default() {
            if xattr::parse_reference(&name).is_none() && name != xattr::GUID && name != xattr::MAILBOX {
                op = op.set_xattr(name, value);
            }
        }
        op = op
            .set_xattr(xattr::GUID, to.to_string().into_bytes())
            .set_xattr(xattr::MAILBOX, mailbox.to_string().into_bytes());
        op = if bodies.xattr_refs()? {
            op.set_xattr(xattr::reference(mailbox, instance), Vec::new())
        } else {
            op.omap_set([(keys::reference(mailbox, instance), Vec::new())])
        };
        store.write_op(&names::mail(&to), &op)?;
        Ok(to)
    })();
    if let Err(e) = &result {
        // What was written, chunks only (the first object is written last): removed again.
        if !matches!(e, Error::Unavailable(_)) {
            for n in 1..objects {
                match store.remove(&names::mail_part(&to, n)) {
                    Ok(()) | Err(StoreError::NotFound { .. }) => {}
                    Err(e) => tracing::warn!(mail = %to, "removing chunk {n} of an unfinished copy: {e}"),
                }
            }
        }
    }
    result
}
