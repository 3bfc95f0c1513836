//! The layout of a deployment: its pool format record (`omap_index::format`), read once
//! per process on first use and again when older than [`REFRESH`], so that a long-lived
//! process sees a migration; and [`Bodies`], where a user's mail bodies live under it.
//!
//! A deployment without a record gets one on its first open: version 2 when its
//! namespaces hold no object at all (a new deployment), version 1 otherwise (data written
//! before the record existed), created exclusively so that racing processes agree.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use objstore::{CmpOp, Error as StoreError, ObjectStore, ReadOp, ReadResult, WriteOp};
use omap_index::format::{self, FORMAT_KEY, FORMAT_OBJECT, FormatProblem, KNOWN_VERSIONS, PoolFormat, V1, V2};
use omap_index::names::{SHARED_NAMESPACE, namespace_of, split_namespace};

use crate::error::{Error, Result};

pub(crate) mod migrate;

/// How long a process uses the record it read before it reads it again.
pub const REFRESH: Duration = Duration::from_secs(60);

/// The format record of one deployment (index pool and namespace prefix), cached.
#[derive(Debug)]
pub(crate) struct LayoutState {
    /// The index pool (any namespace: for listing and for users' namespaces).
    index: Arc<dyn ObjectStore>,
    /// The data pool when it is not the index pool.
    data: Option<Arc<dyn ObjectStore>>,
    /// The namespace prefix.
    prefix: String,
    /// The index pool's name, for messages.
    pool: String,
    /// The `data_pool` setting ("" when it is the index pool).
    data_pool: String,
    /// The `dict_shards` setting: the shared dict's objects in a record this store creates.
    dict_shards: u32,
    /// How long a record read is used ([`REFRESH`]).
    refresh: Duration,
    cached: Mutex<Option<(PoolFormat, Instant)>>,
    /// When the last read of the record failed temporarily, how long it had waited for
    /// the cluster, and why: for as long again (at most [`FAIL_FAST`]) reads fail at once
    /// instead of waiting another timeout each.
    failed: Mutex<Option<(Instant, Duration, String)>>,
}

/// The longest time after a read of the record that waited for the cluster and failed
/// during which other reads fail at once with the same temporary error (for as long as
/// that read waited: a timeout of 3 s makes 3 s; a failure within a second makes none).
/// An LMTP transaction with several recipients during an outage is then refused within one
/// cluster timeout, not one per recipient, and an operation after a brief failure is not
/// refused for it.
pub const FAIL_FAST: Duration = Duration::from_secs(5);

/// A failed read of the record that took at least this long waited for the cluster (the
/// shortest cluster timeout is a second); a shorter one holds nothing back.
const WAITED: Duration = Duration::from_secs(1);

impl LayoutState {
    /// The layout of the deployment under `prefix` in `index` (named `pool`), with bodies
    /// in `data` (named `data_pool`) when that is another pool.
    pub(crate) fn new(
        index: Arc<dyn ObjectStore>,
        data: Option<Arc<dyn ObjectStore>>,
        prefix: &str,
        pool: &str,
        data_pool: &str,
        dict_shards: u32,
    ) -> LayoutState {
        let data_pool = if data.is_none() || data_pool == pool { "" } else { data_pool };
        LayoutState {
            data: if data_pool.is_empty() { None } else { data },
            index,
            prefix: prefix.to_string(),
            pool: pool.to_string(),
            data_pool: data_pool.to_string(),
            dict_shards,
            refresh: REFRESH,
            cached: Mutex::new(None),
            failed: Mutex::new(None),
        }
    }

    /// The shared namespace, which holds the record.
    fn shared_namespace(&self) -> String {
        namespace_of(&self.prefix, SHARED_NAMESPACE)
    }

    /// The record, read (or created) on first use and re-read when older than the
    /// refresh interval; checked against this build and the settings.
    pub(crate) fn current(&self) -> Result<PoolFormat> {
        let format = self.record()?;
        self.check(&format)?;
        Ok(format)
    }

