//! Settings as `key = value` strings: how the Dovecot plugin (its `plugin { rados_* }`
//! settings), the C ABI's `rm_config` and operator tools describe a store.
//!
//! Keys (every one optional):
//!
//! | key                | value                                              | default            |
//! |--------------------|----------------------------------------------------|--------------------|
//! | `backend`          | `rados` or `memory`                                | `rados`            |
//! | `conf`             | path of `ceph.conf`                                | `CEPH_CONF` / Ceph's search path |
//! | `keyring`          | path of the keyring                                | as `ceph.conf` says |
//! | `client_name`      | full client name                                   | `client.admin`     |
//! | `pool`             | pool of the mail data (the index pool)             | `mail`             |
//! | `data_pool`        | pool of the mail bodies (may be erasure-coded; [`Config::data_pool`]) | the index pool |
//! | `dict_shards`      | objects the shared dict of a new deployment is spread over (1 to 4096; [`Config::dict_shards`]) | 64 |
//! | `namespace_prefix` | namespaces are `<prefix>/<user>` (`<user>` when empty); no '/' | empty      |
//! | `timeout`          | seconds (`30`, `30s`, `2m`) before a cluster operation fails as unavailable; `0` waits forever | 30 |
//! | `max_mail_size`    | size: the largest mail accepted                    | 100M               |
//! | `max_keywords`     | distinct keywords a mailbox may hold (1 or more; [`Config::max_keywords`]) | 1000 |
//! | `max_mailboxes`    | mailboxes a user may have, and names a user may subscribe to (1 or more; [`Config::max_mailboxes`]) | 10000 |
//! | `max_body_references` | references one body may carry before a copy stores a new body (1 or more; [`Config::max_body_references`]) | 1000 |
//! | `max_dict_keys`    | keys a user's private dict may hold (1 or more; [`Config::max_dict_keys`]) | 50000 |
//! | `cache_memory`     | size: memory tier of the body cache                | 64M                |
//! | `cache_max_item`   | size: largest body cached                          | 1M                 |
//! | `cache_disk_dir`   | directory of the disk tier (empty: none)           | none               |
//! | `cache_disk`       | size: bound of the disk tier                       | 1G                 |
//! | `record_cache`     | mail records kept in memory per process, read by block from the shards (0: none; [`Config::record_cache_records`]) | 65536 |
//! | `read_in_flight`   | body reads a prefetch keeps in flight (1 or more)  | 16                 |
//! | `notify`           | `yes`/`no`: notify watchers of every commit and mailbox list change ([`Config::notify`]) | `yes` |
//! | `delivery_window`  | how long a delivery's key is kept so a sender's retry is stored once (`24h`, `90m`; `0`: off; at most `168h`, [`Config::delivery_window`]) | `24h` |
//!
//! Sizes are bytes, optionally with a suffix `k`, `M`, `G` or `T` (powers of 1024, any case,
//! optionally followed by `B` or `iB`), like Dovecot's size settings.

use std::path::PathBuf;
use std::time::Duration;

use crate::{Config, Error, MailStore, Result};

/// Where a store keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A Ceph cluster (the real thing).
    Rados,
    /// Process memory: lost when the store is dropped; for tests and trying things out.
    Memory,
}

/// A store's description, built from `key = value` strings ([`Settings::set`]) and opened
/// with [`Settings::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where the data lives.
    pub backend: Backend,
    /// How to reach the cluster (for [`Backend::Rados`]).
    pub cluster: librados::ClusterConfig,
    /// Layout and limits of the mail store.
    pub config: Config,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { backend: Backend::Rados, cluster: librados::ClusterConfig::default(), config: Config::default() }
    }
}

