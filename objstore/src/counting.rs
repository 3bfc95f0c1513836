//! A wrapper backend that counts operations, so tests and benchmarks can assert on the
//! number of round trips a piece of code costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::error::Result;
use crate::op::{Mutation, ReadOp, ReadResult, WriteOp};
use crate::watch::{NotifyDone, WatchCallback, WatchHandle};
use crate::{ObjectIter, ObjectStore, PoolIter};

/// Operations counted by a [`CountingStore`] (each is one round trip to RADOS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Compound reads.
    pub reads: u64,
    /// Compound writes.
    pub writes: u64,
    /// Object or namespace listings.
    pub lists: u64,
    /// Notifies sent (each one OSD operation, answered without waiting).
    pub notifies: u64,
    /// Watches registered.
    pub watches: u64,
}

impl OpCounts {
    /// All operations.
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.lists + self.notifies + self.watches
    }
}

impl std::ops::Sub for OpCounts {
    type Output = OpCounts;
    fn sub(self, rhs: OpCounts) -> OpCounts {
        OpCounts {
            reads: self.reads - rhs.reads,
            writes: self.writes - rhs.writes,
            lists: self.lists - rhs.lists,
            notifies: self.notifies - rhs.notifies,
            watches: self.watches - rhs.watches,
        }
    }
}

/// Payload bytes moved by a [`CountingStore`]'s operations: object data, xattr names and
/// values, omap keys and values (not the operations' encoding, guards or object names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteCounts {
    /// Bytes returned by reads that succeeded.
    pub read: u64,
    /// Bytes sent by writes (counted when submitted, whether they succeed or not).
    pub written: u64,
}

/// The payload bytes a write sends.
fn written_bytes(op: &WriteOp) -> u64 {
    let bytes: usize = op
        .mutations
        .iter()
        .map(|m| match m {
            Mutation::WriteFull(data) | Mutation::Append(data) | Mutation::Write { data, .. } => data.len(),
            Mutation::SetXattr { name, value } => name.len() + value.len(),
            Mutation::OmapSet(entries) => entries.iter().map(|(k, v)| k.len() + v.len()).sum(),
            _ => 0,
        })
        .sum();
    bytes as u64
}

/// The payload bytes a read returned.
fn read_bytes(result: &ReadResult) -> u64 {
    let map =
        |m: &std::collections::BTreeMap<String, Vec<u8>>| -> usize { m.iter().map(|(k, v)| k.len() + v.len()).sum() };
    let bytes = result.data.as_ref().map_or(0, Vec::len)
        + result.xattrs.as_ref().map_or(0, map)
        + result.omap.as_ref().map_or(0, map)
        + result.omap_page.as_ref().map_or(0, |p| p.entries.iter().map(|(k, v)| k.len() + v.len()).sum());
    bytes as u64
}

#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    lists: AtomicU64,
    notifies: AtomicU64,
    watches: AtomicU64,
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

/// Wraps another store and counts every operation that passes through. Handles made with
/// [`ObjectStore::with_namespace`] add to the same counters.
#[derive(Debug, Clone)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<Counters>,
}