    /// Checks the record as last read, however old, without I/O; reads (or creates) it only
    /// when this process never read it: what opening a user checks, so that a process that read it
    /// once opens users without waiting on the cluster (during an outage an LMTP RCPT would
    /// otherwise wait a whole timeout for the re-read, then the delivery another). Every
    /// operation that depends on the layout re-reads it when it is older than the refresh
    /// interval ([`LayoutState::current`]).
    pub(crate) fn check_last(&self) -> Result<()> {
        match self.check_known() {
            // The cluster does not answer: the user opens all the same (as before the
            // record existed, opening a user read nothing), and the first operation that
            // needs the record ([`LayoutState::check_known`]: opening a mailbox) fails
            // temporarily, at once within FAIL_FAST.
            Err(e) if e.is_temporary() => Ok(()),
            other => other,
        }
    }

    /// As [`LayoutState::check_last`], but a temporary failure to read the record is
    /// returned: what opening a mailbox checks before its first read. Within
    /// [`FAIL_FAST`] of a read of the record that waited for the cluster and failed, that
    /// is at once, so that a delivery in a process that has never reached the cluster
    /// waits for one timeout (the user's open), not two (the user's, then the mailbox
    /// list's read).
    pub(crate) fn check_known(&self) -> Result<()> {
        let last = self.cached.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(f, _)| f.clone());
        match last {
            Some(format) => self.check(&format),
            None => self.current().map(drop),
        }
    }

    /// The record, read (or created) on first use and re-read when older than the refresh
    /// interval, without comparing its data pool with the settings: for what never touches
    /// a body (the shared dict, which a Dovecot dict URI may open with settings of its own
    /// that name no data pool). A newer format is refused all the same.
    pub(crate) fn record(&self) -> Result<PoolFormat> {
        let mut cached = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((format, at)) = cached.as_ref()
            && at.elapsed() < self.refresh
        {
            return Ok(format.clone());
        }
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, waited, why)) = failed.as_ref() {
            // Only a read that waited for the cluster (a second or more: a timeout) holds
            // the next ones back; one refused at once does not.
            if *waited >= WAITED && at.elapsed() < (*waited).min(FAIL_FAST) {
                return Err(Error::Unavailable(why.clone()));
            }
        }
        let started = Instant::now();
        let format = match self.load() {
            Ok(format) => format,
            Err(e) => {
                if let Error::Unavailable(why) = &e {
                    *failed = Some((Instant::now(), started.elapsed(), why.clone()));
                }
                return Err(e);
            }
        };
        *failed = None;
        *cached = Some((format.clone(), Instant::now()));
        Ok(format)
    }

    /// Forgets the cached record: the next use reads it again.
    pub(crate) fn forget(&self) {
        *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Reads the record; creates it when absent.
    fn load(&self) -> Result<PoolFormat> {
        let shared = self.index.with_namespace(&self.shared_namespace())?;
        // A lost race to create the record makes us read the winner's: twice is enough
        // (the record is only ever created, never removed by this code).
        for _ in 0..3 {
            let exists = match shared.read_op(FORMAT_OBJECT, &ReadOp::new().omap_get([FORMAT_KEY])) {
                Ok(r) => match r.omap.and_then(|mut m| m.remove(FORMAT_KEY)) {
                    Some(bytes) => return self.decode(&bytes),
                    None => true,
                },
                Err(StoreError::NotFound { .. }) => false,
                Err(e) => return Err(e.into()),
            };
            let empty = self.deployment_is_empty()?;
            if empty.is_none() && !self.data_pool.is_empty() {
                // Version 1 would refuse the data pool anyway: say what to do instead.
                return Err(Error::InvalidInput(format!(
                    "pool {} (namespace {}) has no rados-mail format record yet, and this client's \
                     key may not list the pool to tell whether the deployment is new: create the \
                     record once with a key that may (an admin key): `rados-mail --namespace-prefix \
                     {:?} --data-pool {} migrate --layout`",
                    self.pool,
                    self.shared_namespace(),
                    self.prefix,
                    self.data_pool
                )));
            }
            let format = if empty == Some(true) {
                PoolFormat {
                    version: V2,
                    data_pool: self.data_pool.clone(),
                    dict_shards: self.dict_shards,
                    migrating: false,
                }
            } else {
                PoolFormat { version: V1, ..PoolFormat::default() }
            };
            let op = if exists {
                WriteOp::new().omap_cmp(FORMAT_KEY, CmpOp::Eq, Vec::new())
            } else {
                WriteOp::new().create_exclusive()
            };
            match shared.write_op(FORMAT_OBJECT, &op.omap_set([(FORMAT_KEY, format::encode(&format))])) {
                Ok(_) => {
                    tracing::info!(
                        pool = %self.pool,
                        namespace = %self.shared_namespace(),
                        "wrote pool format record: version {}",
                        format.version
                    );
                    return Ok(format);
                }
                Err(StoreError::AlreadyExists { .. } | StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict(format!("creating the pool format record in namespace {:?}", self.shared_namespace())))
    }

    /// Whether no namespace of this deployment holds an object (one walk of the pool,
    /// stopping at the first object found; only while the record is absent). Namespaces of
    /// namespace mapping v1 (`<prefix><user>`, not moved yet by `rados-mail migrate`) count
    /// as this deployment's: their data is v1 (when in doubt, v1 is the safe answer).
    ///
    /// A client whose cephx caps confine it to the deployment's namespaces may not list
    /// the pool (`EPERM`): it cannot tell (`None`), and the caller takes the deployment as
    /// one with data (v1, the safe answer; `rados-mail migrate --layout` moves it to v2),
    /// or, when the settings name a data pool, refuses with the command that creates the
    /// record with a wider key.
    fn deployment_is_empty(&self) -> Result<Option<bool>> {
        let denied = |e: &StoreError| matches!(e, StoreError::Rados { errno: 1 | 13, .. });
        let listing = match self.index.list_pool() {
            Ok(l) => l,
            Err(e) if denied(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        for entry in listing {
            let (ns, _) = match entry {
                Ok(entry) => entry,
                Err(e) if denied(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let v1_mapping = !self.prefix.is_empty() && ns.starts_with(&self.prefix);
            if v1_mapping || split_namespace(&self.prefix, &ns).is_some() {
                return Ok(Some(false));
            }
        }
        Ok(Some(true))
    }

    fn decode(&self, bytes: &[u8]) -> Result<PoolFormat> {
        format::decode(bytes).map_err(|problem| match problem {
            FormatProblem::Damaged(e) => Error::Corrupted {
                object: format!("{FORMAT_OBJECT} (namespace {:?})", self.shared_namespace()),
                key: Some(FORMAT_KEY.into()),
                detail: e.to_string(),
            },
            FormatProblem::Newer { version, detail } => Error::UnsupportedFormat {
                pool: self.pool.clone(),
                namespace: self.shared_namespace(),
                version,
                detail,
            },
        })
    }

    /// Refuses a record the settings contradict.
    fn check(&self, format: &PoolFormat) -> Result<()> {
        let here = format!("pool {} (namespace {})", self.pool, self.shared_namespace());
        if format.version == V1 && !self.data_pool.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{here} has rados-mail format version 1 (bodies in the index pool), but the data_pool \
                 setting names pool {:?}: run `rados-mail migrate --layout --data-pool {}` first, or \
                 leave data_pool unset",
                self.data_pool, self.data_pool
            )));
        }
        if format.data_pool != self.data_pool {
            let named = |p: &str| if p.is_empty() { "the index pool".to_string() } else { format!("pool {p:?}") };
            return Err(Error::InvalidInput(format!(
                "{here} keeps mail bodies in {} (its format record), but the data_pool setting \
                 (Dovecot rados_data_pool, --data-pool) gives {}: {}",
                named(&format.data_pool),
                named(&self.data_pool),
                if format.data_pool.is_empty() {
                    "leave it unset".to_string()
                } else {
                    format!("set it to {:?}", format.data_pool)
                }
            )));
        }
        Ok(())
    }

    /// The bodies of the user whose index objects are in `index` (a namespace of the
    /// index pool).
    pub(crate) fn bodies(self: &Arc<Self>, index: &Arc<dyn ObjectStore>) -> Result<Bodies> {
        let data = match &self.data {
            Some(data) => data.with_namespace(index.namespace())?,
            None => index.clone(),
        };
        Ok(Bodies { data, index: index.clone(), separate: self.data.is_some(), layout: self.clone() })
    }
}

/// The versions this build reads, for messages: "1 and 2".
pub(crate) fn known_versions() -> String {
    let v: Vec<String> = KNOWN_VERSIONS.iter().map(u32::to_string).collect();
    match v.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => v.join(""),
    }
}

/// Where one user's mail bodies live, and how their references are kept.
#[derive(Debug, Clone)]
pub(crate) struct Bodies {
    /// The user's namespace in the data pool: new bodies go here.
    data: Arc<dyn ObjectStore>,
    /// The user's namespace in the index pool (the same as `data` unless `separate`).
    index: Arc<dyn ObjectStore>,
    /// The data pool is not the index pool.
    separate: bool,
    layout: Arc<LayoutState>,
}

impl Bodies {
    /// Where new bodies are written (the user's namespace of the data pool).
    pub(crate) fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.data
    }

    /// The user's namespace in the index pool.
    pub(crate) fn index_store(&self) -> &Arc<dyn ObjectStore> {
        &self.index
    }

    /// The data pool is another pool than the index pool.
    pub(crate) fn separate(&self) -> bool {
        self.separate
    }

    /// How references are written now: xattrs (v2) or omap keys (v1).
    pub(crate) fn xattr_refs(&self) -> Result<bool> {
        Ok(self.layout.current()?.version >= V2)
    }

    /// The other place a body may be in: the index pool, while a migration moves bodies
    /// from there to a separate data pool. `None` otherwise.
    pub(crate) fn fallback(&self) -> Result<Option<&Arc<dyn ObjectStore>>> {
        if !self.separate {
            return Ok(None);
        }
        Ok(self.layout.current()?.migrating.then_some(&self.index))
    }

    /// Runs `f` on the data pool; when the object is not there and a migration may have
    /// left it in the index pool, on the index pool, then once more on the data pool (a
    /// migration writes the copy before it removes the original).
    pub(crate) fn with_fallback<T>(&self, f: impl Fn(&dyn ObjectStore) -> objstore::Result<T>) -> Result<T> {
        match f(self.data.as_ref()) {
            Err(StoreError::NotFound { object }) => match self.fallback()? {
                Some(index) => match f(index.as_ref()) {
                    Err(StoreError::NotFound { .. }) => Ok(f(self.data.as_ref())?),
                    other => Ok(other?),
                },
                None => Err(StoreError::NotFound { object }.into()),
            },
            other => Ok(other?),
        }
    }

    /// The stores a body is looked for in, in order: the data pool, then (while a
    /// migration moves bodies out of the index pool) the index pool and the data pool
    /// again. See [`read_async`].
    pub(crate) fn places(&self) -> Result<Places> {
        Ok(Places { data: self.data.clone(), fallback: self.fallback()?.cloned() })
    }
}

