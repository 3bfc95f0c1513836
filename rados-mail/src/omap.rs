//! Counting omap keys page by page: how the bounds of growing objects (`docs/FORMAT.md`,
//! "Bounded objects") learn how many keys an object holds.

use objstore::{OMAP_PAGE_MAX, ObjectStore, OmapPage};

use crate::error::Result;

/// Counts the keys of `oid` under `prefix`, going on from `first` (the page a read of the
/// caller already returned: no I/O for objects with up to [`OMAP_PAGE_MAX`] such keys),
/// one read per further page, and stops as soon as more than `stop_above` are counted.
/// Returns the count and whether keys were left uncounted. An object removed meanwhile
/// ends the count.
pub(crate) fn count_keys(
    store: &dyn ObjectStore,
    oid: &str,
    prefix: &str,
    first: OmapPage,
    stop_above: usize,
) -> Result<(usize, bool)> {
    let mut page = first;
    let mut count = page.entries.len();
    while page.more && count <= stop_above {
        let Some((last, _)) = page.entries.last() else { break };
        page = match store.omap_range(oid, last, prefix, OMAP_PAGE_MAX) {
            Ok(next) => next,
            Err(objstore::Error::NotFound { .. }) => return Ok((count, false)),
            Err(e) => return Err(e.into()),
        };
        count += page.entries.len();
    }
    Ok((count, page.more))
}
