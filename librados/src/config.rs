//! How to reach a cluster: the Ceph way (`ceph.conf` + keyring + client name + pool).

use std::path::PathBuf;
use std::time::Duration;

/// Connection settings for a RADOS pool.
///
/// The defaults follow Ceph's conventions: the configuration file comes from `CEPH_CONF` or
/// Ceph's search path (`/etc/ceph/ceph.conf`, ...), `CEPH_ARGS` is honoured, the keyring is
/// whatever the configuration file names. Unlike plain librados, operations time out: a mail
/// store must be able to answer "temporary failure" in bounded time when the cluster is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Path of `ceph.conf`; `None` uses `CEPH_CONF` or Ceph's default search path.
    pub conf_path: Option<PathBuf>,
    /// Path of the keyring; `None` uses the one the configuration file names.
    pub keyring: Option<PathBuf>,
    /// Full client name, like `client.admin` or `client.mail`.
    pub client_name: String,
    /// Pool that holds the data.
    pub pool: String,
    /// Namespace used by the first handle (users get their own namespaces).
    pub namespace: String,
    /// Time after which a connect, monitor or OSD operation fails with `Unavailable`
    /// (`client_mount_timeout`, `rados_mon_op_timeout`, `rados_osd_op_timeout`); `None` waits
    /// forever, as librados does by default.
    pub op_timeout: Option<Duration>,
    /// Largest number of asynchronous operations in flight per connection; further calls
    /// wait for a slot.
    pub max_in_flight: usize,
    /// Further Ceph options set before connecting, as `(name, value)`.
    pub options: Vec<(String, String)>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            conf_path: None,
            keyring: None,
            client_name: "client.admin".into(),
            pool: "mail".into(),
            namespace: String::new(),
            op_timeout: Some(Duration::from_secs(30)),
            max_in_flight: 128,
            options: Vec::new(),
        }
    }
}

impl ClusterConfig {
    /// The defaults, overridden by the environment: `CEPH_CONF` (configuration file),
    /// `CEPH_KEYRING` (keyring), `RADOS_MAIL_CLIENT` (client name), `RADOS_MAIL_POOL` (pool),
    /// `RADOS_MAIL_NAMESPACE` (namespace) and `RADOS_MAIL_OP_TIMEOUT` (seconds; 0 = none).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut c = ClusterConfig {
            conf_path: var("CEPH_CONF").map(PathBuf::from),
            keyring: var("CEPH_KEYRING").map(PathBuf::from),
            ..ClusterConfig::default()
        };
        if let Some(v) = var("RADOS_MAIL_CLIENT") {
            c.client_name = v;
        }
        if let Some(v) = var("RADOS_MAIL_POOL") {
            c.pool = v;
        }
        if let Some(v) = var("RADOS_MAIL_NAMESPACE") {
            c.namespace = v;
        }
        if let Some(secs) = var("RADOS_MAIL_OP_TIMEOUT").and_then(|v| v.parse::<u64>().ok()) {
            c.op_timeout = (secs > 0).then(|| Duration::from_secs(secs));
        }
        c
    }
}
