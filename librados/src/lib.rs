//! A small safe wrapper over librados, and the RADOS backend of [`objstore::ObjectStore`].
//!
//! * [`Cluster`] — a connection (`rados_t`), made from a [`ClusterConfig`] the Ceph way:
//!   `ceph.conf` + keyring + client name, with operation timeouts so that a dead cluster
//!   yields [`objstore::Error::Unavailable`] instead of a hang.
//! * [`IoCtx`] — one pool and namespace; holds its cluster alive.
//! * [`RadosStore`] — the [`objstore::ObjectStore`] implementation: every call is one
//!   librados compound operation (`rados_write_op_*` / `rados_read_op_*`) submitted with aio;
//!   completions are futures, and the number in flight is bounded per connection.
//!   Watches (`rados_watch2`, acknowledged from the callback, unwatched and flushed on a
//!   thread of their own when dropped) and fire-and-forget notifies (`rados_aio_notify`,
//!   [`NOTIFY_TIMEOUT`]) are the trait's push channel.
//!
//! Errors are [`objstore::Error`]: this crate is a backend of that trait and adds no
//! failure modes of its own.
//!
//! ```no_run
//! use librados::{ClusterConfig, RadosStore};
//! use objstore::ObjectStore;
//!
//! // CEPH_CONF, CEPH_KEYRING, RADOS_MAIL_POOL, ... or set the fields directly.
//! let store = RadosStore::connect(&ClusterConfig::from_env())?;
//! store.omap_set("greeting", &[("hello", b"world")])?;
//! assert_eq!(store.omap_get("greeting", &["hello"])?["hello"], b"world");
//! # Ok::<(), objstore::Error>(())
//! ```

mod aio;
mod cluster;
mod config;
mod errno;
mod quiesce;
mod store;
mod watch;

pub use cluster::{Cluster, IoCtx};
pub use config::ClusterConfig;
pub use quiesce::{QUIESCE_TIMEOUT, busy, quiesce, quiesce_ran_out};
pub use store::RadosStore;
pub use watch::NOTIFY_TIMEOUT;
