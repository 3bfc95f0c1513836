//! The entry point: a pool, seen as a set of users.

use std::sync::Arc;

use objstore::{ByteCounts, CountingStore, MemoryStore, ObjectStore, OpCounts};
use omap_index::format::PoolFormat;
use omap_index::names::{namespace_of, user_namespace};

use crate::cache::{BodyCache, CacheConfig, CacheStats};
use crate::caches::{Caches, RecordCache, ViewCache};
use crate::config::Config;
use crate::dict::{Dict, Scope};
use crate::error::{Error, Result};
use crate::layout::LayoutState;
use crate::retry::{RetryCounts, RetryPolicy};
use crate::user::User;
use crate::watch::PushCounts;

/// A mail store on one RADOS pool (or in memory). Cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct MailStore {
    pool: Arc<dyn ObjectStore>,
    /// The pool of mail bodies ([`Config::data_pool`]): `pool` itself unless another
    /// pool was given.
    data: Arc<dyn ObjectStore>,
    /// The same pool, counting round trips for [`MailStore::stats`].
    counting: CountingStore,
    config: Arc<Config>,
    caches: Caches,
}

/// Counters of a [`MailStore`]: its body cache and its RADOS round trips.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Body cache hits, misses, sizes, evictions.
    pub cache: CacheStats,
    /// RADOS operations by kind.
    pub rados: OpCounts,
    /// Payload bytes read from and written to RADOS.
    pub bytes: ByteCounts,
    /// Guarded writes that lost a race, and operations that gave up (`Conflict`).
    pub retries: RetryCounts,
    /// Notifies sent and failed, watches broken and re-established.
    pub push: PushCounts,
}

impl MailStore {
    /// A mail store over any object store (the namespace of `pool` is ignored: every user
    /// gets a namespace of their own).
    ///
    /// If the disk tier of the body cache cannot be set up (its directory cannot be
    /// created), the store runs with the memory tier only and logs the error; use
    /// [`MailStore::try_new`] to fail instead.
    pub fn new(pool: Arc<dyn ObjectStore>, config: Config) -> MailStore {
        match MailStore::try_new(pool.clone(), config.clone()) {
            Ok(store) => store,
            Err(e) => {
                tracing::error!("body cache disk tier disabled: {e}");
                let config = Config { cache: CacheConfig { disk_dir: None, ..config.cache.clone() }, ..config };
                MailStore::try_new(pool, config).expect("a memory-only cache cannot fail")
            }
        }
    }

    /// [`MailStore::new`], failing when the body cache's disk tier cannot be set up.
    pub fn try_new(pool: Arc<dyn ObjectStore>, config: Config) -> Result<MailStore> {
        MailStore::build(pool, None, "(memory)", config)
    }

    /// A mail store whose bodies live in another pool than its indexes: `index` holds
    /// mailbox lists, indexes and dicts, `data` the bodies ([`Config::data_pool`] names
    /// it; it may be erasure-coded). Both are counted in [`MailStore::stats`].
    pub fn with_data_pool(
        index: Arc<dyn ObjectStore>,
        data: Arc<dyn ObjectStore>,
        config: Config,
    ) -> Result<MailStore> {
        MailStore::build(index, Some(data), "(memory)", config)
    }

    /// The store over `pool` (named `pool_name` in messages), bodies in `data` if given.
    pub(crate) fn build(
        pool: Arc<dyn ObjectStore>,
        data: Option<Arc<dyn ObjectStore>>,
        pool_name: &str,
        config: Config,
    ) -> Result<MailStore> {
        let bodies = Arc::new(BodyCache::new(&config.cache)?);
        let views = ViewCache::new(config.view_cache_mailboxes);
        // The format record is read through the pool itself, not counted in
        // `MailStore::stats`: it is read outside of any mail operation (on a process's first
        // use, then once a minute), and a mail server attributes the stats to operations.
        let uncounted = pool.clone();
        let counting = CountingStore::new(pool);
        let pool: Arc<dyn ObjectStore> = Arc::new(counting.clone());
        let data: Option<Arc<dyn ObjectStore>> = data.map(|d| Arc::new(counting.wrap(d)) as Arc<dyn ObjectStore>);
        let layout = Arc::new(LayoutState::new(
            uncounted,
            data.clone(),
            &config.namespace_prefix,
            pool_name,
            &config.data_pool,
            config.dict_shards,
        ));
        let retry = RetryPolicy::new(config.max_attempts);
        Ok(MailStore {
            data: data.unwrap_or_else(|| pool.clone()),
            pool,
            counting,
            caches: Caches {
                views,
                bodies,
                records: RecordCache::new(config.record_cache_records),
                retry,
                push: Arc::default(),
                layout,
            },
            config: Arc::new(config),
        })
    }

    /// The deployment's format record (`docs/FORMAT.md`, "Layout and format versions"):
    /// read on first use and again when older than [`crate::FORMAT_REFRESH`], created
    /// when the pool has none (version 2 for a new deployment, 1 for one with data).
    /// [`Error::UnsupportedFormat`] when a newer rados-mail wrote it; [`Error::InvalidInput`]
    /// when the settings' `data_pool` contradicts it.
    pub fn layout(&self) -> Result<PoolFormat> {
        self.caches.layout.current()
    }

    /// Forgets the format record read: the next use reads it again (after `rados-mail
    /// migrate` changed it, in the process that changed it).
    pub fn forget_layout(&self) {
        self.caches.layout.forget()
    }