impl CountingStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        CountingStore { inner, counters: Arc::default() }
    }

    /// Wraps another store (another pool) into the same counters: the operations of both
    /// add up in [`CountingStore::counts`].
    pub fn wrap(&self, other: Arc<dyn ObjectStore>) -> CountingStore {
        CountingStore { inner: other, counters: self.counters.clone() }
    }

    /// The operations so far.
    pub fn counts(&self) -> OpCounts {
        OpCounts {
            reads: self.counters.reads.load(Ordering::SeqCst),
            writes: self.counters.writes.load(Ordering::SeqCst),
            lists: self.counters.lists.load(Ordering::SeqCst),
            notifies: self.counters.notifies.load(Ordering::SeqCst),
            watches: self.counters.watches.load(Ordering::SeqCst),
        }
    }

    /// The payload bytes so far.
    pub fn bytes(&self) -> ByteCounts {
        ByteCounts {
            read: self.counters.bytes_read.load(Ordering::SeqCst),
            written: self.counters.bytes_written.load(Ordering::SeqCst),
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn count_write(&self, op: &WriteOp) {
        Self::bump(&self.counters.writes);
        self.counters.bytes_written.fetch_add(written_bytes(op), Ordering::SeqCst);
    }

    fn count_read(counters: &Counters, result: &Result<ReadResult>) {
        if let Ok(r) = result {
            counters.bytes_read.fetch_add(read_bytes(r), Ordering::SeqCst);
        }
    }
}

impl ObjectStore for CountingStore {
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }

    fn with_namespace(&self, namespace: &str) -> Result<Arc<dyn ObjectStore>> {
        let inner = self.inner.with_namespace(namespace)?;
        Ok(Arc::new(CountingStore { inner, counters: self.counters.clone() }))
    }

    fn write_op(&self, oid: &str, op: &WriteOp) -> Result<u64> {
        self.count_write(op);
        self.inner.write_op(oid, op)
    }

    fn read_op(&self, oid: &str, op: &ReadOp) -> Result<ReadResult> {
        Self::bump(&self.counters.reads);
        let result = self.inner.read_op(oid, op);
        Self::count_read(&self.counters, &result);
        result
    }

    fn write_op_async(&self, oid: &str, op: WriteOp) -> BoxFuture<'static, Result<u64>> {
        self.count_write(&op);
        self.inner.write_op_async(oid, op)
    }

    fn read_op_async(&self, oid: &str, op: ReadOp) -> BoxFuture<'static, Result<ReadResult>> {
        Self::bump(&self.counters.reads);
        let counters = self.counters.clone();
        self.inner
            .read_op_async(oid, op)
            .map(move |result| {
                Self::count_read(&counters, &result);
                result
            })
            .boxed()
    }

    fn list_objects(&self) -> Result<ObjectIter<'_>> {
        Self::bump(&self.counters.lists);
        self.inner.list_objects()
    }

    fn list_namespaces(&self) -> Result<Vec<String>> {
        Self::bump(&self.counters.lists);
        self.inner.list_namespaces()
    }

    fn list_pool(&self) -> Result<PoolIter<'_>> {
        Self::bump(&self.counters.lists);
        self.inner.list_pool()
    }

    fn watch(&self, oid: &str, callback: WatchCallback) -> Result<Box<dyn WatchHandle>> {
        Self::bump(&self.counters.watches);
        self.inner.watch(oid, callback)
    }

    fn notify(&self, oid: &str, payload: &[u8], done: Option<NotifyDone>) {
        Self::bump(&self.counters.notifies);
        self.inner.notify(oid, payload, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn payload_bytes_are_counted_both_ways() {
        let store = CountingStore::new(Arc::new(MemoryStore::new("")));
        let op = WriteOp::new()
            .write_full(b"hello".to_vec())
            .set_xattr("x", b"yy".to_vec())
            .omap_set([("k", b"vvv".to_vec())]);
        store.write_op("o", &op).unwrap();
        assert_eq!(store.bytes(), ByteCounts { read: 0, written: 5 + 3 + 4 });
        let got = store.read_op("o", &ReadOp::new().read(0, 100).omap_get(["k", "missing"])).unwrap();
        assert_eq!(got.data.as_deref(), Some(&b"hello"[..]));
        assert_eq!(store.bytes(), ByteCounts { read: 5 + 4, written: 12 });
        let got = futures::executor::block_on(store.read_op_async("o", ReadOp::new().xattrs()));
        assert!(got.is_ok());
        assert_eq!(store.bytes(), ByteCounts { read: 9 + 3, written: 12 });
        // A failed read returns nothing: no bytes.
        assert!(store.read_op("absent", &ReadOp::new().read(0, 10)).is_err());
        assert_eq!(store.bytes().read, 12);
        assert_eq!(store.counts().reads, 3);
        assert_eq!(store.counts().writes, 1);
    }
}
