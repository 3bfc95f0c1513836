//! A wrapper backend that injects failures, for testing how callers cope.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use futures::future::{self, BoxFuture, FutureExt};

use crate::error::{Error, Result};
use crate::op::{ReadOp, ReadResult, WriteOp};
use crate::watch::{NotifyDone, WatchCallback, WatchEvent, WatchHandle, watch_broken};
use crate::{ObjectIter, ObjectStore, PoolIter};

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
    /// As [`FaultMode::AppliedButUnavailable`] (counts writes; the write at the end of the
    /// countdown is applied and its caller gets [`Error::Unavailable`]), and then the cluster
    /// stays away for this many more operations, reads and writes alike, which fail with
    /// [`Error::Unavailable`]; after them every operation passes. The case of a commit whose
    /// reply was lost and whose outcome can only be read once the cluster is back.
    AppliedThenDown(u32),
    /// Counts every operation; the one at the end of the countdown and the next ones, this
    /// many in all, fail with [`Error::Unavailable`] and are not applied (a short outage);
    /// after them every operation passes.
    DownFor(u32),
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
    /// Operations still to fail after an [`FaultMode::AppliedThenDown`] write.
    down: AtomicU64,
    /// Notifies fail (and reach nobody) while set.
    fail_notifies: AtomicBool,
    /// Watch registrations still to fail.
    failing_watches: AtomicU64,
    /// How long an injected failure waits before it is returned, in milliseconds.
    fail_delay_ms: AtomicU64,
    /// The watches made through this store (and its namespaces), for `break_watches`.
    watches: Mutex<Vec<Weak<FaultWatch>>>,
}

/// Where a watch made through a [`FaultyStore`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchState {
    Live,
    /// Broken (injected or by the inner store): no more events.
    Broken,
    /// Unwatched.
    Gone,
}

/// A watch made through a [`FaultyStore`]: events of the inner watch pass through it.
struct FaultWatch {
    oid: String,
    callback: WatchCallback,
    /// Held while the callback runs.
    state: Mutex<WatchState>,
}

impl std::fmt::Debug for FaultWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultWatch").field("oid", &self.oid).finish()
    }
}

impl FaultWatch {
    fn deliver(&self, event: WatchEvent) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *state != WatchState::Live {
            return false;
        }
        if matches!(event, WatchEvent::Error(_)) {
            *state = WatchState::Broken;
        }
        (self.callback)(event);
        true
    }
}

#[derive(Debug)]
struct FaultWatchHandle {
    inner: Option<Box<dyn WatchHandle>>,
    watch: Arc<FaultWatch>,
}

impl WatchHandle for FaultWatchHandle {
    fn oid(&self) -> &str {
        &self.watch.oid
    }

    fn check(&self) -> Result<()> {
        if *self.watch.state.lock().unwrap_or_else(|e| e.into_inner()) == WatchState::Broken {
            return Err(watch_broken(&self.watch.oid, "injected fault"));
        }
        self.inner.as_ref().map_or(Ok(()), |w| w.check())
    }
}

