//! The entry point: a pool, seen as a set of users.

use std::sync::Arc;

use objstore::{ByteCounts, CountingStore, MemoryStore, ObjectStore, OpCounts};
use omap_index::names::user_namespace;

use crate::cache::{BodyCache, CacheConfig, CacheStats};
use crate::caches::{Caches, ViewCache};
use crate::config::Config;
use crate::dict::{Dict, Scope};
use crate::error::{Error, Result};
use crate::retry::{RetryCounts, RetryPolicy};
use crate::user::User;
use crate::watch::PushCounts;

/// A mail store on one RADOS pool (or in memory). Cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct MailStore {
    pool: Arc<dyn ObjectStore>,
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
        let bodies = Arc::new(BodyCache::new(&config.cache)?);
        let views = ViewCache::new(config.view_cache_mailboxes);
        let counting = CountingStore::new(pool);
        let pool: Arc<dyn ObjectStore> = Arc::new(counting.clone());
        let retry = RetryPolicy::new(config.max_attempts);
        Ok(MailStore {
            pool,
            counting,
            config: Arc::new(config),
            caches: Caches { views, bodies, retry, push: Arc::default() },
        })
    }

    /// The shared dict (Dovecot's `shared/` keys), in the namespace `<prefix>.shared`.
    pub fn shared_dict(&self) -> Result<Dict> {
        let store = self.pool.with_namespace(&user_namespace(&self.config.namespace_prefix, SHARED_NAMESPACE))?;
        Ok(Dict::with_retry(store, Scope::Shared, self.caches.retry.clone()))
    }

    /// Counters: body cache, RADOS round trips, lost races and push since the store was
    /// made.
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
        Ok(MailStore::new(Arc::new(store), config))
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
    pub fn user(&self, name: &str) -> Result<User> {
        check_user_name(name)?;
        let store = self.pool.with_namespace(&user_namespace(&self.config.namespace_prefix, name))?;
        Ok(User::new(store, self.config.clone(), name, self.caches.clone()))
    }
}

/// The namespace (after the prefix) of shared data; user names cannot start with '.'.
pub const SHARED_NAMESPACE: &str = ".shared";

/// User names: 1–255 bytes of UTF-8, no control characters, not starting with '.'
/// (namespaces starting with '.' are reserved for shared data).
fn check_user_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidInput(format!("user name {name:?}: {why}")));
    if name.is_empty() || name.len() > 255 {
        return bad("must be 1 to 255 bytes");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    if name.starts_with('.') {
        return bad("must not start with '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        let store = MailStore::in_memory(Config::default());
        assert!(store.user("alice@example.org").is_ok());
        for bad in ["", ".shared", "a\nb", "nul\0", &"x".repeat(256)] {
            assert!(matches!(store.user(bad), Err(Error::InvalidInput(_))), "{bad:?}");
        }
    }
}
