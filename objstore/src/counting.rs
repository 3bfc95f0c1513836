//! A wrapper backend that counts operations, so tests and benchmarks can assert on the
//! number of round trips a piece of code costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::BoxFuture;

use crate::error::Result;
use crate::op::{ReadOp, ReadResult, WriteOp};
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

#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    lists: AtomicU64,
    notifies: AtomicU64,
    watches: AtomicU64,
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

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
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
        Self::bump(&self.counters.writes);
        self.inner.write_op(oid, op)
    }

    fn read_op(&self, oid: &str, op: &ReadOp) -> Result<ReadResult> {
        Self::bump(&self.counters.reads);
        self.inner.read_op(oid, op)
    }

    fn write_op_async(&self, oid: &str, op: WriteOp) -> BoxFuture<'static, Result<u64>> {
        Self::bump(&self.counters.writes);
        self.inner.write_op_async(oid, op)
    }

    fn read_op_async(&self, oid: &str, op: ReadOp) -> BoxFuture<'static, Result<ReadResult>> {
        Self::bump(&self.counters.reads);
        self.inner.read_op_async(oid, op)
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