/// The places of a body ([`Bodies::places`]), for asynchronous reads.
#[derive(Debug, Clone)]
pub(crate) struct Places {
    data: Arc<dyn ObjectStore>,
    fallback: Option<Arc<dyn ObjectStore>>,
}

impl Places {
    /// The stores to try, in order.
    pub(crate) fn order(&self) -> Vec<Arc<dyn ObjectStore>> {
        match &self.fallback {
            Some(index) => vec![self.data.clone(), index.clone(), self.data.clone()],
            None => vec![self.data.clone()],
        }
    }

    /// [`ObjectStore::read_op_async`] in each place in turn until one has the object: the
    /// data pool first, the others only when needed. Nothing is sent before the future is
    /// first polled (librados' futures submit then): run many at once (`refs::run_bounded`)
    /// for parallel round trips.
    pub(crate) fn read_async(&self, oid: &str, op: ReadOp) -> BoxFuture<'static, objstore::Result<ReadResult>> {
        self.each_place(oid, move |store, oid| store.read_op_async(oid, op.clone()))
    }

    /// [`ObjectStore::write_op_async`] in each place in turn until one has the object (the
    /// write must be guarded by `assert_exists`, so that a place without the object changes
    /// nothing), sent as [`Places::read_async`] sends reads.
    pub(crate) fn write_async(&self, oid: &str, op: WriteOp) -> BoxFuture<'static, objstore::Result<u64>> {
        self.each_place(oid, move |store, oid| store.write_op_async(oid, op.clone()))
    }

    /// `op` in each place in turn while the object is not found there; the data pool's
    /// operation is made at once, as the callers always did, the others when needed.
    fn each_place<T: Send + 'static>(
        &self,
        oid: &str,
        op: impl Fn(&dyn ObjectStore, &str) -> BoxFuture<'static, objstore::Result<T>> + Send + 'static,
    ) -> BoxFuture<'static, objstore::Result<T>> {
        let first = op(self.data.as_ref(), oid);
        let (rest, oid) = (self.order().split_off(1), oid.to_string());
        Box::pin(async move {
            let mut result = first.await;
            for store in rest {
                if !matches!(result, Err(StoreError::NotFound { .. })) {
                    break;
                }
                result = op(store.as_ref(), &oid).await;
            }
            result
        })
    }
}