/// The keys [`Settings::set`] accepts, in the order of the module's table.
pub const KEYS: &[&str] = &[
    "backend",
    "conf",
    "keyring",
    "client_name",
    "pool",
    "data_pool",
    "dict_shards",
    "namespace_prefix",
    "timeout",
    "max_mail_size",
    "max_keywords",
    "max_mailboxes",
    "max_body_references",
    "max_dict_keys",
    "cache_memory",
    "cache_max_item",
    "cache_disk_dir",
    "cache_disk",
    "record_cache",
    "read_in_flight",
    "notify",
    "delivery_window",
];

impl Settings {
    /// Sets one key (see the module's table); an unknown key or a malformed value fails
    /// with [`Error::InvalidInput`] naming both, and leaves the settings unchanged.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |why: &str| Error::InvalidInput(format!("setting {key} = {value:?}: {why}"));
        match key {
            "backend" => {
                self.backend = match value {
                    "rados" => Backend::Rados,
                    "memory" => Backend::Memory,
                    _ => return Err(bad("expected \"rados\" or \"memory\"")),
                }
            }
            "conf" => self.cluster.conf_path = non_empty(value).map(PathBuf::from),
            "keyring" => self.cluster.keyring = non_empty(value).map(PathBuf::from),
            "client_name" => {
                if value.is_empty() || value.contains(char::is_whitespace) {
                    return Err(bad("expected a client name like client.mail"));
                }
                self.cluster.client_name = value.to_string();
            }
            "pool" => {
                if value.is_empty() {
                    return Err(bad("expected a pool name"));
                }
                self.cluster.pool = value.to_string();
            }
            "data_pool" => {
                if value.contains(char::is_whitespace) || value.contains('\0') {
                    return Err(bad("expected a pool name (empty: the index pool)"));
                }
                self.config.data_pool = value.to_string();
            }
            "dict_shards" => {
                let n: u32 = value.parse().map_err(|_| bad("expected a number of objects, 1 to 4096"))?;
                if n == 0 || n > crate::dict::MAX_SHARDS {
                    return Err(bad("expected a number of objects, 1 to 4096"));
                }
                self.config.dict_shards = n;
            }
            "namespace_prefix" => {
                omap_index::names::check_prefix(value).map_err(|e| bad(&e.to_string()))?;
                self.config.namespace_prefix = value.to_string()
            }
            "timeout" => {
                let secs = parse_duration(value).ok_or_else(|| bad("expected seconds, like 30, 30s or 2m"))?;
                self.cluster.op_timeout = (secs > 0).then(|| Duration::from_secs(secs));
                // A commit whose reply was lost is resolved within the same bound (with no
                // timeout, within ten minutes).
                self.config.resolve_window = Duration::from_secs(if secs > 0 { secs } else { 600 });
            }
            "max_mail_size" => {
                let size = parse_size(value).ok_or_else(|| bad("expected a size, like 50M"))?;
                if size == 0 {
                    return Err(bad("must be above 0"));
                }
                self.config.max_mail_size = size;
            }
            "max_keywords" => {
                self.config.max_keywords = value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=u32::MAX as usize).contains(n))
                    .ok_or_else(|| bad("expected a number above 0"))?
            }
            "max_mailboxes" => {
                self.config.max_mailboxes =
                    value.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad("expected a number above 0"))?
            }
            "max_body_references" => {
                self.config.max_body_references =
                    value.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad("expected a number above 0"))?
            }
            "max_dict_keys" => {
                self.config.max_dict_keys =
                    value.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| bad("expected a number above 0"))?
            }
            "cache_memory" => {
                self.config.cache.memory_bytes = parse_size(value).ok_or_else(|| bad("expected a size"))?
            }
            "cache_max_item" => {
                self.config.cache.max_item_bytes = parse_size(value).ok_or_else(|| bad("expected a size"))?
            }
            "cache_disk_dir" => self.config.cache.disk_dir = non_empty(value).map(PathBuf::from),
            "cache_disk" => self.config.cache.disk_bytes = parse_size(value).ok_or_else(|| bad("expected a size"))?,
            "record_cache" => {
                self.config.record_cache_records =
                    value.trim().parse().map_err(|_| bad("expected a number of records (0: none kept)"))?
            }
            "read_in_flight" => {
                self.config.read_in_flight =
                    value.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| bad("expected a number above 0"))?
            }
            "notify" => {
                self.config.notify = match value.trim().to_ascii_lowercase().as_str() {
                    "yes" | "true" | "1" | "on" => true,
                    "no" | "false" | "0" | "off" => false,
                    _ => return Err(bad("expected yes or no")),
                }
            }
            "delivery_window" => {
                let secs = parse_duration(value)
                    .filter(|s| *s <= 7 * 24 * 3600)
                    .ok_or_else(|| bad("expected a duration up to 168h, like 24h, 90m or 0"))?;
                self.config.delivery_window = Duration::from_secs(secs);
            }
            _ => {
                return Err(Error::InvalidInput(format!("unknown setting {key:?}; known: {}", KEYS.join(", "))));
            }
        }
        Ok(())
    }

    /// Opens the store these settings describe: connects to the cluster (bounded by
    /// `timeout`) and opens the index pool and the data pool (`data_pool`, when another),
    /// or makes an empty in-memory store (whose data pool, when one is named, behaves as an
    /// erasure-coded pool: [`objstore::MemoryStore::erasure_coded`]). Fails like
    /// [`MailStore::connect`] and [`MailStore::try_new`] (a cache directory that cannot be
    /// made is an error here). The pool format record is read on first use.
    pub fn open(&self) -> Result<MailStore> {
        use std::sync::Arc;
        let separate = !self.config.data_pool.is_empty() && self.config.data_pool != self.cluster.pool;
        let (pool, data): (Arc<dyn objstore::ObjectStore>, Option<Arc<dyn objstore::ObjectStore>>) = match self.backend
        {
            Backend::Rados => {
                let index = librados::RadosStore::connect(&self.cluster)?;
                let data = if separate { Some(Arc::new(index.with_pool(&self.config.data_pool)?) as _) } else { None };
                (Arc::new(index), data)
            }
            Backend::Memory => {
                let data = separate.then(|| Arc::new(objstore::MemoryStore::erasure_coded("")) as _);
                (Arc::new(objstore::MemoryStore::new("")), data)
            }
        };
        MailStore::build(pool, data, &self.cluster.pool, self.config.clone())
    }
}

