//! A wrapper backend that injects failures, for testing how callers cope.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::{self, BoxFuture, FutureExt};

use crate::error::{Error, Result};
use crate::op::{ReadOp, ReadResult, WriteOp};
use crate::{ObjectIter, ObjectStore};

/// Which operations a [`FaultyStore`] fails once its countdown has run out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// Every operation fails with [`Error::Unavailable`] (the cluster went away).
    Unavailable,
    /// Only writes fail, with [`Error::Unavailable`]; reads still work.
    WritesUnavailable,
    /// Every operation fails with [`Error::Rados`] `EIO` (a permanent error).
    Io,
    /// Counts writes only. The write at the end of the countdown is *applied*, but its
    /// caller gets [`Error::Unavailable`] (the reply was lost: a timeout after the OSD
    /// committed); the store heals at once, later operations pass. The case a commit must
    /// tell apart from a write that did not happen.
    AppliedButUnavailable,
}

/// What happens to one operation.
enum Fate {
    Pass,
    Fail(Error),
    /// Apply it, then report this error.
    ApplyThenFail(Error),
}

#[derive(Debug)]
struct Shared {
    /// Operations still allowed to pass; negative means "never fail".
    remaining: AtomicI64,
    mode: Mutex<FaultMode>,
}

/// Wraps another store and fails operations after a countdown.
///
/// Every primitive call (write, read, listing) counts as one operation. While the countdown
/// is positive operations pass through to the inner store; once it reaches zero they fail
/// according to the [`FaultMode`]. Handles made with [`ObjectStore::with_namespace`] share the
/// countdown, like namespaces share one cluster connection.
#[derive(Debug, Clone)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    shared: Arc<Shared>,
}

impl FaultyStore {
    /// Wraps `inner`; no faults until [`FaultyStore::fail_after`] is called.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        let shared = Shared { remaining: AtomicI64::new(-1), mode: Mutex::new(FaultMode::Unavailable) };
        FaultyStore { inner, shared: Arc::new(shared) }
    }

    /// Lets `ops` more operations pass, then fails them as `mode` says.
    pub fn fail_after(&self, ops: u64, mode: FaultMode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        self.shared.remaining.store(ops.min(i64::MAX as u64) as i64, Ordering::SeqCst);
    }

    /// Stops injecting faults.
    pub fn heal(&self) {
        self.shared.remaining.store(-1, Ordering::SeqCst);
    }

    /// Decides the fate of one operation that is not applied when it fails.
    fn check(&self, is_write: bool) -> Result<()> {
        match self.fate(is_write) {
            Fate::Pass => Ok(()),
            Fate::Fail(e) | Fate::ApplyThenFail(e) => Err(e),
        }
    }

    /// Decides the fate of one operation.
    fn fate(&self, is_write: bool) -> Fate {
        let mode = *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner());
        let writes_only = matches!(mode, FaultMode::WritesUnavailable | FaultMode::AppliedButUnavailable);
        if writes_only && !is_write {
            return Fate::Pass;
        }
        let passed = self
            .shared
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| if n > 0 { Some(n - 1) } else { None })
            .map(|_| true)
            .unwrap_or_else(|n| n < 0);
        if passed {
            return Fate::Pass;
        }
        match mode {
            FaultMode::Unavailable | FaultMode::WritesUnavailable => {
                Fate::Fail(Error::Unavailable("injected fault: cluster unavailable".into()))
            }
            FaultMode::Io => Fate::Fail(Error::Rados { errno: 5, context: "injected fault".into() }),
            FaultMode::AppliedButUnavailable => {
                self.heal();
                Fate::ApplyThenFail(Error::Unavailable("injected fault: the reply of an applied write was lost".into()))
            }
        }
    }
}

impl ObjectStore for FaultyStore {
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }

    fn with_namespace(&self, namespace: &str) -> Result<Arc<dyn ObjectStore>> {
        let inner = self.inner.with_namespace(namespace)?;
        Ok(Arc::new(FaultyStore { inner, shared: self.shared.clone() }))
    }

    fn write_op(&self, oid: &str, op: &WriteOp) -> Result<u64> {
        match self.fate(true) {
            Fate::Pass => self.inner.write_op(oid, op),
            Fate::Fail(e) => Err(e),
            Fate::ApplyThenFail(e) => {
                let _ = self.inner.write_op(oid, op);
                Err(e)
            }
        }
    }

    fn read_op(&self, oid: &str, op: &ReadOp) -> Result<ReadResult> {
        self.check(false)?;
        self.inner.read_op(oid, op)
    }

    fn write_op_async(&self, oid: &str, op: WriteOp) -> BoxFuture<'static, Result<u64>> {
        match self.fate(true) {
            Fate::Pass => self.inner.write_op_async(oid, op),
            Fate::Fail(e) => future::ready(Err(e)).boxed(),
            Fate::ApplyThenFail(e) => {
                let applied = self.inner.write_op_async(oid, op);
                async move {
                    let _ = applied.await;
                    Err(e)
                }
                .boxed()
            }
        }
    }

    fn read_op_async(&self, oid: &str, op: ReadOp) -> BoxFuture<'static, Result<ReadResult>> {
        match self.check(false) {
            Ok(()) => self.inner.read_op_async(oid, op),
            Err(e) => future::ready(Err(e)).boxed(),
        }
    }

    fn list_objects(&self) -> Result<ObjectIter<'_>> {
        self.check(false)?;
        self.inner.list_objects()
    }

    fn list_namespaces(&self) -> Result<Vec<String>> {
        self.check(false)?;
        self.inner.list_namespaces()
    }
}
