//! The entry point: a pool, seen as a set of users.

use std::sync::Arc;

use objstore::{MemoryStore, ObjectStore};
use omap_index::names::user_namespace;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::mailbox::ViewCache;
use crate::user::User;

/// A mail store on one RADOS pool (or in memory). Cheap to clone and share between threads.
#[derive(Debug, Clone)]
pub struct MailStore {
    pool: Arc<dyn ObjectStore>,
    config: Arc<Config>,
    views: ViewCache,
}

impl MailStore {
    /// A mail store over any object store (the namespace of `pool` is ignored: every user
    /// gets a namespace of their own).
    pub fn new(pool: Arc<dyn ObjectStore>, config: Config) -> MailStore {
        let views = ViewCache::new(config.view_cache_mailboxes);
        MailStore { pool, config: Arc::new(config), views }
    }

    /// Connects to a Ceph cluster.
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
        Ok(User::new(store, self.config.clone(), name, self.views.clone()))
    }
}

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