fn non_empty(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

/// Bytes with an optional binary suffix: `4096`, `64k`, `64M`, `1G`, `1GiB`, `2 T`.
pub fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let digits = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    if digits == 0 {
        return None;
    }
    let number: u64 = value[..digits].parse().ok()?;
    let suffix = value[digits..].trim_start().to_ascii_lowercase();
    let suffix = suffix.strip_suffix("ib").or_else(|| suffix.strip_suffix('b')).unwrap_or(&suffix);
    let shift = match suffix {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

/// Seconds with an optional unit: `30`, `30s`, `2m`, `1h`.
fn parse_duration(value: &str) -> Option<u64> {
    let value = value.trim();
    let digits = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    if digits == 0 {
        return None;
    }
    let number: u64 = value[..digits].parse().ok()?;
    let unit = match value[digits..].trim_start() {
        "" | "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" => 3600,
        _ => return None,
    };
    number.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64k"), Some(64 << 10));
        assert_eq!(parse_size("64M"), Some(64 << 20));
        assert_eq!(parse_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_size("2tb"), Some(2 << 40));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("99999999999999999999T"), None);
    }

    #[test]
    fn every_key_sets_its_field() {
        let mut s = Settings::default();
        for (k, v) in [
            ("backend", "memory"),
            ("conf", "/etc/ceph/x.conf"),
            ("keyring", "/k"),
            ("client_name", "client.mail"),
            ("pool", "p"),
            ("data_pool", "p-ec"),
            ("dict_shards", "1024"),
            ("record_cache", "1000"),
            ("namespace_prefix", "u-"),
            ("timeout", "2m"),
            ("max_mail_size", "50M"),
            ("max_keywords", "250"),
            ("max_mailboxes", "500"),
            ("max_body_references", "7"),
            ("max_dict_keys", "9"),
            ("cache_memory", "0"),
            ("cache_max_item", "2M"),
            ("cache_disk_dir", "/tmp/c"),
            ("cache_disk", "3G"),
            ("read_in_flight", "8"),
            ("notify", "no"),
        ] {
            s.set(k, v).unwrap();
        }
        assert_eq!(s.backend, Backend::Memory);
        assert_eq!(s.cluster.conf_path, Some(PathBuf::from("/etc/ceph/x.conf")));
        assert_eq!(s.cluster.keyring, Some(PathBuf::from("/k")));
        assert_eq!(s.cluster.client_name, "client.mail");
        assert_eq!(s.cluster.pool, "p");
        assert_eq!(s.config.data_pool, "p-ec");
        assert_eq!(s.config.dict_shards, 1024);
        assert_eq!(s.config.record_cache_records, 1000);
        assert_eq!(s.config.namespace_prefix, "u-");
        assert_eq!(s.cluster.op_timeout, Some(Duration::from_secs(120)));
        assert_eq!(s.config.max_mail_size, 50 << 20);
        assert_eq!(s.config.max_keywords, 250);
        assert_eq!(s.config.max_mailboxes, 500);
        assert_eq!((s.config.max_body_references, s.config.max_dict_keys), (7, 9));
        assert_eq!(s.config.cache.memory_bytes, 0);
        assert_eq!(s.config.cache.max_item_bytes, 2 << 20);
        assert_eq!(s.config.cache.disk_dir, Some(PathBuf::from("/tmp/c")));
        assert_eq!(s.config.cache.disk_bytes, 3 << 30);
        assert_eq!(s.config.read_in_flight, 8);
        assert!(!s.config.notify);
        s.set("timeout", "0").unwrap();
        assert_eq!(s.cluster.op_timeout, None);
    }

    #[test]
    fn bad_keys_and_values_are_refused_and_change_nothing() {
        let mut s = Settings::default();
        let before = s.clone();
        for (k, v) in [
            ("pol", "mail"),
            ("backend", "disk"),
            ("timeout", "soon"),
            ("max_mail_size", "0"),
            ("max_mail_size", "big"),
            ("max_keywords", "0"),
            ("max_keywords", "lots"),
            ("max_mailboxes", "0"),
            ("max_mailboxes", "-1"),
            ("max_body_references", "0"),
            ("max_dict_keys", "x"),
            ("client_name", ""),
            ("client_name", "client mail"),
            ("pool", ""),
            ("data_pool", "mail ec"),
            ("dict_shards", "0"),
            ("dict_shards", "4097"),
            ("record_cache", "-1"),
            ("cache_disk", "1X"),
            ("read_in_flight", "0"),
            ("read_in_flight", "many"),
            ("notify", "maybe"),
            // Issue 14: '/' separates the prefix from the user name in a namespace.
            ("namespace_prefix", "mail/"),
            ("namespace_prefix", "a\nb"),
        ] {
            let e = s.set(k, v).unwrap_err();
            assert!(matches!(e, Error::InvalidInput(ref m) if m.contains(k)), "{k}={v}: {e}");
        }
        assert_eq!(s, before);
    }

    #[test]
    fn memory_backend_opens_a_working_store() {
        let mut s = Settings::default();
        s.set("backend", "memory").unwrap();
        let store = s.open().unwrap();
        store.user("a").unwrap().create_mailbox("INBOX").unwrap();
        assert_eq!(store.user("a").unwrap().list_mailboxes("*").unwrap().len(), 1);
    }
}
