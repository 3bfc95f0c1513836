//! The RADOS backend of [`objstore::ObjectStore`].

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::executor::block_on;
use futures::future::{BoxFuture, FutureExt};
use objstore::{
    NotifyDone, ObjectIter, ObjectStore, PoolIter, ReadOp, ReadResult, Result, WatchCallback, WatchHandle, WriteOp,
    check_namespace,
};

use crate::aio;
use crate::cluster::{Cluster, IoCtx};
use crate::config::ClusterConfig;
use crate::watch;

/// One namespace of a RADOS pool, as an [`ObjectStore`].
///
/// Every operation is one librados compound operation submitted asynchronously; the
/// blocking methods wait for its completion on the calling thread, the `*_async` methods
/// return a future. At most [`ClusterConfig::max_in_flight`] operations are in flight per
/// connection; callers beyond that wait for a slot.
#[derive(Debug, Clone)]
pub struct RadosStore {
    io: Arc<IoCtx>,
}

impl RadosStore {
    /// Connects as `config` says and opens its pool and namespace.
    pub fn connect(config: &ClusterConfig) -> Result<RadosStore> {
        let cluster = Cluster::connect(config)?;
        Ok(RadosStore { io: cluster.ioctx(&config.pool, &config.namespace)? })
    }

    /// A store over an existing I/O context.
    pub fn new(io: Arc<IoCtx>) -> RadosStore {
        RadosStore { io }
    }

    /// Another pool of the same cluster connection, in the same namespace (a mail store's
    /// data pool next to its index pool). [`objstore::Error::NotFound`] (object `pool
    /// <name>`) when the pool does not exist.
    pub fn with_pool(&self, pool: &str) -> Result<RadosStore> {
        Ok(RadosStore { io: self.io.cluster().ioctx(pool, self.io.namespace())? })
    }

    /// The name of the pool.
    pub fn pool(&self) -> &str {
        self.io.pool()
    }

    /// The underlying I/O context.
    pub fn ioctx(&self) -> &Arc<IoCtx> {
        &self.io
    }
}

impl ObjectStore for RadosStore {
    fn namespace(&self) -> &str {
        self.io.namespace()
    }

    fn with_namespace(&self, namespace: &str) -> Result<Arc<dyn ObjectStore>> {
        check_namespace(namespace)?;
        let io = self.io.cluster().ioctx(self.io.pool(), namespace)?;
        Ok(Arc::new(RadosStore { io }))
    }

    fn write_op(&self, oid: &str, op: &WriteOp) -> Result<u64> {
        block_on(aio::write(self.io.clone(), oid, op))
    }

    fn read_op(&self, oid: &str, op: &ReadOp) -> Result<ReadResult> {
        block_on(aio::read(self.io.clone(), oid, op))
    }

    fn write_op_async(&self, oid: &str, op: WriteOp) -> BoxFuture<'static, Result<u64>> {
        aio::write_owned(self.io.clone(), oid.to_string(), op).boxed()
    }

    fn read_op_async(&self, oid: &str, op: ReadOp) -> BoxFuture<'static, Result<ReadResult>> {
        let (io, oid) = (self.io.clone(), oid.to_string());
        async move { aio::read(io, &oid, &op).await }.boxed()
    }

    fn list_objects(&self) -> Result<ObjectIter<'_>> {
        let iter = self.io.list(false)?;
        Ok(Box::new(iter.map(|r| r.map(|(_, name)| name))))
    }

    fn list_namespaces(&self) -> Result<Vec<String>> {
        let mut set = BTreeSet::new();
        for entry in self.io.list(true)? {
            set.insert(entry?.0);
        }
        Ok(set.into_iter().collect())
    }

    fn list_pool(&self) -> Result<PoolIter<'_>> {
        Ok(Box::new(self.io.list(true)?))
    }

    fn watch(&self, oid: &str, callback: WatchCallback) -> Result<Box<dyn WatchHandle>> {
        Ok(Box::new(watch::watch(&self.io, oid, callback)?))
    }

    fn notify(&self, oid: &str, payload: &[u8], done: Option<NotifyDone>) {
        watch::notify(&self.io, oid, payload, done)
    }
}
