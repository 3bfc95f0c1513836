//! Iteration: a k-way merge, in key order, of the pages read from each object of a dict
//! (one object for a dict of 0 shards, where it is a plain paged scan).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use objstore::{OMAP_PAGE_MAX, ObjectStore, OmapPage, ReadOp};

use super::{Dict, Entries, past_subtree};
use crate::error::{Error, Result};
use crate::refs::run_bounded;

/// How many shards' first pages are read at once.
const FIRST_PAGES_IN_FLIGHT: usize = 64;

/// One object's part of an iteration: the entries read and not yet merged, and where the
/// next read starts.
struct Cursor {
    object: String,
    /// The next read returns keys after this one.
    start: String,
    /// Entries read, in key order, that the filter kept.
    read: VecDeque<(String, Vec<u8>)>,
    /// Whether the object may hold more matching keys after `start`.
    more: bool,
}

impl Cursor {
    /// Takes a page read after `start` (`None`: the object does not exist).
    fn take(&mut self, page: Option<OmapPage>, below: &str, recursive: bool) {
        let Some(page) = page else {
            self.more = false;
            return;
        };
        let Some(last) = page.entries.last().map(|(k, _)| k.clone()) else {
            self.more = false;
            return;
        };
        for (key, value) in page.entries {
            if recursive || !key[below.len()..].contains('/') {
                self.read.push_back((key, value));
            }
        }
        self.more = page.more;
        self.start = if recursive { last } else { past_subtree(below, last) };
    }
}

/// Reads one page of `object`: keys beginning with `below`, after `start`.
fn read_page(
    store: &Arc<dyn ObjectStore>,
    object: &str,
    start: &str,
    below: &str,
    want: usize,
) -> BoxFuture<'static, Result<Option<OmapPage>>> {
    store
        .read_op_async(object, ReadOp::new().omap_range(start, below, want))
        .map(|r| match r {
            Ok(r) => Ok(Some(r.omap_page.unwrap_or_default())),
            Err(objstore::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::from(e)),
        })
        .boxed()
}

impl Dict {
    /// Collects up to `max` entries below `below` (which ends in '/') after `after`, merged
    /// from every object of the dict in key order; the flag says whether more may follow.
    pub(super) fn scan(&self, below: &str, recursive: bool, after: &str, max: usize) -> Result<(Entries, bool)> {
        // Entries per read: a recursive scan never needs more than it returns; a flat one
        // filters, so it reads full pages.
        let want = |left: usize| if recursive { left.min(OMAP_PAGE_MAX) } else { OMAP_PAGE_MAX };
        let mut cursors: Vec<Cursor> = self
            .objects()
            .into_iter()
            .map(|object| Cursor { object, start: after.to_string(), read: VecDeque::new(), more: true })
            .collect();
        let first = cursors.iter().map(|c| read_page(&self.store, &c.object, &c.start, below, want(max))).collect();
        for (cursor, page) in cursors.iter_mut().zip(run_bounded(first, FIRST_PAGES_IN_FLIGHT)) {
            cursor.take(page?, below, recursive);
        }
        // The smallest unmerged key of each cursor, with its value and the cursor's index.
        let mut heads = BinaryHeap::new();
        for (i, cursor) in cursors.iter_mut().enumerate() {
            self.refill(cursor, below, recursive, want(max))?;
            if let Some(entry) = cursor.read.pop_front() {
                heads.push(Reverse((entry, i)));
            }
        }
        let mut out = Vec::new();
        while let Some(Reverse((entry, i))) = heads.pop() {
            out.push(entry);
            if out.len() == max {
                let more = !heads.is_empty() || cursors.iter().any(|c| !c.read.is_empty() || c.more);
                return Ok((out, more));
            }
            self.refill(&mut cursors[i], below, recursive, want(max - out.len()))?;
            if let Some(entry) = cursors[i].read.pop_front() {
                heads.push(Reverse((entry, i)));
            }
        }
        Ok((out, false))
    }

    /// Reads the next pages of a cursor whose entries are all merged, until it has one or
    /// its object has no more.
    fn refill(&self, cursor: &mut Cursor, below: &str, recursive: bool, want: usize) -> Result<()> {
        while cursor.read.is_empty() && cursor.more {
            let page = futures::executor::block_on(read_page(&self.store, &cursor.object, &cursor.start, below, want))?;
            cursor.take(page, below, recursive);
        }
        Ok(())
    }
}