impl Drop for FaultWatchHandle {
    fn drop(&mut self) {
        drop(self.inner.take());
        *self.watch.state.lock().unwrap_or_else(|e| e.into_inner()) = WatchState::Gone;
    }
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
        let shared = Shared {
            remaining: AtomicI64::new(-1),
            mode: Mutex::new(FaultMode::Unavailable),
            down: AtomicU64::new(0),
            fail_notifies: AtomicBool::new(false),
            failing_watches: AtomicU64::new(0),
            fail_delay_ms: AtomicU64::new(0),
            watches: Mutex::new(Vec::new()),
        };
        FaultyStore { inner, shared: Arc::new(shared) }
    }

    /// Lets `ops` more operations pass, then fails them as `mode` says.
    pub fn fail_after(&self, ops: u64, mode: FaultMode) {
        *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        self.shared.remaining.store(ops.min(i64::MAX as u64) as i64, Ordering::SeqCst);
    }

    /// Stops injecting faults (the countdown ones; see also [`FaultyStore::fail_notifies`]).
    pub fn heal(&self) {
        self.shared.remaining.store(-1, Ordering::SeqCst);
    }

    /// Stops every injected fault, an [`FaultMode::AppliedThenDown`] outage included.
    pub fn heal_all(&self) {
        self.heal();
        self.shared.down.store(0, Ordering::SeqCst);
    }

    /// While `fail` is set, every notify fails with [`Error::Unavailable`] and reaches
    /// nobody.
    pub fn fail_notifies(&self, fail: bool) {
        self.shared.fail_notifies.store(fail, Ordering::SeqCst);
    }

    /// Each injected failure from now on waits `delay` before it is returned, as an
    /// operation waits for a cluster that does not answer until its timeout (the thread
    /// sleeps, in async operations too: for tests). `Duration::ZERO` (the default) fails at
    /// once.
    pub fn fail_slowly(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.fail_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The next `n` watch registrations fail with [`Error::Unavailable`].
    pub fn fail_watches(&self, n: u64) {
        self.shared.failing_watches.store(n, Ordering::SeqCst);
    }

    /// Breaks every live watch made through this store (or its namespaces), as an OSD
    /// restart does: each callback gets one [`WatchEvent::Error`] (`Unavailable`) and no
    /// event after it. Returns how many watches broke.
    pub fn break_watches(&self) -> usize {
        let watches: Vec<Arc<FaultWatch>> = {
            let mut list = self.shared.watches.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|w| w.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        let event = |w: &FaultWatch| WatchEvent::Error(watch_broken(&w.oid, "injected fault"));
        watches.iter().filter(|w| w.deliver(event(w))).count()
    }

    /// The error every operation gets now, if the countdown ran out in a mode that fails
    /// everything; does not count down (watches and notifies are not counted).
    fn failing_now(&self) -> Option<Error> {
        let mode = *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner());
        if self.shared.remaining.load(Ordering::SeqCst) != 0 {
            return None;
        }
        match mode {
            FaultMode::Unavailable => Some(Error::Unavailable("injected fault: cluster unavailable".into())),
            FaultMode::Io => Some(Error::Rados { errno: 5, context: "injected fault".into() }),
            FaultMode::WritesUnavailable
            | FaultMode::AppliedButUnavailable
            | FaultMode::AppliedThenDown(_)
            | FaultMode::DownFor(_) => None,
        }
    }

    /// Decides the fate of one operation that is not applied when it fails.
    fn check(&self, is_write: bool) -> Result<()> {
        match self.fate(is_write) {
            Fate::Pass => Ok(()),
            Fate::Fail(e) | Fate::ApplyThenFail(e) => Err(e),
        }
    }

    /// Decides the fate of one operation; a failure waits as [`FaultyStore::fail_slowly`]
    /// says.
    fn fate(&self, is_write: bool) -> Fate {
        let fate = self.decide(is_write);
        let delay = self.shared.fail_delay_ms.load(Ordering::SeqCst);
        if delay > 0 && !matches!(fate, Fate::Pass) {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        fate
    }

    /// What happens to one operation.
    fn decide(&self, is_write: bool) -> Fate {
        let down = |n: u64| if n > 0 { Some(n - 1) } else { None };
        if self.shared.down.fetch_update(Ordering::SeqCst, Ordering::SeqCst, down).is_ok() {
            return Fate::Fail(Error::Unavailable("injected fault: cluster still unavailable".into()));
        }
        let mode = *self.shared.mode.lock().unwrap_or_else(|e| e.into_inner());
        let writes_only = matches!(
            mode,
            FaultMode::WritesUnavailable | FaultMode::AppliedButUnavailable | FaultMode::AppliedThenDown(_)
        );
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
            FaultMode::DownFor(n) => {
                self.heal();
                self.shared.down.store(u64::from(n.saturating_sub(1)), Ordering::SeqCst);
                Fate::Fail(Error::Unavailable("injected fault: cluster unavailable".into()))
            }
            FaultMode::AppliedThenDown(n) => {
                self.heal();
                self.shared.down.store(u64::from(n), Ordering::SeqCst);
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

    fn list_pool(&self) -> Result<PoolIter<'_>> {
        self.check(false)?;
        self.inner.list_pool()
    }

    fn watch(&self, oid: &str, callback: WatchCallback) -> Result<Box<dyn WatchHandle>> {
        if let Some(e) = self.failing_now() {
            return Err(e);
        }
        let take = |n: u64| if n > 0 { Some(n - 1) } else { None };
        if self.shared.failing_watches.fetch_update(Ordering::SeqCst, Ordering::SeqCst, take).is_ok() {
            return Err(Error::Unavailable(format!("injected fault: watching {oid:?}")));
        }
        let watch = Arc::new(FaultWatch { oid: oid.to_string(), callback, state: Mutex::new(WatchState::Live) });
        let forward = Arc::downgrade(&watch);
        let inner = self.inner.watch(
            oid,
            Arc::new(move |event| {
                if let Some(w) = forward.upgrade() {
                    w.deliver(event);
                }
            }),
        )?;
        self.shared.watches.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&watch));
        Ok(Box::new(FaultWatchHandle { inner: Some(inner), watch }))
    }

    fn notify(&self, oid: &str, payload: &[u8], done: Option<NotifyDone>) {
        let failure = if self.shared.fail_notifies.load(Ordering::SeqCst) {
            Some(Error::Unavailable(format!("injected fault: notify on {oid:?}")))
        } else {
            self.failing_now()
        };
        match (failure, done) {
            (Some(e), Some(done)) => done(Err(e)),
            (Some(_), None) => {}
            (None, done) => self.inner.notify(oid, payload, done),
        }
    }
}