    /// The deployment's layout state (format record cache).
    pub(crate) fn layout_state(&self) -> &LayoutState {
        &self.caches.layout
    }

    /// The pool of mail bodies (the index pool's store unless a data pool was given).
    pub fn data_pool(&self) -> &Arc<dyn ObjectStore> {
        &self.data
    }

    /// The shared dict (Dovecot's `shared/` keys), in the namespace `<prefix>/.shared`
    /// (`.shared` without a prefix).
    /// Its keys are spread over the format record's `dict_shards` objects (one object,
    /// `dict`, when 0: deployments of format 1 until `rados-mail migrate --dict-shards`).
    ///
    /// The shared dict holds no body, so a store whose `data_pool` setting disagrees with
    /// the format record may still use it (a Dovecot dict URI with settings of its own, such
    /// as `last_login_dict = rados:conf=…:pool=…`, names no data pool).
    pub fn shared_dict(&self) -> Result<Dict> {
        let layout = self.caches.layout.record()?;
        let store = self.pool.with_namespace(&namespace_of(&self.config.namespace_prefix, SHARED_NAMESPACE))?;
        Dict::sharded(store, Scope::Shared, self.caches.retry.clone(), layout.dict_shards)
    }

    /// Counters: body cache, RADOS round trips (all but the reads of the pool format
    /// record, [`MailStore::layout`]), lost races and push since the store was made.
    pub fn stats(&self) -> Stats {
        Stats {
            cache: self.caches.bodies.stats(),
            rados: self.counting.counts(),
            bytes: self.counting.bytes(),
            retries: self.caches.retry.counts(),
            push: self.caches.push.counts(),
        }
    }

    /// Connects to a Ceph cluster.
    #[cfg(feature = "rados")]
    pub fn connect(cluster: &librados::ClusterConfig, config: Config) -> Result<MailStore> {
        let store = librados::RadosStore::connect(cluster)?;
        let data: Option<Arc<dyn ObjectStore>> = match config.data_pool.as_str() {
            "" => None,
            p if p == cluster.pool => None,
            p => Some(Arc::new(store.with_pool(p)?)),
        };
        match MailStore::build(Arc::new(store), data.clone(), &cluster.pool, config.clone()) {
            Ok(store) => Ok(store),
            Err(e) => {
                tracing::error!("body cache disk tier disabled: {e}");
                let config = Config { cache: CacheConfig { disk_dir: None, ..config.cache.clone() }, ..config };
                Ok(MailStore::build(Arc::new(librados::RadosStore::connect(cluster)?), data, &cluster.pool, config)?)
            }
        }
    }

    /// A mail store in memory, for tests and trying things out: everything is lost when it
    /// is dropped.
    pub fn in_memory(config: Config) -> MailStore {
        MailStore::new(Arc::new(MemoryStore::new("")), config)
    }

    /// The object store underneath (for operator tools and tests).
    pub fn pool(&self) -> &Arc<dyn ObjectStore> {
        &self.pool
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A user's mail. Users need no creation: a user with no mailboxes is an empty
    /// namespace.
    ///
    /// [`Error::InvalidInput`] (permanent) for a name that can never be stored: see
    /// [`user_namespace`] (empty, with '/' or a control character, starting with '.', or
    /// whose namespace would exceed Ceph's 256 bytes).
    pub fn user(&self, name: &str) -> Result<User> {
        let store = self.pool.with_namespace(&self.user_namespace(name)?)?;
        // Refuses a newer format or a data pool the record contradicts before anything
        // is read; without I/O once the process has read the record.
        self.caches.layout.check_last()?;
        Ok(User::new(store, self.config.clone(), name, self.caches.clone()))
    }

    /// The namespace of user `name` under this store's prefix; [`Error::InvalidInput`]
    /// when the name can never be stored (see [`MailStore::user`]).
    pub fn user_namespace(&self, name: &str) -> Result<String> {
        user_namespace(&self.config.namespace_prefix, name).map_err(|e| Error::InvalidInput(e.to_string()))
    }
}

pub use omap_index::names::SHARED_NAMESPACE;

/// Checks that user `name` can be stored under namespace prefix `prefix`: the rules of
/// [`user_namespace`] (mapping v2), as [`Error::InvalidInput`], which is permanent (never
/// [`Error::is_temporary`]): a mail server refuses such a recipient for good.
pub fn check_user_name(prefix: &str, name: &str) -> Result<()> {
    user_namespace(prefix, name).map(drop).map_err(|e| Error::InvalidInput(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        let store = MailStore::in_memory(Config::default());
        assert!(store.user("alice@example.org").is_ok());
        for bad in ["", ".shared", "a\nb", "nul\0", "a/b", &"x".repeat(257)] {
            let err = store.user(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)) && !err.is_temporary(), "{bad:?}");
        }
        assert!(store.user(&"x".repeat(256)).is_ok(), "Ceph's limit is 256 bytes");
        let prefixed = MailStore::in_memory(Config { namespace_prefix: "faults-".into(), ..Config::default() });
        assert_eq!(prefixed.user_namespace("q-a@x").unwrap(), "faults-/q-a@x");
        assert_eq!(prefixed.user("q-a@x").unwrap().store().namespace(), "faults-/q-a@x");
        assert!(prefixed.user(&"x".repeat(249)).is_err(), "7 + 1 + 249 bytes");
        assert!(prefixed.user(&"x".repeat(248)).is_ok());
    }
}
